/**
 * Approvals (`lib/api/merge_request_approvals.rb`), project approval rules (`ee/lib/api/project_approval_rules.rb`)
 * and external status checks (`ee/lib/api/status_checks.rb`); the rules they follow are in `../approvals.ts`.
 */
import {
  approvalRuleEntity,
  approvalRulesLicensed,
  approvalStateEntity,
  approvalsEntity,
  approve,
  statusChecksLicensed,
  unapprove,
} from "../approvals.js";
import { paginate } from "../http/pagination.js";
import { findProject, oneOf, optList, optString, reqInt, reqString } from "../http/params.js";
import { created, ok, type Reply, type RequestContext, type RouteTable } from "../http/route-table.js";
import { AccessLevel } from "../model.js";
import { hasAccess } from "../permissions.js";
import { FORBIDDEN, SimError } from "../sim-error.js";
import type { MergeRequestRecord, ProjectRecord } from "../state.js";

/** A CE build has no EE route: Grape's catch-all `route :any, '*path'` answers this (`lib/api/api.rb`). */
const NO_ROUTE: Reply = { status: 404, body: { error: "404 Not Found" } };

function findMr(ctx: RequestContext): { project: ProjectRecord; mr: MergeRequestRecord } {
  const project = findProject(ctx);
  const mr = project.mergeRequests.get(reqInt(ctx.params, "iid"));
  if (!mr) throw new SimError("not_found", "404 Merge Request Not Found");
  return { project, mr };
}

function maintainer(ctx: RequestContext, project: ProjectRecord, refusal: SimError): void {
  if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Maintainer)) throw refusal;
}

/** `check_feature_enabled!` of `ee/lib/api/status_checks.rb`: below Ultimate, `unauthorized!`. */
function statusChecksOr(ctx: RequestContext, handler: () => Reply): Reply {
  if (!ctx.state.instance.enterprise) return NO_ROUTE;
  if (!statusChecksLicensed(ctx.state.instance)) throw new SimError("unauthorized", "401 Unauthorized");
  return handler();
}

export function approvalRoutes(t: RouteTable): void {
  const MR = "/projects/:id/merge_requests/:iid";

  t.get(`${MR}/approvals`, (ctx) => {
    const { mr } = findMr(ctx);
    return ok(approvalsEntity(ctx.state, mr, ctx.user.id));
  });

  t.post(`${MR}/approve`, (ctx) => {
    const { project, mr } = findMr(ctx);
    approve(ctx.state, project, mr, ctx.user.id, optString(ctx.params, "sha"));
    return created(approvalsEntity(ctx.state, mr, ctx.user.id));
  });

  t.post(`${MR}/unapprove`, (ctx) => {
    const { project, mr } = findMr(ctx);
    unapprove(project, mr, ctx.user.id);
    return created(approvalsEntity(ctx.state, mr, ctx.user.id));
  });

  t.get(`${MR}/approval_state`, (ctx) => {
    if (!ctx.state.instance.enterprise) return NO_ROUTE;
    const { mr } = findMr(ctx);
    return ok(approvalStateEntity(ctx.state, mr));
  });

  t.get("/projects/:id/approval_rules", (ctx) => {
    if (!ctx.state.instance.enterprise) return NO_ROUTE;
    const project = findProject(ctx);
    return paginate(ctx, approvalRulesLicensed(ctx.state.instance) ? project.approvalRules : [], (r) =>
      approvalRuleEntity(ctx.state, r),
    );
  });

  t.post("/projects/:id/approval_rules", (ctx) => {
    if (!ctx.state.instance.enterprise) return NO_ROUTE;
    const project = findProject(ctx);
    // `authorize! :admin_project` then `:modify_approvers_rules` (Premium; the Free answer is *inferred*).
    maintainer(ctx, project, new SimError("forbidden", FORBIDDEN));
    if (!approvalRulesLicensed(ctx.state.instance)) throw new SimError("forbidden", FORBIDDEN);
    const name = reqString(ctx.params, "name");
    const approvalsRequired = reqInt(ctx.params, "approvals_required");
    if (project.approvalRules.some((r) => r.name === name)) {
      // `ApprovalProjectRule` validates `name` unique per project.
      throw new SimError("bad_request", { name: ["has already been taken"] });
    }
    const userIds = (optList(ctx.params, "user_ids") ?? []).map(Number).filter((id) => ctx.state.users.has(id));
    const rule = { id: ctx.state.nextId("approvalRule"), name, approvalsRequired, userIds };
    project.approvalRules.push(rule);
    return created(approvalRuleEntity(ctx.state, rule));
  });

  t.get("/projects/:id/external_status_checks", (ctx) =>
    statusChecksOr(ctx, () => {
      const project = findProject(ctx);
      maintainer(ctx, project, new SimError("unauthorized", "401 Unauthorized"));
      return paginate(ctx, project.externalStatusChecks, statusCheckEntity);
    }),
  );

  t.post("/projects/:id/external_status_checks", (ctx) =>
    statusChecksOr(ctx, () => {
      const project = findProject(ctx);
      // `ExternalStatusChecks::CreateService` needs `admin_project` (*inferred*: answered 403 here).
      maintainer(ctx, project, new SimError("forbidden", FORBIDDEN));
      const name = reqString(ctx.params, "name");
      if (project.externalStatusChecks.some((c) => c.name === name)) {
        throw new SimError("bad_request", { name: ["has already been taken"] });
      }
      const check = {
        id: ctx.state.nextId("externalStatusCheck"),
        name,
        externalUrl: reqString(ctx.params, "external_url"),
        protectedBranchIds: (optList(ctx.params, "protected_branch_ids") ?? []).map(Number),
      };
      project.externalStatusChecks.push(check);
      return created(statusCheckEntity(check));
    }),
  );

  t.post(`${MR}/status_check_responses`, (ctx) =>
    statusChecksOr(ctx, () => {
      const { project, mr } = findMr(ctx);
      const checkId = reqInt(ctx.params, "external_status_check_id");
      const check = project.externalStatusChecks.find((c) => c.id === checkId);
      if (!check) throw new SimError("not_found", "404 Not found");
      const sha = reqString(ctx.params, "sha");
      const status = oneOf(ctx.params, "status", ["passed", "failed"] as const);
      if (status === undefined) throw new SimError("bad_request", "400 Bad request - status is missing");
      if (sha !== mr.sha) throw new SimError("conflict", `SHA does not match HEAD of source branch: ${mr.sha}`);
      // `provide_status_check_response`: Developer and up here (*inferred*).
      if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Developer)) {
        throw new SimError("not_found", "404 Not Found");
      }
      const response = { id: ctx.state.nextId("statusCheckResponse"), checkId, sha, status };
      const list = project.statusCheckResponses.get(mr.iid) ?? [];
      list.push(response);
      project.statusCheckResponses.set(mr.iid, list);
      return created({
        id: response.id,
        merge_request: { id: mr.id, iid: mr.iid, project_id: project.id, title: mr.title },
        external_status_check: statusCheckEntity(check),
      });
    }),
  );

  t.get(`${MR}/status_checks`, (ctx) =>
    statusChecksOr(ctx, () => {
      const { project, mr } = findMr(ctx);
      const responses = project.statusCheckResponses.get(mr.iid) ?? [];
      return paginate(ctx, project.externalStatusChecks, (c) => ({
        id: c.id,
        name: c.name,
        external_url: c.externalUrl,
        status: responses.filter((r) => r.checkId === c.id && r.sha === mr.sha).at(-1)?.status ?? "pending",
      }));
    }),
  );
}

/** `API::Entities::ExternalStatusCheck`. */
function statusCheckEntity(c: ProjectRecord["externalStatusChecks"][number]): Record<string, unknown> {
  return {
    id: c.id,
    name: c.name,
    external_url: c.externalUrl,
    hmac: false,
    protected_branches: c.protectedBranchIds.map((id) => ({ id })),
  };
}
