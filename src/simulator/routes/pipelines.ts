/**
 * Pipelines (lib/api/ci/pipelines.rb). Permissions from `Ci::PipelinePolicy`: on a ref the caller may neither push
 * nor merge to (a protected branch), `update_pipeline` and `cancel_pipeline` are prevented, so retry and cancel
 * answer 403. Creation first needs `create_pipeline` (Developer+, else 403); the refusals of the creation chain are
 * rendered as validation errors (400, `{"message": {"base": [...]}}`): variables from a user the project does not let
 * set them (`set_pipeline_variables`, checked first), then the protected ref.
 */
import { cancelPipeline, createPipeline, retryPipeline } from "../ci-actions.js";
import { bridgeEntity, jobEntity, pipelineBasic, pipelineEntity, testReportSummaryEntity } from "../entities.js";
import { findProject, oneOf, optBool, optString, reqInt, reqString } from "../http/params.js";
import { paginate, sortBy } from "../http/pagination.js";
import { created, ok, type RequestContext, type RouteTable } from "../http/route-table.js";
import { AccessLevel, type PipelineSource } from "../model.js";
import { canSetPipelineVariables, canUpdateBranch, hasAccess } from "../permissions.js";
import { FORBIDDEN, SimError } from "../sim-error.js";
import { pipelineById, pipelinesForSha } from "../pipeline-index.js";
import { PIPELINE_STATUSES } from "../pipeline-status.js";
import type { PipelineRecord, ProjectRecord } from "../state.js";

function findPipeline(ctx: RequestContext, project: ProjectRecord): PipelineRecord {
  const id = reqInt(ctx.params, "pipeline_id");
  const pipeline = pipelineById(project.pipelines, id);
  if (!pipeline) throw new SimError("not_found", "404 Not found");
  return pipeline;
}

/** `update_pipeline` / `cancel_pipeline`: Developer+, and the ref must be one the caller may push or merge to. */
function mayUpdate(ctx: RequestContext, project: ProjectRecord, pipeline: PipelineRecord): boolean {
  return (
    hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Developer) &&
    canUpdateBranch(ctx.state, ctx.user.id, project, pipeline.ref)
  );
}

function parseVariables(raw: unknown): Array<{ key: string; value: string; variableType: "env_var" | "file" }> {
  if (raw === undefined || raw === null) return [];
  const list = Array.isArray(raw) ? raw : typeof raw === "object" ? Object.values(raw) : undefined;
  if (!list) throw new SimError("bad_request", { variables: ["is invalid"] });
  return list.map((v) => {
    const item = (v ?? {}) as Record<string, unknown>;
    if (typeof item["key"] !== "string" || item["key"] === "") {
      throw new SimError("bad_request", { base: ["Variables key can't be blank"] });
    }
    return {
      key: item["key"],
      value: String(item["value"] ?? ""),
      variableType: item["variable_type"] === "file" ? "file" : "env_var",
    };
  });
}

export function pipelineRoutes(t: RouteTable): void {
  const ONE = "/projects/:id/pipelines/:pipeline_id";

  t.post("/projects/:id/pipeline", (ctx) => {
    const project = findProject(ctx);
    if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Developer)) throw new SimError("forbidden", FORBIDDEN);
    const ref = reqString(ctx.params, "ref");
    const variables = parseVariables(ctx.params["variables"]);
    // The chain's Build step (`Gitlab::Ci::Pipeline::Chain::Build::Associations#check_variables_permission`) runs
    // before the protected-ref check and stops the chain: nothing is saved, the API renders the error as 400.
    if (variables.length > 0 && !canSetPipelineVariables(ctx.state, ctx.user.id, project)) {
      throw new SimError("bad_request", { base: ["Insufficient permissions to set pipeline variables"] });
    }
    const pipeline = createPipeline(ctx.world, project, { ref, userId: ctx.user.id, source: "api", variables });
    return created(pipelineEntity(ctx.state, pipeline));
  });

  t.get("/projects/:id/pipelines", (ctx) => {
    const project = findProject(ctx);
    const p = ctx.params;
    const ref = optString(p, "ref");
    const sha = optString(p, "sha");
    const status = oneOf(p, "status", PIPELINE_STATUSES);
    const source = optString(p, "source") as PipelineSource | undefined;
    const scope = oneOf(p, "scope", ["running", "pending", "finished", "branches", "tags"] as const);
    const username = optString(p, "username");
    const updatedAfter = optString(p, "updated_after");
    const updatedBefore = optString(p, "updated_before");
    const orderBy = oneOf(p, "order_by", ["id", "status", "ref", "updated_at", "user_id"] as const) ?? "id";
    const sort = oneOf(p, "sort", ["asc", "desc"] as const) ?? "desc";
    const user = username === undefined ? undefined : ctx.state.userByUsername(username);
    const finished = ["success", "failed", "canceled", "skipped"];
    // With `sha`, only that commit's pipelines (pipeline-index.ts), not every pipeline of the project.
    const list = (sha === undefined ? project.pipelines : pipelinesForSha(project.pipelines, sha)).filter(
      (x) =>
        (ref === undefined || x.ref === ref) &&
        (sha === undefined || x.sha === sha) &&
        (status === undefined || x.status === status) &&
        (source === undefined || x.source === source) &&
        (scope === undefined ||
          (scope === "finished"
            ? finished.includes(x.status)
            : scope === "tags"
              ? x.tag
              : scope === "branches"
                ? !x.tag
                : x.status === scope)) &&
        (username === undefined || x.userId === user?.id) &&
        (updatedAfter === undefined || Date.parse(x.updatedAt) > Date.parse(updatedAfter)) &&
        (updatedBefore === undefined || Date.parse(x.updatedAt) < Date.parse(updatedBefore)),
    );
    const key = (x: PipelineRecord): string | number =>
      orderBy === "id"
        ? x.id
        : orderBy === "user_id"
          ? x.userId
          : `${x[orderBy === "updated_at" ? "updatedAt" : orderBy]}#${String(x.id).padStart(12, "0")}`;
    sortBy(list, key, sort);
    return paginate(ctx, list, pipelineBasic);
  });

  t.get("/projects/:id/pipelines/latest", (ctx) => {
    const project = findProject(ctx);
    const ref = optString(ctx.params, "ref") ?? project.defaultBranch;
    const head = project.branches.get(ref);
    const latest = project.pipelines.filter((x) => x.ref === ref && x.sha === head).sort((a, b) => b.id - a.id)[0];
    if (!latest) throw new SimError("forbidden", FORBIDDEN);
    return ok(pipelineEntity(ctx.state, latest));
  });

  t.get(ONE, (ctx) => {
    const project = findProject(ctx);
    return ok(pipelineEntity(ctx.state, findPipeline(ctx, project)));
  });

  t.get(`${ONE}/variables`, (ctx) => {
    const project = findProject(ctx);
    const pipeline = findPipeline(ctx, project);
    // `read_pipeline_variable`: Maintainer (`admin_pipeline`), or the user who triggered it and may update it.
    const allowed =
      hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Maintainer) ||
      (pipeline.userId === ctx.user.id && mayUpdate(ctx, project, pipeline));
    if (!allowed) throw new SimError("forbidden", FORBIDDEN);
    return paginate(ctx, pipeline.variables, (v) => ({ key: v.key, variable_type: v.variableType, value: v.value }));
  });

  t.get(`${ONE}/jobs`, (ctx) => {
    const project = findProject(ctx);
    const pipeline = findPipeline(ctx, project);
    const rawScope = ctx.params["scope"];
    const scope = rawScope === undefined ? undefined : (Array.isArray(rawScope) ? rawScope : [rawScope]).map(String);
    const includeRetried = optBool(ctx.params, "include_retried") ?? false;
    // `pipeline.builds` through `Ci::JobsFinder`: `Ci::Build` only, trigger jobs (bridges) are not listed here.
    const jobs = pipeline.jobs
      .filter((j) => j.trigger === null)
      .filter((j) => (includeRetried || !j.retried) && (scope === undefined || scope.includes(j.status)))
      .sort((a, b) => b.id - a.id);
    return paginate(ctx, jobs, (j) => jobEntity(ctx.state, pipeline, j));
  });

  // lib/api/ci/pipelines.rb: `Ci::JobsFinder` with `type: ::Ci::Bridge` (latest attempts, `scope` filter), needs
  // `read_build`; presented with `Entities::Ci::Bridge`. GitLab 19.2 deprecates it for `.../trigger_jobs`.
  t.get(`${ONE}/bridges`, (ctx) => {
    const project = findProject(ctx);
    const pipeline = findPipeline(ctx, project);
    const rawScope = ctx.params["scope"];
    const scope = rawScope === undefined ? undefined : (Array.isArray(rawScope) ? rawScope : [rawScope]).map(String);
    const bridges = pipeline.jobs
      .filter((j) => j.trigger !== null && !j.retried && (scope === undefined || scope.includes(j.status)))
      .sort((a, b) => b.id - a.id);
    return paginate(ctx, bridges, (j) => bridgeEntity(ctx.state, pipeline, j));
  });

  t.post(`${ONE}/cancel`, (ctx) => {
    const project = findProject(ctx);
    const pipeline = findPipeline(ctx, project);
    if (!mayUpdate(ctx, project, pipeline)) throw new SimError("forbidden", FORBIDDEN);
    cancelPipeline(ctx.world, pipeline);
    return ok(pipelineEntity(ctx.state, pipeline));
  });

  t.post(`${ONE}/retry`, (ctx) => {
    const project = findProject(ctx);
    const pipeline = findPipeline(ctx, project);
    if (!mayUpdate(ctx, project, pipeline)) throw new SimError("forbidden", FORBIDDEN);
    retryPipeline(ctx.world, pipeline, ctx.user.id);
    return created(pipelineEntity(ctx.state, pipeline));
  });

  t.get(`${ONE}/test_report_summary`, (ctx) => {
    const project = findProject(ctx);
    return ok(testReportSummaryEntity(findPipeline(ctx, project)));
  });
}
