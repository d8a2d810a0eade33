/**
 * Project webhooks (lib/api/project_hooks.rb, `admin_project` = Maintainer) and project labels (lib/api/labels.rb:
 * read for anyone who can see the project, create for Reporter+).
 */
import { hookEntity, labelEntity } from "../entities.js";
import { compact, findProject, optBool, optString, reqInt, reqString } from "../http/params.js";
import { paginate, sortBy } from "../http/pagination.js";
import { created, noContent, ok, type RequestContext, type RouteTable } from "../http/route-table.js";
import { AccessLevel, type SimHook } from "../model.js";
import { hasAccess } from "../permissions.js";
import { FORBIDDEN, SimError } from "../sim-error.js";
import type { ProjectRecord } from "../state.js";
import { addHook } from "../world-building.js";

function maintainerProject(ctx: RequestContext): ProjectRecord {
  const project = findProject(ctx);
  if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Maintainer)) throw new SimError("forbidden", FORBIDDEN);
  return project;
}

function findHook(ctx: RequestContext, project: ProjectRecord): SimHook {
  const id = reqInt(ctx.params, "hook_id");
  const hook = project.hooks.find((h) => h.id === id);
  if (!hook) throw new SimError("not_found", "404 Not found");
  return hook;
}

/** `whsec_` and the base64 of 32 bytes (`WebHooks::Hook::SIGNING_TOKEN_FORMAT`). */
const SIGNING_TOKEN_FORMAT = /^whsec_[A-Za-z0-9+/]{43}=$/;

/**
 * The Standard-Webhooks secret, `signing_token` (`lib/api/project_hooks.rb`, GitLab 19.0). Where the instance does
 * not sign, GitLab drops it without a word (`create_hook_params` deletes it while the `webhook_signing_token` flag is
 * off; before 19.0 it is an undeclared parameter, which `declared_params` leaves out): the hook is saved without it.
 * A malformed one is a validation error (`validates :signing_token, format:`), 422 like `save_hook`'s
 * `render_validation_error!(hook, 422)`.
 */
function signingTokenParam(ctx: RequestContext): string | undefined {
  const token = optString(ctx.params, "signing_token");
  if (token === undefined || !ctx.state.instance.webhookSigning) return undefined;
  if (!SIGNING_TOKEN_FORMAT.test(token)) throw new SimError("unprocessable", { signing_token: ["is invalid"] });
  return token;
}

/** The hook attributes of `POST`/`PUT /projects/:id/hooks`. */
function hookParams(ctx: RequestContext) {
  const p = ctx.params;
  return compact({
    token: optString(p, "token"),
    signingToken: signingTokenParam(ctx),
    pushEvents: optBool(p, "push_events"),
    pushEventsBranchFilter: optString(p, "push_events_branch_filter"),
    mergeRequestsEvents: optBool(p, "merge_requests_events"),
    noteEvents: optBool(p, "note_events"),
    confidentialNoteEvents: optBool(p, "confidential_note_events"),
    pipelineEvents: optBool(p, "pipeline_events"),
    enableSslVerification: optBool(p, "enable_ssl_verification"),
  });
}

export function hookRoutes(t: RouteTable): void {
  t.get("/projects/:id/hooks", (ctx) => {
    const project = maintainerProject(ctx);
    return paginate(ctx, project.hooks, (h) => hookEntity(h, ctx.state.instance));
  });

  t.get("/projects/:id/hooks/:hook_id", (ctx) =>
    ok(hookEntity(findHook(ctx, maintainerProject(ctx)), ctx.state.instance)),
  );

  t.post("/projects/:id/hooks", (ctx) => {
    const project = maintainerProject(ctx);
    const url = reqString(ctx.params, "url");
    if (!/^https?:\/\//.test(url))
      throw new SimError("unprocessable", { url: ["is blocked: Only allowed schemes are http, https"] });
    return created(hookEntity(addHook(ctx.state, project.id, { url, ...hookParams(ctx) }), ctx.state.instance));
  });

  t.put("/projects/:id/hooks/:hook_id", (ctx) => {
    const project = maintainerProject(ctx);
    const hook = findHook(ctx, project);
    const url = optString(ctx.params, "url");
    const updated: SimHook = { ...hook, ...(url === undefined ? {} : { url }), ...hookParams(ctx) };
    project.hooks[project.hooks.indexOf(hook)] = updated;
    return ok(hookEntity(updated, ctx.state.instance));
  });

  t.delete("/projects/:id/hooks/:hook_id", (ctx) => {
    const project = maintainerProject(ctx);
    const hook = findHook(ctx, project);
    project.hooks.splice(project.hooks.indexOf(hook), 1);
    return noContent();
  });
}

export function labelRoutes(t: RouteTable): void {
  t.get("/projects/:id/labels", (ctx) => {
    const project = findProject(ctx);
    const search = optString(ctx.params, "search")?.toLowerCase();
    const labels = sortBy(
      project.labels.filter((l) => search === undefined || l.name.toLowerCase().includes(search)),
      (l) => l.name.toLowerCase(),
      "asc",
    );
    return paginate(ctx, labels, (l) => labelEntity(project, l));
  });

  t.post("/projects/:id/labels", (ctx) => {
    const project = findProject(ctx);
    if (!hasAccess(ctx.state, ctx.user.id, project, AccessLevel.Reporter)) throw new SimError("forbidden", FORBIDDEN);
    const name = reqString(ctx.params, "name");
    const color = reqString(ctx.params, "color");
    if (project.labels.some((l) => l.name === name)) throw new SimError("conflict", "Label already exists");
    const label = {
      id: ctx.state.nextId("label"),
      name,
      color,
      description: optString(ctx.params, "description") ?? null,
    };
    project.labels.push(label);
    return created(labelEntity(project, label));
  });
}
