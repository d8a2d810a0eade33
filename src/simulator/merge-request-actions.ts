/**
 * Merge requests, their notes and award emoji. MRs live in the target project and fire their hooks there.
 */
import { createMergeRequestPipeline } from "./ci-actions.js";
import { addCommit, copyHistory } from "./git.js";
import { AccessLevel, type SimAwardEmoji } from "./model.js";
import { hookTime, labelHookAttrs, type MergeRequestAction, mergeRequestPayload, notePayload } from "./payloads.js";
import { canMergeToBranch, canPushCode, canPushToBranch, canReadProject, hasAccess } from "./permissions.js";
import { moveBranch, recordMergeRequestHead } from "./repository-actions.js";
import { headPipelineOf } from "./head-pipeline.js";
import { FORBIDDEN, SimError } from "./sim-error.js";
import type { MergeRequestRecord, NoteRecord, ProjectRecord } from "./state.js";
import { nowIso, type World } from "./world.js";

export interface OpenMergeRequestInput {
  sourceProjectId: number;
  sourceBranch: string;
  /** Default: the source project's upstream (`forked_from_project`) if any, else the source project. */
  targetProjectId?: number;
  /** Default: the target project's default branch. */
  targetBranch?: string;
  authorId: number;
  title?: string;
  description?: string;
  labels?: string[];
  draft?: boolean;
}

/** Project labels are created on first use, like the MR API's `labels`/`add_labels` (`Labels::FindOrCreateService`). */
export function ensureLabels(world: World, project: ProjectRecord, titles: readonly string[]): void {
  for (const title of titles) {
    if (project.labels.some((l) => l.name === title)) continue;
    project.labels.push({ id: world.state.nextId("label"), name: title, color: "#6699cc", description: null });
  }
}

function emitMr(
  world: World,
  mr: MergeRequestRecord,
  userId: number,
  action: MergeRequestAction,
  extra: { oldrev?: string; changes?: Record<string, unknown> } = {},
): void {
  const payload = mergeRequestPayload(world.state, mr, { user: world.state.user(userId), action, ...extra });
  world.hooks.emit(mr.targetProjectId, "merge_request", payload);
}

/** `MergeRequests::CreateService`; error bodies as `lib/api/merge_requests.rb#handle_merge_request_errors!`. */
export function openMergeRequest(world: World, m: OpenMergeRequestInput): MergeRequestRecord {
  const { state } = world;
  const source = state.project(m.sourceProjectId);
  const target = state.project(m.targetProjectId ?? source.forkedFromProjectId ?? source.id);
  state.user(m.authorId);
  if (target.id !== source.id && source.forkedFromProjectId !== target.id) {
    throw new SimError("unprocessable", ["Source project is not a fork of the target project"]);
  }
  if (!canReadProject(state, m.authorId, target)) throw new SimError("not_found", "404 Project Not Found");
  // `create_merge_request_from` needs push access to the source project.
  if (!canPushCode(state, m.authorId, source)) throw new SimError("forbidden", FORBIDDEN);
  const targetBranch = m.targetBranch ?? target.defaultBranch;
  const sha = source.branches.get(m.sourceBranch);
  if (sha === undefined) throw new SimError("unprocessable", [`Source branch "${m.sourceBranch}" does not exist`]);
  const baseSha = target.branches.get(targetBranch);
  if (baseSha === undefined) throw new SimError("unprocessable", [`Target branch "${targetBranch}" does not exist`]);
  for (const other of target.mergeRequests.values()) {
    if (
      other.state === "opened" &&
      other.sourceProjectId === source.id &&
      other.sourceBranch === m.sourceBranch &&
      other.targetBranch === targetBranch
    ) {
      throw new SimError("conflict", [
        `Another open merge request already exists for this source branch: !${other.iid}`,
      ]);
    }
  }
  const now = nowIso();
  const iid = target.nextMergeRequestIid++;
  const title = m.title ?? `Merge ${m.sourceBranch}`;
  const mr: MergeRequestRecord = {
    id: state.nextId("mergeRequest"),
    iid,
    projectId: target.id,
    targetProjectId: target.id,
    targetBranch,
    sourceProjectId: source.id,
    sourceBranch: m.sourceBranch,
    title,
    description: m.description ?? "",
    authorId: m.authorId,
    state: "opened",
    labels: [...(m.labels ?? [])],
    draft: m.draft ?? /^\s*(\[draft\]|draft:|\(draft\))/i.test(title),
    sha,
    baseSha,
    startSha: baseSha,
    mergeCommitSha: null,
    mergedById: null,
    closedById: null,
    createdAt: now,
    updatedAt: now,
    mergedAt: null,
    closedAt: null,
    webUrl: `${target.webUrl}/-/merge_requests/${iid}`,
  };
  ensureLabels(world, target, mr.labels);
  // GitLab writes refs/merge-requests/:iid/head in the target repository, for fork MRs too (*inferred* from
  // `MergeRequest#fetch_ref!`), so the head commit can be used as a ref in the target project.
  copyHistory(source, target, sha);
  target.mergeRequests.set(iid, mr);
  recordMergeRequestHead(world, target, mr);
  emitMr(world, mr, m.authorId, "open");
  // `MergeRequests::AfterCreateService#prepare_merge_request` creates the first merge request pipeline.
  if (target.mergeRequestPipelines && mr.sourceProjectId === target.id) {
    createMergeRequestPipeline(world, mr, m.authorId, { trusted: true });
  }
  return mr;
}

/** `update_merge_request`: the author, or Developer and above in the target project. */
function mayUpdate(world: World, mr: MergeRequestRecord, userId: number): boolean {
  return (
    mr.authorId === userId ||
    hasAccess(world.state, userId, world.state.project(mr.targetProjectId), AccessLevel.Developer)
  );
}

export interface UpdateMergeRequestInput {
  title?: string;
  description?: string;
  labels?: string[];
  addLabels?: string[];
  removeLabels?: string[];
  stateEvent?: "close" | "reopen";
}

/**
 * `PUT /projects/:id/merge_requests/:iid` (`MergeRequests::UpdateService`). Label changes need Reporter access
 * (`set_merge_request_metadata`); without it they are silently dropped, as GitLab filters the params. A title,
 * description or label change fires MR Hook `update` with `changes`; `state_event` fires `close`/`reopen`.
 */
export function updateMergeRequest(
  world: World,
  mr: MergeRequestRecord,
  userId: number,
  input: UpdateMergeRequestInput,
): void {
  const { state } = world;
  const target = state.project(mr.targetProjectId);
  if (!mayUpdate(world, mr, userId)) throw new SimError("forbidden", FORBIDDEN);
  const changes: Record<string, unknown> = {};
  const before = { labels: [...mr.labels], updatedAt: mr.updatedAt };
  if (input.title !== undefined && input.title !== mr.title) {
    changes["title"] = { previous: mr.title, current: input.title };
    mr.title = input.title;
  }
  if (input.description !== undefined && input.description !== mr.description) {
    changes["description"] = { previous: mr.description, current: input.description };
    mr.description = input.description;
  }
  if (hasAccess(state, userId, target, AccessLevel.Reporter)) {
    let labels = input.labels ?? [...mr.labels];
    labels = [...labels, ...(input.addLabels ?? []).filter((l) => !labels.includes(l))];
    labels = labels.filter((l) => !(input.removeLabels ?? []).includes(l));
    if (labels.join("\u0000") !== mr.labels.join("\u0000")) {
      ensureLabels(world, target, labels);
      mr.labels = labels;
      const asHook = (titles: string[]) => titles.map((t) => labelHookAttrs(target, t));
      changes["labels"] = { previous: asHook(before.labels), current: asHook(labels) };
    }
  }
  if (Object.keys(changes).length > 0) {
    mr.updatedAt = nowIso();
    changes["updated_at"] = { previous: hookTime(before.updatedAt), current: hookTime(mr.updatedAt) };
    emitMr(world, mr, userId, "update", { changes });
  }
  if (input.stateEvent === "close" && mr.state === "opened") closeMergeRequest(world, mr, userId);
  // `MergeRequests::ReopenService` leaves an MR that is not `reopenable?` (its fork was deleted) closed, silently.
  if (input.stateEvent === "reopen" && mr.state === "closed" && sourceProjectOf(world, mr)) {
    reopenMergeRequest(world, mr, userId);
  }
}

export function closeMergeRequest(world: World, mr: MergeRequestRecord, userId: number): void {
  if (!mayUpdate(world, mr, userId)) throw new SimError("forbidden", FORBIDDEN);
  if (mr.state !== "opened") throw new SimError("method_not_allowed", "405 Method Not Allowed");
  const now = nowIso();
  Object.assign(mr, { state: "closed", closedAt: now, closedById: userId, updatedAt: now });
  emitMr(world, mr, userId, "close", { changes: { state_id: { previous: 1, current: 2 } } });
}

/**
 * The project an MR's source branch lives in; `undefined` once it was deleted (`source_project_id` nullified). Such
 * an MR cannot be reopened (`MergeRequest#reopenable?`: `!source_project_missing?`) nor merged (`#broken?`: its
 * source branch is missing, so `mergeable?` is false).
 */
function sourceProjectOf(world: World, mr: MergeRequestRecord): ProjectRecord | undefined {
  return mr.sourceProjectId === null ? undefined : world.state.projects.get(mr.sourceProjectId);
}

/** A reopen of an MR that is not `reopenable?` is a 405 here; the API's `state_event: reopen` is ignored instead. */
export function reopenMergeRequest(world: World, mr: MergeRequestRecord, userId: number): void {
  if (!mayUpdate(world, mr, userId)) throw new SimError("forbidden", FORBIDDEN);
  if (mr.state !== "closed") throw new SimError("method_not_allowed", "405 Method Not Allowed");
  const source = sourceProjectOf(world, mr);
  if (!source) throw new SimError("method_not_allowed", "405 Method Not Allowed");
  const head = source?.branches.get(mr.sourceBranch);
  const oldrev = mr.sha;
  Object.assign(mr, { state: "opened", closedAt: null, closedById: null, updatedAt: nowIso() });
  if (source && head !== undefined && head !== mr.sha) {
    mr.sha = head;
    copyHistory(source, world.state.project(mr.targetProjectId), head);
    recordMergeRequestHead(world, world.state.project(mr.targetProjectId), mr);
  }
  emitMr(world, mr, userId, "reopen", {
    changes: { state_id: { previous: 2, current: 1 } },
    ...(oldrev !== mr.sha ? { oldrev } : {}),
  });
}

/**
 * `PUT .../merge` (`MergeRequests::MergeService`): a user who can neither merge nor push to the target branch gets
 * 401 (`unauthorized! unless merge_request.can_be_merged_by?`); a closed, merged or draft MR 405. The target branch
 * moves to a new merge commit (Push Hook, push pipeline), then MR Hook `merge`.
 */
export function mergeMergeRequest(
  world: World,
  mr: MergeRequestRecord,
  userId: number,
  o: { sha?: string } = {},
): void {
  const { state } = world;
  const target = state.project(mr.targetProjectId);
  const allowed =
    canMergeToBranch(state, userId, target, mr.targetBranch) || canPushToBranch(state, userId, target, mr.targetBranch);
  if (!allowed) throw new SimError("unauthorized", "401 Unauthorized");
  if (mr.state !== "opened" || mr.draft) throw new SimError("method_not_allowed", "405 Method Not Allowed");
  const targetHead = target.branches.get(mr.targetBranch);
  if (targetHead === undefined) throw new SimError("unprocessable", "Branch cannot be merged");
  const source = sourceProjectOf(world, mr);
  // `lib/api/merge_requests.rb`: `not_allowed!` unless `merge_request.mergeable?`; with its source project deleted
  // the MR is `broken?` (`branch_missing?`), never mergeable.
  if (!source) throw new SimError("method_not_allowed", "405 Method Not Allowed");
  // "Pipelines must succeed": `mergeable?` runs `MergeRequests::Mergeability::CheckCiStatusService`, whose
  // `mergeable_ci_state?` needs a head pipeline (`diff_head_pipeline`, head-pipeline.ts) that succeeded
  // (`app/services/merge_requests/mergeability/check_ci_status_service.rb`; `allow_merge_on_skipped_pipeline` is not
  // modelled, so a skipped one blocks too). Not mergeable is `not_allowed!`, 405, in `lib/api/merge_requests.rb`.
  if (target.onlyAllowMergeIfPipelineSucceeds && headPipelineOf(state, mr)?.status !== "success") {
    throw new SimError("method_not_allowed", "405 Method Not Allowed");
  }
  // `check_sha_param!` comes after the mergeability checks in `lib/api/merge_requests.rb`.
  if (o.sha !== undefined && o.sha !== mr.sha) {
    throw new SimError("conflict", "SHA does not match HEAD of source branch");
  }
  copyHistory(source, target, mr.sha);
  const mergeCommit = addCommit(target, {
    parentIds: [targetHead, mr.sha],
    message: `Merge branch '${mr.sourceBranch}' into '${mr.targetBranch}'\n\n${mr.title}\n\nSee merge request !${mr.iid}`,
    authorId: userId,
  });
  moveBranch(world, target, mr.targetBranch, targetHead, mergeCommit.id, userId);
  const now = nowIso();
  Object.assign(mr, {
    state: "merged",
    mergedAt: now,
    mergedById: userId,
    mergeCommitSha: mergeCommit.id,
    updatedAt: now,
  });
  emitMr(world, mr, userId, "merge", { changes: { state_id: { previous: 1, current: 3 } } });
}

/**
 * `mark_note_as_internal` (`MergeRequestPolicy`: `planner_or_reporter_access`). Without it `Notes::BuildService`
 * silently drops the `internal` flag: the note is public.
 */
export function mayMarkNoteInternal(world: World, userId: number, project: ProjectRecord): boolean {
  return hasAccess(world.state, userId, project, AccessLevel.Planner);
}

/** Internal notes go to `confidential_note_hooks`, the others to `note_hooks` (`Notes::PostProcessService`). */
function noteHookKind(note: NoteRecord): "note" | "confidential_note" {
  return note.internal ? "confidential_note" : "note";
}

/**
 * Adds a note to an MR. `Notes::PostProcessService` runs note hooks only for user notes: a system note fires none.
 * `internal` asks for an internal note, kept only when the author may mark notes internal.
 */
export function addNote(
  world: World,
  mr: MergeRequestRecord,
  userId: number,
  body: string,
  o: { system?: boolean; internal?: boolean } = {},
): NoteRecord {
  const { state } = world;
  const project = state.project(mr.targetProjectId);
  if (!canReadProject(state, userId, project)) throw new SimError("not_found", "404 Project Not Found");
  if (body.trim() === "") throw new SimError("bad_request", { note: ["can't be blank"] });
  const internal = o.internal === true && mayMarkNoteInternal(world, userId, project);
  const now = nowIso();
  const note: NoteRecord = {
    id: state.nextId("note"),
    projectId: project.id,
    noteableIid: mr.iid,
    noteableId: mr.id,
    body,
    authorId: userId,
    system: o.system ?? false,
    internal,
    createdAt: now,
    updatedAt: now,
    awards: [],
  };
  state.notesOf(project.id, mr.iid).push(note);
  if (!note.system) {
    const payload = notePayload(state, mr, note, { user: state.user(userId), action: "create" });
    world.hooks.emit(project.id, noteHookKind(note), payload);
  }
  return note;
}

/** Only the author may edit a note (`admin_note` in `NotePolicy`); fires Note Hook `update`. */
export function editNote(world: World, mr: MergeRequestRecord, note: NoteRecord, userId: number, body: string): void {
  if (note.authorId !== userId) throw new SimError("forbidden", FORBIDDEN);
  if (body.trim() === "") throw new SimError("bad_request", { note: ["can't be blank"] });
  if (note.body === body) return;
  note.body = body;
  note.updatedAt = nowIso();
  if (!note.system) {
    world.hooks.emit(
      note.projectId,
      noteHookKind(note),
      notePayload(world.state, mr, note, { user: world.state.user(userId), action: "update" }),
    );
  }
}

export function deleteNote(world: World, note: NoteRecord, userId: number): void {
  if (note.authorId !== userId) throw new SimError("forbidden", FORBIDDEN);
  const list = world.state.notesOf(note.projectId, note.noteableIid);
  list.splice(list.indexOf(note), 1);
}

/**
 * `POST .../notes/:note_id/award_emoji` (`AwardEmojis::AddService`). The same emoji twice by the same user fails
 * the uniqueness validation; the API wraps the service's message array in `not_found!`, giving
 * `404 Award Emoji ["Name has already been taken"] Not Found`.
 */
export function awardEmoji(world: World, note: NoteRecord, userId: number, name: string): SimAwardEmoji {
  const project = world.state.project(note.projectId);
  if (!canReadProject(world.state, userId, project)) throw new SimError("not_found", "404 Award Emoji Not Found");
  if (!/^[a-z0-9_+-]+$/.test(name)) {
    throw new SimError("not_found", '404 Award Emoji ["Name is not a valid emoji name"] Not Found');
  }
  if (note.awards.some((a) => a.name === name && a.userId === userId)) {
    throw new SimError("not_found", '404 Award Emoji ["Name has already been taken"] Not Found');
  }
  const award: SimAwardEmoji = {
    id: world.state.nextId("award"),
    name,
    userId,
    awardableId: note.id,
    createdAt: nowIso(),
  };
  note.awards.push(award);
  return award;
}
