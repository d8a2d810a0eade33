/**
 * `GET /projects` (with `membership`, `min_access_level`), `GET /projects/:id`, `PUT /projects/:id` (the
 * pipeline-variable settings only), `GET /projects/:id/members/all/:user_id`, `GET /groups/:id/members/all/:user_id`
 * and `GET /groups/:id/projects` (lib/api/projects.rb, lib/api/members.rb, lib/api/groups.rb). `members/all` reports the effective (maximum) level over direct and
 * inherited memberships; a non-member is `404 Not found` (`find_by!`).
 */
import { memberEntity, projectEntity } from "../entities.js";
import { paginate } from "../http/pagination.js";
import { findProject, oneOf, optBool, optInt, ParamError, reqInt } from "../http/params.js";
import { ok, type RouteTable } from "../http/route-table.js";
import { AccessLevel, PIPELINE_VARIABLES_ROLES } from "../model.js";
import {
  accessLevel,
  canReadProject,
  groupAccessLevel,
  hasAccess,
  pipelineVariablesSettingRefusal,
} from "../permissions.js";
import { FORBIDDEN, SimError } from "../sim-error.js";
import { deleteProject } from "../world-building.js";

export function projectRoutes(t: RouteTable): void {
  // `min_access_level` implies membership (ProjectsFinder#by_min_access_level); ordered by id, descending by default.
  t.get("/projects", (ctx) => {
    const membership = optBool(ctx.params, "membership") ?? false;
    const minLevel = optInt(ctx.params, "min_access_level");
    const list = [...ctx.state.projects.values()]
      .filter((project) => {
        if (!canReadProject(ctx.state, ctx.user.id, project)) return false;
        const level = accessLevel(ctx.state, ctx.user.id, project);
        if (membership && level === 0) return false;
        return minLevel === undefined || level >= minLevel;
      })
      .sort((a, b) => b.id - a.id);
    return paginate(ctx, list, (project) => projectEntity(ctx.state, project, ctx.user.id));
  });

  t.get("/projects/:id", (ctx) => ok(projectEntity(ctx.state, findProject(ctx), ctx.user.id)));

  // lib/api/projects.rb `put ":id"`: `authorize_admin_project` (Maintainer+, else 403), then
  // `Projects::UpdateService`, whose refusals of the pipeline-variable settings are `render_api_error!(message, 400)`
  // (`pipelineVariablesSettingRefusal`). Only those two settings are modelled; a request with neither is Grape's
  // `at_least_one_of` error.
  t.put("/projects/:id", (ctx) => {
    const project = findProject(ctx);
    if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Maintainer)) throw new SimError("forbidden", FORBIDDEN);
    const role = oneOf(ctx.params, "ci_pipeline_variables_minimum_override_role", PIPELINE_VARIABLES_ROLES);
    const restrict = optBool(ctx.params, "restrict_user_defined_variables");
    // "Pipelines must succeed": a plain project setting (Maintainer, like every `PUT /projects/:id` change).
    const pipelineMustSucceed = optBool(ctx.params, "only_allow_merge_if_pipeline_succeeds");
    if (role === undefined && restrict === undefined && pipelineMustSucceed === undefined) {
      throw new ParamError(
        "ci_pipeline_variables_minimum_override_role, restrict_user_defined_variables, only_allow_merge_if_pipeline_succeeds are missing, at least one parameter must be provided",
      );
    }
    const changingRole = role !== undefined && role !== project.ciPipelineVariablesMinimumOverrideRole;
    const changingRestrict = restrict !== undefined && restrict !== project.restrictUserDefinedVariables;
    if (changingRole || changingRestrict) {
      const refusal = pipelineVariablesSettingRefusal(ctx.state, ctx.user.id, project, changingRole ? role : undefined);
      if (refusal) throw new SimError("bad_request", refusal);
    }
    if (role !== undefined) project.ciPipelineVariablesMinimumOverrideRole = role;
    if (restrict !== undefined) project.restrictUserDefinedVariables = restrict;
    if (pipelineMustSucceed !== undefined) project.onlyAllowMergeIfPipelineSucceeds = pipelineMustSucceed;
    return ok(projectEntity(ctx.state, project, ctx.user.id));
  });

  // lib/api/projects.rb `delete ":id"`: `authorize! :remove_project` (Owner), then `Projects::DestroyService`
  // asynchronously and `accepted!` (202). Here the deletion is done before answering, and delayed deletion
  // ("marked for deletion", then removed days later) is not modelled: the project is gone at once.
  t.delete("/projects/:id", (ctx) => {
    const project = findProject(ctx);
    if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Owner)) throw new SimError("forbidden", FORBIDDEN);
    deleteProject(ctx.state, project.id);
    return { status: 202, body: { message: "202 Accepted" } };
  });

  t.get("/projects/:id/members/all/:user_id", (ctx) => {
    const project = findProject(ctx);
    const user = ctx.state.users.get(reqInt(ctx.params, "user_id"));
    const level = user ? accessLevel(ctx.state, user.id, project) : 0;
    if (!user || level === 0) throw new SimError("not_found", "404 Not found");
    return ok(memberEntity(ctx.state, user, level));
  });

  t.get("/groups/:id/members/all/:user_id", (ctx) => {
    const raw = String(ctx.params["id"]);
    const group = /^\d+$/.test(raw) ? ctx.state.groups.get(Number(raw)) : ctx.state.groupByPath(raw);
    if (!group) throw new SimError("not_found", "404 Group Not Found");
    const user = ctx.state.users.get(reqInt(ctx.params, "user_id"));
    const level = user ? groupAccessLevel(ctx.state, user.id, group.id) : 0;
    if (!user || level === 0) throw new SimError("not_found", "404 Not found");
    return ok(memberEntity(ctx.state, user, level));
  });

  // lib/api/groups.rb `get ":id/projects"` with app/finders/group_projects_finder.rb: `include_subgroups` adds the
  // projects of every descendant group, `with_shared=false` leaves out projects shared with the group (sharing is
  // not modelled, so there are none), and only projects the user may read are listed; ordered by `created_at`
  // descending (the endpoint's default `order_by`/`sort`), here by id, which follows creation. `find_group!` answers
  // `404 Group Not Found` for a group the user may not read: a member of it, or of a project in it (GroupPolicy
  // `has_projects`); groups have no visibility of their own here (*inferred*: every group is private). Archiving is
  // not modelled: `archived=false` leaves every project in.
  t.get("/groups/:id/projects", (ctx) => {
    const raw = String(ctx.params["id"]);
    const group = /^\d+$/.test(raw) ? ctx.state.groups.get(Number(raw)) : ctx.state.groupByPath(raw);
    if (!group) throw new SimError("not_found", "404 Group Not Found");
    const withSubgroups = optBool(ctx.params, "include_subgroups") ?? false;
    const inGroup = (namespaceGroupId: number) =>
      withSubgroups
        ? ctx.state.groupChain(namespaceGroupId).some((g) => g.id === group.id)
        : namespaceGroupId === group.id;
    const list = [...ctx.state.projects.values()]
      .filter((p) => p.namespace.kind === "group" && inGroup(p.namespace.id))
      .filter((p) => canReadProject(ctx.state, ctx.user.id, p))
      .sort((a, b) => b.id - a.id);
    if (list.length === 0 && groupAccessLevel(ctx.state, ctx.user.id, group.id) === 0) {
      throw new SimError("not_found", "404 Group Not Found");
    }
    return paginate(ctx, list, (project) => projectEntity(ctx.state, project, ctx.user.id));
  });
}
