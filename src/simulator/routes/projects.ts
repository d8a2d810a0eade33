/**
 * `GET /projects` (with `membership`, `min_access_level`), `GET /projects/:id`, `GET /projects/:id/members/all/:user_id`, `GET /groups/:id/members/all/:user_id`
 * (lib/api/projects.rb, lib/api/members.rb). `members/all` reports the effective (maximum) level over direct and
 * inherited memberships; a non-member is `404 Not found` (`find_by!`).
 */
import { memberEntity, projectEntity } from "../entities.js";
import { paginate } from "../http/pagination.js";
import { findProject, optBool, optInt, reqInt } from "../http/params.js";
import { ok, type RouteTable } from "../http/route-table.js";
import { accessLevel, canReadProject, groupAccessLevel } from "../permissions.js";
import { SimError } from "../sim-error.js";

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
}
