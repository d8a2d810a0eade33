/**
 * Merge requests (lib/api/merge_requests.rb), their notes (lib/api/notes.rb) and note award emoji
 * (lib/api/award_emoji.rb).
 */
import { assertApprovalChecksPass } from "../approvals.js";
import { createMergeRequestPipeline } from "../ci-actions.js";
import {
  awardEmojiEntity,
  mergeRequestEntity,
  mergeRequestVersionEntity,
  noteEntity,
  pipelineEntity,
} from "../entities.js";
import {
  addNote,
  awardEmoji,
  deleteNote,
  editNote,
  mayMarkNoteInternal,
  mergeMergeRequest,
  openMergeRequest,
  updateMergeRequest,
} from "../merge-request-actions.js";
import { findProject, oneOf, optBool, optInt, optList, optString, optTime, reqInt, reqString } from "../http/params.js";
import { paginate, sortBy } from "../http/pagination.js";
import { created, noContent, ok, type RequestContext, type RouteTable } from "../http/route-table.js";
import { SimError } from "../sim-error.js";
import type { MergeRequestRecord, NoteRecord } from "../state.js";

function findMr(ctx: RequestContext): MergeRequestRecord {
  const project = findProject(ctx);
  const mr = project.mergeRequests.get(reqInt(ctx.params, "iid"));
  if (!mr) throw new SimError("not_found", "404 Merge Request Not Found");
  return mr;
}

function findNote(ctx: RequestContext, mr: MergeRequestRecord): NoteRecord {
  const id = reqInt(ctx.params, "note_id");
  const note = (ctx.state.project(mr.targetProjectId).notes.get(mr.iid) ?? []).find((n) => n.id === id);
  // `noteable.notes.find(id)` raises RecordNotFound, which the API renders as "404 Not found".
  if (!note) throw new SimError("not_found", "404 Not found");
  // `get_note`: a note the caller may not read (an internal one) is `not_found!("Note")`.
  if (note.internal && !mayMarkNoteInternal(ctx.world, ctx.user.id, ctx.state.project(mr.targetProjectId))) {
    throw new SimError("not_found", "404 Note Not Found");
  }
  return note;
}

/** Label filter of `MergeRequestsFinder`: `None`, `Any`, or all of the listed labels. */
function labelFilter(labels: string[] | undefined): (mr: MergeRequestRecord) => boolean {
  if (labels === undefined || labels.length === 0) return () => true;
  if (labels.length === 1 && labels[0]?.toLowerCase() === "none") return (mr) => mr.labels.length === 0;
  if (labels.length === 1 && labels[0]?.toLowerCase() === "any") return (mr) => mr.labels.length > 0;
  return (mr) => labels.every((l) => mr.labels.includes(l));
}

export function mergeRequestRoutes(t: RouteTable): void {
  const MR = "/projects/:id/merge_requests/:iid";

  t.get("/projects/:id/merge_requests", (ctx) => {
    const project = findProject(ctx);
    const p = ctx.params;
    const state = oneOf(p, "state", ["opened", "closed", "merged", "locked", "all"] as const) ?? "all";
    const source = optString(p, "source_branch");
    const target = optString(p, "target_branch");
    const author = optInt(p, "author_id");
    const iids = optList(p, "iids")?.map(Number);
    const hasLabel = labelFilter(optList(p, "labels"));
    // `IssuableFinder#by_updated_at`: `updated_at >= updated_after`, `updated_at <= updated_before`.
    const updatedAfter = optTime(p, "updated_after");
    const updatedBefore = optTime(p, "updated_before");
    const orderBy = oneOf(p, "order_by", ["created_at", "updated_at", "title"] as const) ?? "created_at";
    const sort = oneOf(p, "sort", ["asc", "desc"] as const) ?? "desc";
    const list = [...project.mergeRequests.values()].filter(
      (mr) =>
        (state === "all" || mr.state === state) &&
        (source === undefined || mr.sourceBranch === source) &&
        (target === undefined || mr.targetBranch === target) &&
        (author === undefined || mr.authorId === author) &&
        (iids === undefined || iids.includes(mr.iid)) &&
        (updatedAfter === undefined || Date.parse(mr.updatedAt) >= updatedAfter) &&
        (updatedBefore === undefined || Date.parse(mr.updatedAt) <= updatedBefore) &&
        hasLabel(mr),
    );
    const key = (mr: MergeRequestRecord) =>
      orderBy === "title"
        ? mr.title
        : `${orderBy === "updated_at" ? mr.updatedAt : mr.createdAt}#${String(mr.id).padStart(12, "0")}`;
    sortBy(list, key, sort);
    return paginate(ctx, list, (mr) => mergeRequestEntity(ctx.state, mr, ctx.user.id, { detail: false }));
  });

  t.get(MR, (ctx) => ok(mergeRequestEntity(ctx.state, findMr(ctx), ctx.user.id, { detail: true })));

  // lib/api/merge_request_diffs.rb: `merge_request.merge_request_diffs.order_id_desc`, paginated.
  t.get(`${MR}/versions`, (ctx) => {
    const mr = findMr(ctx);
    const versions = [...(ctx.state.project(mr.targetProjectId).mergeRequestVersions.get(mr.iid) ?? [])].reverse();
    return paginate(ctx, versions, mergeRequestVersionEntity);
  });

  t.post("/projects/:id/merge_requests", (ctx) => {
    const project = findProject(ctx);
    const mr = openMergeRequest(ctx.world, {
      sourceProjectId: project.id,
      sourceBranch: reqString(ctx.params, "source_branch"),
      // The API targets the project itself unless `target_project_id` says otherwise.
      targetProjectId: optInt(ctx.params, "target_project_id") ?? project.id,
      targetBranch: reqString(ctx.params, "target_branch"),
      title: reqString(ctx.params, "title"),
      description: optString(ctx.params, "description") ?? "",
      labels: optList(ctx.params, "labels") ?? [],
      authorId: ctx.user.id,
    });
    return created(mergeRequestEntity(ctx.state, mr, ctx.user.id, { detail: true }));
  });

  t.put(MR, (ctx) => {
    const mr = findMr(ctx);
    const p = ctx.params;
    const input = {
      title: optString(p, "title"),
      description: optString(p, "description"),
      labels: optList(p, "labels"),
      addLabels: optList(p, "add_labels"),
      removeLabels: optList(p, "remove_labels"),
      stateEvent: oneOf(p, "state_event", ["close", "reopen"] as const),
    };
    if (Object.values(input).every((v) => v === undefined)) {
      // Grape's `at_least_one_of` over the updatable params.
      throw new SimError("bad_request", "400 Bad request - at least one of the parameters must be provided");
    }
    const clean = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
    updateMergeRequest(ctx.world, mr, ctx.user.id, clean);
    return ok(mergeRequestEntity(ctx.state, mr, ctx.user.id, { detail: true }));
  });

  t.put(`${MR}/merge`, (ctx) => {
    const mr = findMr(ctx);
    const sha = optString(ctx.params, "sha");
    assertApprovalChecksPass(ctx.state, mr);
    // The `sha` check (409) comes after the mergeability checks, as in GitLab: see `mergeMergeRequest`.
    mergeMergeRequest(ctx.world, mr, ctx.user.id, sha === undefined ? {} : { sha });
    return ok(mergeRequestEntity(ctx.state, mr, ctx.user.id, { detail: true }));
  });

  // `post ':id/merge_requests/:merge_request_iid/pipelines'` (lib/api/merge_requests.rb): a new merge request
  // pipeline for the MR's head (`MergeRequests::CreatePipelineService`, `allow_duplicate: true`), 201 with the
  // pipeline; a refused one is 400 with the chain's errors.
  t.post(`${MR}/pipelines`, (ctx) => {
    const mr = findMr(ctx);
    const pipeline = createMergeRequestPipeline(ctx.world, mr, ctx.user.id);
    return created(pipelineEntity(ctx.state, pipeline));
  });

  t.get(`${MR}/notes`, (ctx) => {
    const mr = findMr(ctx);
    const orderBy = oneOf(ctx.params, "order_by", ["created_at", "updated_at"] as const) ?? "created_at";
    const sort = oneOf(ctx.params, "sort", ["asc", "desc"] as const) ?? "desc";
    // `note.readable_by?(current_user)`: internal notes only for those who may see them (Planner, Reporter and up).
    const project = ctx.state.project(mr.targetProjectId);
    const notes = (project.notes.get(mr.iid) ?? []).filter(
      (n) => !n.internal || mayMarkNoteInternal(ctx.world, ctx.user.id, project),
    );
    sortBy(
      notes,
      (n) => `${orderBy === "updated_at" ? n.updatedAt : n.createdAt}#${String(n.id).padStart(12, "0")}`,
      sort,
    );
    return paginate(ctx, notes, (n) => noteEntity(ctx.state, n));
  });

  t.post(`${MR}/notes`, (ctx) => {
    const mr = findMr(ctx);
    // `internal: params[:internal] || params[:confidential]` (lib/api/notes.rb; `confidential` is the pre-15.5 name).
    const internal = optBool(ctx.params, "internal") === true || optBool(ctx.params, "confidential") === true;
    const note = addNote(ctx.world, mr, ctx.user.id, reqString(ctx.params, "body"), { internal });
    return created(noteEntity(ctx.state, note));
  });

  t.get(`${MR}/notes/:note_id`, (ctx) => {
    const mr = findMr(ctx);
    return ok(noteEntity(ctx.state, findNote(ctx, mr)));
  });

  t.put(`${MR}/notes/:note_id`, (ctx) => {
    const mr = findMr(ctx);
    const note = findNote(ctx, mr);
    editNote(ctx.world, mr, note, ctx.user.id, reqString(ctx.params, "body"));
    return ok(noteEntity(ctx.state, note));
  });

  t.delete(`${MR}/notes/:note_id`, (ctx) => {
    const mr = findMr(ctx);
    deleteNote(ctx.world, findNote(ctx, mr), ctx.user.id);
    return noContent();
  });

  t.get(`${MR}/notes/:note_id/award_emoji`, (ctx) => {
    const mr = findMr(ctx);
    const note = findNote(ctx, mr);
    return paginate(ctx, note.awards, (a) => awardEmojiEntity(ctx.state, a));
  });

  t.post(`${MR}/notes/:note_id/award_emoji`, (ctx) => {
    const mr = findMr(ctx);
    const award = awardEmoji(ctx.world, findNote(ctx, mr), ctx.user.id, reqString(ctx.params, "name"));
    return created(awardEmojiEntity(ctx.state, award));
  });
}
