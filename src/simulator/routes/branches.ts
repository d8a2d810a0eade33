/**
 * Branches (lib/api/branches.rb) and protected branches (lib/api/protected_branches.rb).
 *
 * Creating and deleting need `push_code` (Developer+, else 403) and then pass GitLab's pre-receive checks, whose
 * refusals the API returns as 400 with the check's message. All protected-branch routes need `admin_project`
 * (Maintainer).
 */
import { branchEntity, protectedBranchEntity } from "../entities.js";
import { findProject, oneOf, optBool, optInt, optString, reqString } from "../http/params.js";
import { paginate, sortBy } from "../http/pagination.js";
import { created, noContent, ok, type RouteTable } from "../http/route-table.js";
import { AccessLevel } from "../model.js";
import { canPushCode, hasAccess } from "../permissions.js";
import { createBranch, deleteBranch } from "../repository-actions.js";
import { FORBIDDEN, SimError } from "../sim-error.js";
import type { ProjectRecord } from "../state.js";
import { protectBranch } from "../world-building.js";
import type { RequestContext } from "../http/route-table.js";

/** `BranchesFinder` search: `^foo` starts with, `foo$` ends with, otherwise contains; case-insensitive. */
function matchesSearch(name: string, search: string): boolean {
  const n = name.toLowerCase();
  const s = search.toLowerCase();
  if (s.startsWith("^") && s.endsWith("$") && s.length > 1) return n === s.slice(1, -1);
  if (s.startsWith("^")) return n.startsWith(s.slice(1));
  if (s.endsWith("$")) return n.endsWith(s.slice(0, -1));
  return n.includes(s);
}

/**
 * The ids of one kind in a Premium `allowed_to_push` / `allowed_to_merge` list (`[{user_id}, {group_id},
 * {deploy_key_id}]`, EE `API::Helpers::ProtectedBranchesHelpers`). `{access_level}` entries are not modelled:
 * `push_access_level` / `merge_access_level` give the role.
 */
function allowedIds(ctx: RequestContext, key: string, id: "user_id" | "group_id" | "deploy_key_id"): number[] {
  const list = ctx.params[key];
  if (!Array.isArray(list)) return [];
  return list.flatMap((a) =>
    a && typeof a === "object" && id in a ? [Number((a as Record<string, unknown>)[id])] : [],
  );
}

function requirePush(ctx: RequestContext, project: ProjectRecord): void {
  if (!canPushCode(ctx.state, ctx.user.id, project)) throw new SimError("forbidden", FORBIDDEN);
}

function requireMaintainer(ctx: RequestContext, project: ProjectRecord): void {
  if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Maintainer)) throw new SimError("forbidden", FORBIDDEN);
}

export function branchRoutes(t: RouteTable): void {
  t.get("/projects/:id/repository/branches", (ctx) => {
    const project = findProject(ctx);
    const search = optString(ctx.params, "search");
    const names = [...project.branches.keys()].filter((n) => search === undefined || matchesSearch(n, search));
    const sort = oneOf(ctx.params, "sort", ["name_asc", "updated_asc", "updated_desc"] as const) ?? "name_asc";
    sortBy(names, (n) => n, sort === "updated_desc" ? "desc" : "asc");
    return paginate(ctx, names, (n) => branchEntity(ctx.state, project, n, ctx.user.id));
  });

  t.get("/projects/:id/repository/branches/:branch", (ctx) => {
    const project = findProject(ctx);
    const name = reqString(ctx.params, "branch");
    if (!project.branches.has(name)) throw new SimError("not_found", "404 Branch Not Found");
    return ok(branchEntity(ctx.state, project, name, ctx.user.id));
  });

  t.post("/projects/:id/repository/branches", (ctx) => {
    const project = findProject(ctx);
    requirePush(ctx, project);
    const branch = reqString(ctx.params, "branch");
    const ref = reqString(ctx.params, "ref");
    createBranch(ctx.world, project, ctx.user.id, branch, ref);
    return created(branchEntity(ctx.state, project, branch, ctx.user.id));
  });

  t.delete("/projects/:id/repository/branches/:branch", (ctx) => {
    const project = findProject(ctx);
    requirePush(ctx, project);
    deleteBranch(ctx.world, project, reqString(ctx.params, "branch"), ctx.user.id);
    return noContent();
  });

  t.get("/projects/:id/protected_branches", (ctx) => {
    const project = findProject(ctx);
    requireMaintainer(ctx, project);
    const search = optString(ctx.params, "search");
    const rules = project.protectedBranches.filter((r) => search === undefined || r.name.includes(search));
    return paginate(ctx, rules, (r) => protectedBranchEntity(ctx.state, r));
  });

  t.get("/projects/:id/protected_branches/:name", (ctx) => {
    const project = findProject(ctx);
    requireMaintainer(ctx, project);
    const rule = project.protectedBranches.find((r) => r.name === reqString(ctx.params, "name"));
    if (!rule) throw new SimError("not_found", "404 Not found");
    return ok(protectedBranchEntity(ctx.state, rule));
  });

  t.post("/projects/:id/protected_branches", (ctx) => {
    const project = findProject(ctx);
    requireMaintainer(ctx, project);
    const name = reqString(ctx.params, "name");
    const levels = [0, 30, 40] as const;
    const level = (key: string) => {
      const v = optInt(ctx.params, key);
      if (v !== undefined && !(levels as readonly number[]).includes(v)) {
        throw new SimError("bad_request", `${key} does not have a valid value`);
      }
      return v ?? AccessLevel.Maintainer;
    };
    protectBranch(ctx.state, project.id, {
      name,
      pushAccessLevel: level("push_access_level"),
      mergeAccessLevel: level("merge_access_level"),
      allowedToPushUserIds: allowedIds(ctx, "allowed_to_push", "user_id"),
      allowedToMergeUserIds: allowedIds(ctx, "allowed_to_merge", "user_id"),
      allowedToPushGroupIds: allowedIds(ctx, "allowed_to_push", "group_id"),
      allowedToMergeGroupIds: allowedIds(ctx, "allowed_to_merge", "group_id"),
      allowedToPushDeployKeyIds: allowedIds(ctx, "allowed_to_push", "deploy_key_id"),
      allowForcePush: optBool(ctx.params, "allow_force_push") ?? false,
    });
    const rule = project.protectedBranches.find((r) => r.name === name)!;
    return created(protectedBranchEntity(ctx.state, rule));
  });

  t.delete("/projects/:id/protected_branches/:name", (ctx) => {
    const project = findProject(ctx);
    requireMaintainer(ctx, project);
    const name = reqString(ctx.params, "name");
    const index = project.protectedBranches.findIndex((r) => r.name === name);
    if (index === -1) throw new SimError("not_found", "404 Not found");
    project.protectedBranches.splice(index, 1);
    return noContent();
  });
}
