/**
 * Commits (lib/api/commits.rb), compare (lib/api/repositories.rb) and commit statuses (lib/api/commit_statuses.rb).
 */
import { createCommitStatus } from "../ci-actions.js";
import { commitEntity, commitStatusEntity, jobAsCommitStatus } from "../entities.js";
import { isAncestor, resolveRef } from "../git.js";
import { compact, findProject, optBool, optInt, optString, reqString } from "../http/params.js";
import { paginate } from "../http/pagination.js";
import { created, ok, type RouteTable } from "../http/route-table.js";
import { AccessLevel } from "../model.js";
import { hasAccess } from "../permissions.js";
import { FORBIDDEN, SimError } from "../sim-error.js";

export function commitRoutes(t: RouteTable): void {
  t.get("/projects/:id/repository/commits/:sha", (ctx) => {
    const project = findProject(ctx);
    const sha = resolveRef(project, reqString(ctx.params, "sha"));
    const commit = sha === undefined ? undefined : project.commits.get(sha);
    if (!commit) throw new SimError("not_found", "404 Commit Not Found");
    return ok(commitEntity(ctx.state, project, commit, { detail: true }));
  });

  t.get("/projects/:id/repository/compare", (ctx) => {
    const project = findProject(ctx);
    const from = resolveRef(project, reqString(ctx.params, "from"));
    const to = resolveRef(project, reqString(ctx.params, "to"));
    if (from === undefined || to === undefined) throw new SimError("not_found", "404 Ref Not Found");
    const commits = [];
    for (let c = project.commits.get(to); c && c.id !== from && !isAncestor(project, c.id, from); ) {
      commits.unshift(c);
      const parent = c.parentIds[0];
      c = parent === undefined ? undefined : project.commits.get(parent);
    }
    const last = commits[commits.length - 1];
    return ok({
      commit: last ? commitEntity(ctx.state, project, last) : null,
      commits: commits.map((c) => commitEntity(ctx.state, project, c)),
      diffs: [],
      compare_timeout: false,
      compare_same_ref: from === to,
      web_url: `${project.webUrl}/-/compare/${from}...${to}`,
    });
  });

  t.get("/projects/:id/repository/commits/:sha/statuses", (ctx) => {
    const project = findProject(ctx);
    if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Reporter) && project.visibility !== "public") {
      throw new SimError("forbidden", FORBIDDEN);
    }
    const sha = resolveRef(project, reqString(ctx.params, "sha"));
    if (sha === undefined) throw new SimError("not_found", "404 Commit Not Found");
    const ref = optString(ctx.params, "ref");
    const name = optString(ctx.params, "name");
    const pipelineId = optInt(ctx.params, "pipeline_id");
    const all = optBool(ctx.params, "all") ?? false;
    // Both CI jobs and external statuses are `CommitStatus` rows of the commit's pipelines.
    const rows = project.pipelines
      .filter((p) => p.sha === sha && (pipelineId === undefined || p.id === pipelineId))
      .flatMap((p) => [
        ...p.jobs
          .filter((j) => all || !j.retried)
          .map((j) => ({ id: j.id, ref: p.ref, name: j.name, json: () => jobAsCommitStatus(ctx.state, p, j) })),
        ...project.commitStatuses
          .filter((s) => s.pipelineId === p.id && (all || !s.retried))
          .map((s) => ({ id: s.id, ref: s.ref, name: s.name, json: () => commitStatusEntity(ctx.state, s) })),
      ])
      .filter((r) => (ref === undefined || r.ref === ref) && (name === undefined || r.name === name))
      .sort((a, b) => (optString(ctx.params, "sort") === "desc" ? b.id - a.id : a.id - b.id));
    return paginate(ctx, rows, (r) => r.json());
  });

  t.post("/projects/:id/statuses/:sha", (ctx) => {
    const project = findProject(ctx);
    // `create_commit_status`: Developer and above.
    if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Developer)) throw new SimError("forbidden", FORBIDDEN);
    const p = ctx.params;
    const status = createCommitStatus(ctx.world, project, ctx.user.id, {
      sha: reqString(p, "sha"),
      state: optString(p, "state"),
      ...compact({
        ref: optString(p, "ref"),
        name: optString(p, "name") ?? optString(p, "context"),
        targetUrl: optString(p, "target_url"),
        description: optString(p, "description"),
        coverage: p["coverage"] === undefined ? undefined : Number(p["coverage"]),
        pipelineId: optInt(p, "pipeline_id"),
      }),
    });
    return created(commitStatusEntity(ctx.state, status));
  });
}
