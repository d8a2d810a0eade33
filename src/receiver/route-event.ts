/**
 * Turns one GitLab webhook into work for the worker, or into a reason for ignoring it. Pure: no I/O, no clock.
 *
 * Payloads are parsed with zod schemas that name only the fields the bot reads, so fields GitLab adds later pass
 * through unnoticed (STYLE.md 9). Field meanings: FACTS.md "Payloads" and
 * https://docs.gitlab.com/user/project/integrations/webhook_events/.
 */
import { z } from "zod";
import type { CommandJob, PipelineJob, PushJob, ReconcileJob } from "../queue/jobs.js";
import { parseTrustedBranchName } from "../trust/decide.js";
import { pushTouchesPolicy } from "../trust/policy.js";

/** A job an event can start (a sweep is only ever scheduled). */
export type EventJob = ReconcileJob | CommandJob | PushJob | PipelineJob;

/** Work for the worker, or why there is none (answered with a 2xx: GitLab disables hooks that keep failing). */
export type RouteResult = { jobs: EventJob[] } | { ignored: string };

/** The part of the configuration routing depends on. */
export interface RouteConfig {
  trust: { branch_prefix: string };
  /** The trust-state label names (`trust.state_labels`); absent: none. */
  stateLabels?: { enabled: boolean; waiting: string; trusted: string; stale: string; failed: string };
  /** The projects the bot serves (`scope`); absent or empty: every project. */
  scope?: { projects: ReadonlyArray<string | number>; groups: readonly string[] };
}

/** The `X-Gitlab-Event` values the bot acts on. */
export const USED_EVENTS = [
  "Merge Request Hook",
  "Note Hook",
  "Confidential Note Hook",
  "Push Hook",
  "Pipeline Hook",
] as const;

/**
 * A pipeline variable the bot sets on the trusted pipelines it creates where the project allows pipeline variables:
 * only a hint. The trusted branch's name says the MR (`parseTrustedBranchName`) and wins; many projects allow no
 * pipeline variables (GitLab.com's default, `no_one_allowed`), so their trusted pipelines carry none.
 */
export const MR_IID_VARIABLE = "TRUSTED_MR_IID";

export function routeEvent(eventHeader: string | undefined, payload: unknown, config: RouteConfig): RouteResult {
  const unserved = notServed(payload, config);
  if (unserved !== undefined) return { ignored: unserved };
  const echo = eventHeader === "Merge Request Hook" ? stateLabelEcho(payload, config) : undefined;
  if (echo !== undefined) return { ignored: echo };
  switch (eventHeader) {
    case "Merge Request Hook":
      return routeMergeRequest(payload);
    case "Note Hook":
      return routeNote(payload, "Note Hook");
    // An internal note (FACTS.md: only to hooks with `confidential_note_events`; `Notes::PostProcessService`).
    case "Confidential Note Hook":
      return routeNote(payload, "Confidential Note Hook");
    case "Push Hook":
      return routePush(payload);
    case "Pipeline Hook":
      return routePipeline(payload, config);
    case undefined:
      return { ignored: "no X-Gitlab-Event header" };
    default:
      return { ignored: `event ${eventHeader} is not used` };
  }
}

/**
 * True when some line starts, after optional blanks, with `/` and a letter. Deliberately loose: the worker's
 * command parser decides what the command is and answers on the MR; here it only decides whether the note is
 * worth a job. A note without such a line cannot be a command, and most notes are conversation.
 */
export function mayCarryCommand(note: string): boolean {
  return /^[^\S\r\n]*\/[A-Za-z]/m.test(note);
}

const id = z.number().int();
const iid = z.number().int().positive();

const mergeRequestHook = z.object({
  project: z.object({ id }).optional(),
  object_attributes: z.object({
    iid,
    // The hook fires on the target project, also for a fork MR (FACTS.md); older payloads may lack the field.
    target_project_id: id.optional(),
    action: z.string().optional(),
    // Present on an `update` that pushed commits (`MergeRequests::BaseService#execute_hooks`, `oldrev`).
    oldrev: z.string().nullish(),
  }),
  // What the update changed (`Gitlab::HookData::MergeRequestBuilder` via `hook_data(changes:)`); only keys are read.
  changes: z.record(z.string(), z.unknown()).nullish().catch(null),
});

/**
 * Approval actions: the bot's own approval is in its record (`trust.approve` decides from the trusted pipeline and
 * the record, never from who else approved), so another approval or its withdrawal changes nothing the bot shows.
 */
const FREE_ACTIONS = new Set(["approved", "unapproved", "approval", "unapproval"]);

/**
 * MR attributes the bot never reads (`observe`/`decide` read state, head, branches, labels, author, source project):
 * an `update` that changed only these, and pushed nothing (no `oldrev`), is answered without a GitLab call. Anything
 * not listed (labels, draft, target branch, state, a key GitLab adds later) is routed: when unsure, route.
 */
const FREE_CHANGES = new Set([
  "title",
  "description",
  "assignees",
  "assignee_id",
  "reviewers",
  "milestone_id",
  "updated_at",
  "updated_by_id",
  "last_edited_at",
  "last_edited_by_id",
  "time_estimate",
  "total_time_spent",
  "time_change",
]);

/** Why an MR hook cannot change what the bot shows, or `undefined` when it may. */
function freeMergeRequestEvent(
  mr: { action?: string | undefined; oldrev?: string | null | undefined },
  changes: Record<string, unknown> | null | undefined,
): string | undefined {
  if (mr.action && FREE_ACTIONS.has(mr.action)) return `Merge Request Hook:${mr.action} changes nothing the bot shows`;
  if (mr.action !== "update" || mr.oldrev || !changes) return undefined;
  const keys = Object.keys(changes);
  if (keys.length === 0 || !keys.every((k) => FREE_CHANGES.has(k))) return undefined;
  return `Merge Request Hook:update changed only ${keys.sort().join(", ")}, which the bot does not read`;
}

function routeMergeRequest(payload: unknown): RouteResult {
  const parsed = mergeRequestHook.safeParse(payload);
  if (!parsed.success) return mismatch("Merge Request Hook", parsed.error);
  const { object_attributes: mr, project, changes } = parsed.data;
  const projectId = mr.target_project_id ?? project?.id;
  if (projectId === undefined) return { ignored: "Merge Request Hook names no target project" };
  const free = freeMergeRequestEvent(mr, changes);
  if (free) return { ignored: free };
  const job: ReconcileJob = {
    kind: "reconcile",
    projectId,
    mrIid: mr.iid,
    reason: `Merge Request Hook:${mr.action ?? "unknown"}`,
  };
  return { jobs: [job] };
}

const noteKind = z.object({
  object_attributes: z.object({ noteable_type: z.string(), note: z.string() }),
});

const mrNoteHook = z.object({
  project_id: id.optional(),
  user: z.object({ id, username: z.string() }),
  object_attributes: z.object({
    id,
    system: z.boolean().nullish(),
    // `action` arrived in GitLab 16.11; without it the note was just created.
    action: z.string().optional(),
    url: z.string().optional(),
    // `internal` (`NoteBuilder::SAFE_HOOK_ATTRIBUTES`), `confidential` on releases before the rename.
    internal: z.boolean().nullish().catch(null),
    confidential: z.boolean().nullish().catch(null),
  }),
  merge_request: z.object({
    iid,
    target_project_id: id.optional(),
    state: z.string().optional(),
    // The head the commenter saw; only a full SHA is worth comparing (and quoting back).
    last_commit: z.object({ id: z.string().regex(/^[0-9a-f]{40}$/) }).nullish().catch(null),
  }),
});

function routeNote(payload: unknown, event: "Note Hook" | "Confidential Note Hook"): RouteResult {
  const kind = noteKind.safeParse(payload);
  if (!kind.success) return mismatch(event, kind.error);
  const { noteable_type: noteableType, note } = kind.data.object_attributes;
  if (noteableType !== "MergeRequest") return { ignored: `note on ${noteableType}, not on a merge request` };
  if (!mayCarryCommand(note)) return { ignored: "note carries no command" };
  const parsed = mrNoteHook.safeParse(payload);
  if (!parsed.success) return mismatch(event, parsed.error);
  const { object_attributes: attrs, merge_request: mr, user, project_id: hookProjectId } = parsed.data;
  const action = attrs.action ?? "create";
  if (action !== "create" && action !== "update") return { ignored: `note action ${action} is not used` };
  const projectId = mr.target_project_id ?? hookProjectId;
  if (projectId === undefined) return { ignored: `${event} names no target project` };
  // Edited and system notes still become jobs: the worker refuses them and says why in the log.
  const job: CommandJob = {
    kind: "command",
    projectId,
    mrIid: mr.iid,
    noteId: attrs.id,
    body: note,
    action,
    system: attrs.system ?? false,
    author: { id: user.id, username: user.username },
  };
  if (attrs.url !== undefined) job.noteUrl = attrs.url;
  if (mr.last_commit) job.seenSha = mr.last_commit.id;
  if (mr.state !== undefined) job.mrState = mr.state;
  // Answered with an internal note, so the answer does not make a confidential discussion public. Any sign counts.
  if (event === "Confidential Note Hook" || attrs.internal === true || attrs.confidential === true) job.internal = true;
  return { jobs: [job] };
}

const pushHook = z.object({
  ref: z.string(),
  before: z.string(),
  after: z.string(),
  project_id: id,
  user_id: id.nullish(),
  // Only to decide whether the policy file may have changed (`Gitlab::DataBuilder::Push`: at most 20 commits, each
  // with `added`/`modified`/`removed`; `total_commits_count` counts them all). The worker trusts none of it.
  project: z.object({ default_branch: z.string().nullish() }).nullish().catch(null),
  commits: z
    .array(
      z.object({
        added: z.array(z.string()).nullish().catch(null),
        modified: z.array(z.string()).nullish().catch(null),
        removed: z.array(z.string()).nullish().catch(null),
      }),
    )
    .nullish()
    .catch(null),
  total_commits_count: z.number().int().nullish().catch(null),
});

const BRANCH_REF = "refs/heads/";

/** `before` of a new branch, `after` of a deleted one. */
const BLANK_SHA = "0".repeat(40);

function routePush(payload: unknown): RouteResult {
  const parsed = pushHook.safeParse(payload);
  if (!parsed.success) return mismatch("Push Hook", parsed.error);
  const push = parsed.data;
  if (!push.ref.startsWith(BRANCH_REF)) return { ignored: `push to ${push.ref}, not to a branch` };
  const job: PushJob = {
    kind: "push",
    projectId: push.project_id,
    branch: push.ref.slice(BRANCH_REF.length),
    before: push.before,
    after: push.after,
  };
  if (push.user_id != null) job.userId = push.user_id;
  // When unsure (no default branch named, commits left out), the policy is read again: it costs one refresh.
  const defaultBranch = push.project?.default_branch;
  const toDefault = !defaultBranch || defaultBranch === job.branch;
  const commits = (push.commits ?? []).map((c) => ({
    added: c.added ?? [],
    modified: c.modified ?? [],
    removed: c.removed ?? [],
  }));
  const touched = !push.commits || pushTouchesPolicy(commits, push.total_commits_count ?? undefined);
  if (toDefault && push.after !== BLANK_SHA && touched) job.policyFile = true;
  return { jobs: [job] };
}

const pipelineHook = z.object({
  project: z.object({ id }),
  object_attributes: z.object({
    id,
    ref: z.string(),
    tag: z.boolean().nullish(),
    sha: z.string(),
    status: z.string(),
    variables: z.array(z.object({ key: z.string(), value: z.string().nullish() })).nullish(),
  }),
  merge_request: z
    .object({ iid, target_project_id: id.optional(), source_project_id: id.nullish().catch(undefined) })
    .nullish(),
});

/**
 * A pipeline on a trusted branch (by name, or carrying `TRUSTED_MR_IID`) is a pipeline job: one per event, so the
 * status each event reports reaches the worker, which records it as a durable hint before it enqueues the MR's
 * (coalesced) reconcile. Routing it straight to a reconcile lost all but one event's status when several arrived
 * while the MR was busy. Any other pipeline of an MR only asks for a look at that MR.
 *
 * The MR comes from the trusted branch's name; `TRUSTED_MR_IID` is used only for a branch whose name does not say
 * (made by hand, or by an older bot), since the bot's pipelines carry no variables where the project refuses them.
 */
function routePipeline(payload: unknown, config: RouteConfig): RouteResult {
  const parsed = pipelineHook.safeParse(payload);
  if (!parsed.success) return mismatch("Pipeline Hook", parsed.error);
  const { project, object_attributes: pipeline, merge_request: mr } = parsed.data;
  const trustedRef = !pipeline.tag && pipeline.ref.startsWith(config.trust.branch_prefix);
  const named = trustedRef ? parseTrustedBranchName(config.trust.branch_prefix, pipeline.ref)?.iid : undefined;
  const variable = pipeline.variables?.find((v) => v.key === MR_IID_VARIABLE)?.value;
  const hinted =
    variable && /^[1-9]\d*$/.test(variable) && Number.isSafeInteger(Number(variable)) ? Number(variable) : undefined;
  const mrIid = named ?? hinted;
  if (mrIid !== undefined || trustedRef) {
    const job: PipelineJob = {
      kind: "pipeline",
      projectId: project.id,
      pipelineId: pipeline.id,
      ref: pipeline.ref,
      sha: pipeline.sha,
      status: pipeline.status,
    };
    if (mrIid !== undefined) job.mrIid = mrIid;
    return { jobs: [job] };
  }
  if (mr) {
    // A fork MR's head pipeline is in the fork, where the bot posts nothing (`gatedPipeline` in decide.ts): its
    // contributor pipelines change nothing the bot shows. A deleted fork's MR (`source_project_id: null`) is a fork MR.
    const target = mr.target_project_id ?? project.id;
    if (mr.source_project_id === null || (mr.source_project_id !== undefined && mr.source_project_id !== target)) {
      return { ignored: "contributor pipeline of a fork merge request: nothing the bot shows depends on it" };
    }
    const job: ReconcileJob = {
      kind: "reconcile",
      projectId: mr.target_project_id ?? project.id,
      mrIid: mr.iid,
      reason: `Pipeline Hook:${pipeline.status}`,
    };
    return { jobs: [job] };
  }
  return { ignored: "pipeline on a branch the bot does not manage" };
}

const labelChange = z.object({
  object_attributes: z.object({ action: z.string().optional(), oldrev: z.string().nullish() }),
  changes: z.record(z.string(), z.unknown()),
});
const labelTitles = z.array(z.object({ title: z.string() })).catch([]);

/**
 * The echo of the bot's own trust-state label write, or `undefined`: an MR `update` that pushed nothing and changed
 * only labels (with `updated_at`/`updated_by_id`; `MergeRequests::UpdateService` hook `changes`, each side a list
 * of `Label#hook_attrs`), every added or removed one a trust-state label. Those labels are what decide wrote from its
 * record, so the event has no news; a person's hand edit of one is put right by the next reconcile of the MR.
 */
export function stateLabelEcho(payload: unknown, config: RouteConfig): string | undefined {
  const names = config.stateLabels;
  if (!names?.enabled) return undefined;
  const parsed = labelChange.safeParse(payload);
  if (!parsed.success) return undefined;
  const { object_attributes: mr, changes } = parsed.data;
  if (mr.action !== "update" || mr.oldrev) return undefined;
  const keys = Object.keys(changes);
  if (!keys.includes("labels") || !keys.every((k) => k === "labels" || k === "updated_at" || k === "updated_by_id")) {
    return undefined;
  }
  const labels = changes["labels"] as { previous?: unknown; current?: unknown } | null;
  const before = labelTitles.parse(labels?.previous).map((l) => l.title);
  const after = labelTitles.parse(labels?.current).map((l) => l.title);
  const changed = [...before.filter((t) => !after.includes(t)), ...after.filter((t) => !before.includes(t))];
  const state = new Set([names.waiting, names.trusted, names.stale, names.failed]);
  if (changed.length === 0 || !changed.every((t) => state.has(t))) return undefined;
  return "Merge Request Hook:update changed only trust-state labels (the bot's own write)";
}

const hookProject = z.object({ project: z.object({ id, path_with_namespace: z.string() }) });

/**
 * Why the payload's project is not one the bot serves (`scope.projects`/`scope.groups`), or `undefined` when it is
 * (or no scope is configured). From the payload alone, no GitLab call: every hook the bot uses carries `project`
 * with `id` and `path_with_namespace` (`Project#hook_attrs`; for an MR or its notes, the target project). A project
 * is served when its id or path is listed, or its path lies under a listed group's path (subgroups included). Paths
 * compare case-insensitively, as GitLab resolves them (`Route`'s case-insensitive `find_by_full_path`).
 */
export function notServed(payload: unknown, config: RouteConfig): string | undefined {
  const scope = config.scope;
  if (!scope || (scope.projects.length === 0 && scope.groups.length === 0)) return undefined;
  const parsed = hookProject.safeParse(payload);
  if (!parsed.success) return "the payload names no project, and only the projects in scope are served";
  const { id: projectId, path_with_namespace: path } = parsed.data.project;
  return isServed(scope, projectId, path) ? undefined : `project ${path} (${projectId}) is not served`;
}

/** Whether the project (id, full path) is in scope; an empty scope serves every project. Also used by the sweep. */
export function isServed(scope: NonNullable<RouteConfig["scope"]>, projectId: number, path: string): boolean {
  if (scope.projects.length === 0 && scope.groups.length === 0) return true;
  const lower = path.toLowerCase();
  const listed = scope.projects.some((p) => (typeof p === "number" ? p === projectId : p.toLowerCase() === lower));
  return listed || scope.groups.some((g) => lower.startsWith(`${g.toLowerCase().replace(/\/+$/, "")}/`));
}

function mismatch(event: string, error: z.ZodError): RouteResult {
  const issue = error.issues[0];
  const where = issue?.path.length ? issue.path.join(".") : "payload";
  return { ignored: `${event} payload not understood: ${where}: ${issue?.message ?? "invalid"}` };
}
