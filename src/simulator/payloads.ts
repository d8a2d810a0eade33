/**
 * Webhook payload builders, shaped like GitLab's documented examples (`test/fixtures/gitlab/payloads/`) and built
 * from the same parts as GitLab's data builders: `lib/gitlab/data_builder/push.rb`, `note.rb`, `pipeline.rb`,
 * `lib/gitlab/hook_data/merge_request_builder.rb`, and `Project#hook_attrs`, `Commit#hook_attrs`, `User#hook_attrs`.
 *
 * Timestamps use GitLab's hook format (`2015-05-17 18:21:36 UTC`); commit timestamps are ISO 8601.
 */
import { fileAt } from "./git.js";
import { BLANK_SHA, type SimCommit } from "./model.js";
import { detailedStatus } from "./pipeline-status.js";
import type { MergeRequestRecord, NoteRecord, PipelineRecord, ProjectRecord, SimState, UserRecord } from "./state.js";

type Json = Record<string, unknown>;

/** `2015-05-17 18:21:36 UTC` */
export function hookTime(iso: string | null): string | null {
  if (iso === null) return null;
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

export function visibilityLevel(project: ProjectRecord): number {
  return project.visibility === "public" ? 20 : project.visibility === "internal" ? 10 : 0;
}

function host(state: SimState): string {
  return new URL(state.baseUrl).host;
}

export function namespaceName(state: SimState, project: ProjectRecord): string {
  const ns = project.namespace;
  return ns.kind === "user" ? state.user(ns.userId).name : ns.fullPath.split("/").pop()!;
}

/** `User#hook_attrs`; GitLab redacts the email in webhooks. */
export function userHookAttrs(state: SimState, user: UserRecord): Json {
  return {
    id: user.id,
    name: user.name,
    username: user.username,
    avatar_url: `${state.baseUrl}/uploads/-/system/user/avatar/${user.id}/avatar.png`,
    email: "[REDACTED]",
  };
}

/**
 * `Project#hook_attrs(backward:)`. `backward` adds the legacy `homepage`/`url`/`ssh_url`/`http_url`; the pipeline
 * builder asks for `backward: false`.
 */
export function projectHookAttrs(state: SimState, project: ProjectRecord, o: { backward: boolean }): Json {
  const ssh = `git@${host(state)}:${project.pathWithNamespace}.git`;
  const http = `${project.webUrl}.git`;
  const attrs: Json = {
    id: project.id,
    name: project.name,
    description: "",
    web_url: project.webUrl,
    avatar_url: null,
    git_ssh_url: ssh,
    git_http_url: http,
    namespace: namespaceName(state, project),
    visibility_level: visibilityLevel(project),
    path_with_namespace: project.pathWithNamespace,
    default_branch: project.defaultBranch,
    ci_config_path: "",
  };
  if (o.backward) Object.assign(attrs, { homepage: project.webUrl, url: ssh, ssh_url: ssh, http_url: http });
  return attrs;
}

function repositoryAttrs(project: ProjectRecord, o: { push: boolean }, state: SimState): Json {
  const ssh = `git@${host(state)}:${project.pathWithNamespace}.git`;
  const base: Json = { name: project.name, url: ssh, description: "", homepage: project.webUrl };
  if (!o.push) return base;
  return {
    ...base,
    git_http_url: `${project.webUrl}.git`,
    git_ssh_url: ssh,
    visibility_level: visibilityLevel(project),
  };
}

/** `Commit#hook_attrs` (with the file lists push events carry). */
export function commitHookAttrs(
  state: SimState,
  project: ProjectRecord,
  commit: SimCommit,
  o: { files: boolean },
): Json {
  const author = state.users.get(commit.authorId);
  const attrs: Json = {
    id: commit.id,
    message: commit.message,
    title: commit.title,
    timestamp: commit.createdAt.replace(/\.\d{3}Z$/, "+00:00"),
    url: `${project.webUrl}/-/commit/${commit.id}`,
    author: { name: author?.name ?? "unknown", email: "[REDACTED]" },
  };
  if (o.files) Object.assign(attrs, commitFileLists(project, commit));
  return attrs;
}

/**
 * `added`/`modified`/`removed` of a commit in a push hook (`Commit#hook_attrs` with `with_changed_files`,
 * `Commit#repo_changes` in app/models/commit.rb: the diff against the parent, a deleted file `removed`, a new or
 * renamed one `added`, any other `modified`): the files the commit wrote, sorted by whether the parent had them. A commit that
 * wrote no modelled file reports `README.md` modified, as before files were modelled.
 */
function commitFileLists(project: ProjectRecord, commit: SimCommit): Json {
  if (!commit.files) return { added: [], modified: ["README.md"], removed: [] };
  const parent = commit.parentIds[0];
  const lists = { added: [] as string[], modified: [] as string[], removed: [] as string[] };
  for (const [path, contents] of Object.entries(commit.files)) {
    const before = parent === undefined ? undefined : fileAt(project, parent, path);
    if (contents === null) {
      if (before !== undefined) lists.removed.push(path);
    } else if (before === undefined) lists.added.push(path);
    else lists.modified.push(path);
  }
  return lists;
}

/** `Label#hook_attrs` */
export function labelHookAttrs(project: ProjectRecord, title: string): Json {
  const label = project.labels.find((l) => l.name === title);
  const now = hookTime(new Date().toISOString());
  return {
    id: label?.id ?? 0,
    title,
    color: label?.color ?? "#6699cc",
    project_id: project.id,
    created_at: now,
    updated_at: now,
    template: false,
    description: label?.description ?? null,
    type: "ProjectLabel",
    group_id: null,
  };
}

/** Commits carried by a push: the new commits from `after` back to `before` (at most 20, newest last). */
function pushedCommits(project: ProjectRecord, before: string, after: string): SimCommit[] {
  const out: SimCommit[] = [];
  let current = after === BLANK_SHA ? undefined : project.commits.get(after);
  while (current && current.id !== before && out.length < 20) {
    out.unshift(current);
    const parent = current.parentIds[0];
    current = parent === undefined || before === BLANK_SHA ? undefined : project.commits.get(parent);
  }
  return out;
}

/** `Gitlab::DataBuilder::Push.build`. */
export function pushPayload(
  state: SimState,
  project: ProjectRecord,
  o: { user: UserRecord; ref: string; before: string; after: string; refProtected: boolean },
): Json {
  const commits = pushedCommits(project, o.before, o.after);
  return {
    object_kind: "push",
    event_name: "push",
    before: o.before,
    after: o.after,
    ref: `refs/heads/${o.ref}`,
    ref_protected: o.refProtected,
    checkout_sha: o.after === BLANK_SHA ? null : o.after,
    user_id: o.user.id,
    user_name: o.user.name,
    user_username: o.user.username,
    user_email: "[REDACTED]",
    user_avatar: userHookAttrs(state, o.user)["avatar_url"],
    project_id: project.id,
    project: projectHookAttrs(state, project, { backward: true }),
    repository: repositoryAttrs(project, { push: true }, state),
    commits: commits.map((c) => commitHookAttrs(state, project, c, { files: true })),
    total_commits_count: commits.length,
  };
}

function lastCommitAttrs(state: SimState, mr: MergeRequestRecord): Json | null {
  const source = mr.sourceProjectId === null ? undefined : state.projects.get(mr.sourceProjectId);
  const target = state.project(mr.targetProjectId);
  const commit = source?.commits.get(mr.sha) ?? target.commits.get(mr.sha);
  return commit ? commitHookAttrs(state, source ?? target, commit, { files: false }) : null;
}

/**
 * `first_contribution`: the author has no merged MR in the target project and is not a member
 * (`MergeRequest#first_contribution?`).
 */
function firstContribution(state: SimState, mr: MergeRequestRecord): boolean {
  const target = state.project(mr.targetProjectId);
  if (target.members.has(mr.authorId)) return false;
  if (target.namespace.kind === "group" && state.groupMembers.get(target.namespace.id)?.has(mr.authorId)) {
    return false;
  }
  return ![...target.mergeRequests.values()].some((m) => m.authorId === mr.authorId && m.state === "merged");
}

const STATE_ID = { opened: 1, closed: 2, merged: 3, locked: 4 } as const;

/** `MergeRequest#hook_attrs` as the MR Hook's `object_attributes` (`Gitlab::HookData::MergeRequestBuilder`). */
export function mergeRequestHookAttrs(state: SimState, mr: MergeRequestRecord): Json {
  const target = state.project(mr.targetProjectId);
  const source = mr.sourceProjectId === null ? undefined : state.projects.get(mr.sourceProjectId);
  return {
    id: mr.id,
    iid: mr.iid,
    target_branch: mr.targetBranch,
    source_branch: mr.sourceBranch,
    source_project_id: mr.sourceProjectId,
    author_id: mr.authorId,
    assignee_ids: [],
    assignee_id: null,
    reviewer_ids: [],
    title: mr.title,
    created_at: hookTime(mr.createdAt),
    updated_at: hookTime(mr.updatedAt),
    last_edited_at: null,
    last_edited_by_id: null,
    milestone_id: null,
    state_id: STATE_ID[mr.state],
    state: mr.state,
    blocking_discussions_resolved: true,
    work_in_progress: mr.draft,
    draft: mr.draft,
    first_contribution: firstContribution(state, mr),
    merge_status: "can_be_merged",
    target_project_id: mr.targetProjectId,
    description: mr.description,
    prepared_at: hookTime(mr.createdAt),
    total_time_spent: 0,
    time_change: 0,
    human_total_time_spent: null,
    human_time_change: null,
    human_time_estimate: null,
    url: mr.webUrl,
    // `merge_request.source_project.try(:hook_attrs)` (lib/gitlab/hook_data/merge_request_builder.rb): null once
    // the source fork was deleted.
    source: source ? projectHookAttrs(state, source, { backward: true }) : null,
    target: projectHookAttrs(state, target, { backward: true }),
    last_commit: lastCommitAttrs(state, mr),
    labels: mr.labels.map((t) => labelHookAttrs(target, t)),
    detailed_merge_status: mr.state === "opened" ? "mergeable" : "not_open",
  };
}

export type MergeRequestAction = "open" | "close" | "reopen" | "update" | "merge";

/** Merge Request Hook. `oldrev` only when new code arrived on the source branch (FACTS, `merge_request_builder.rb`). */
export function mergeRequestPayload(
  state: SimState,
  mr: MergeRequestRecord,
  o: { user: UserRecord; action: MergeRequestAction; oldrev?: string; changes?: Json },
): Json {
  const target = state.project(mr.targetProjectId);
  const attrs = mergeRequestHookAttrs(state, mr);
  attrs["action"] = o.action;
  if (o.oldrev !== undefined) attrs["oldrev"] = o.oldrev;
  return {
    object_kind: "merge_request",
    event_type: "merge_request",
    user: userHookAttrs(state, o.user),
    project: projectHookAttrs(state, target, { backward: true }),
    object_attributes: attrs,
    labels: attrs["labels"],
    changes: o.changes ?? {},
    repository: repositoryAttrs(target, { push: false }, state),
    assignees: [],
    reviewers: [],
  };
}

/** The `merge_request` object of a Note Hook (`MergeRequest#hook_attrs`, older shape kept in note events). */
function noteMergeRequestAttrs(state: SimState, mr: MergeRequestRecord): Json {
  const full = mergeRequestHookAttrs(state, mr);
  return {
    id: mr.id,
    target_branch: mr.targetBranch,
    source_branch: mr.sourceBranch,
    source_project_id: mr.sourceProjectId,
    author_id: mr.authorId,
    assignee_id: null,
    title: mr.title,
    created_at: full["created_at"],
    updated_at: full["updated_at"],
    milestone_id: null,
    state: mr.state,
    merge_status: full["merge_status"],
    target_project_id: mr.targetProjectId,
    iid: mr.iid,
    description: mr.description,
    position: 0,
    labels: full["labels"],
    source: full["source"],
    target: full["target"],
    last_commit: full["last_commit"],
    work_in_progress: mr.draft,
    draft: mr.draft,
    detailed_merge_status: full["detailed_merge_status"],
  };
}

/**
 * `Gitlab::DataBuilder::Note.build` for a note on an MR. `action` is `create` or `update` (GitLab 16.11+). An
 * internal note has `event_type: confidential_note` (`build_base_data`) and `object_attributes.internal: true`
 * (`Gitlab::HookData::NoteBuilder::SAFE_HOOK_ATTRIBUTES`).
 */
export function notePayload(
  state: SimState,
  mr: MergeRequestRecord,
  note: NoteRecord,
  o: { user: UserRecord; action: "create" | "update" },
): Json {
  const project = state.project(note.projectId);
  return {
    object_kind: "note",
    event_type: note.internal ? "confidential_note" : "note",
    user: userHookAttrs(state, o.user),
    project_id: project.id,
    project: projectHookAttrs(state, project, { backward: true }),
    repository: repositoryAttrs(project, { push: false }, state),
    object_attributes: {
      id: note.id,
      note: note.body,
      noteable_type: "MergeRequest",
      author_id: note.authorId,
      created_at: hookTime(note.createdAt),
      updated_at: hookTime(note.updatedAt),
      project_id: project.id,
      attachment: null,
      line_code: null,
      commit_id: "",
      noteable_id: mr.id,
      system: note.system,
      internal: note.internal,
      st_diff: null,
      action: o.action,
      url: `${mr.webUrl}#note_${note.id}`,
    },
    merge_request: noteMergeRequestAttrs(state, mr),
  };
}

function durationSeconds(from: string | null, to: string | null): number | null {
  if (from === null) return null;
  const end = to === null ? Date.now() : Date.parse(to);
  return Math.max(0, Math.round((end - Date.parse(from)) / 1000));
}

/** `Gitlab::DataBuilder::Pipeline.build`: fires on the project the pipeline runs in. */
export function pipelinePayload(state: SimState, pipeline: PipelineRecord): Json {
  const project = state.project(pipeline.projectId);
  const user = state.user(pipeline.userId);
  const commit = project.commits.get(pipeline.sha);
  const stages = [...new Set(pipeline.jobs.map((j) => j.stage))];
  const mr = pipeline.mergeRequestIid === null ? undefined : project.mergeRequests.get(pipeline.mergeRequestIid);
  return {
    object_kind: "pipeline",
    object_attributes: {
      id: pipeline.id,
      iid: pipeline.iid,
      name: null,
      ref: pipeline.ref,
      tag: pipeline.tag,
      sha: pipeline.sha,
      before_sha: pipeline.beforeSha,
      source: pipeline.source,
      status: pipeline.status,
      // `pipeline.detailed_status(nil).label`, e.g. "passed"
      detailed_status: detailedStatus(pipeline.status, "").label,
      stages,
      created_at: hookTime(pipeline.createdAt),
      finished_at: hookTime(pipeline.finishedAt),
      duration: durationSeconds(pipeline.startedAt, pipeline.finishedAt),
      queued_duration: null,
      variables: pipeline.variables.map((v) => ({ key: v.key, value: v.value })),
      url: pipeline.webUrl,
      protected_ref: pipeline.protectedRef,
    },
    merge_request: mr
      ? {
          id: mr.id,
          iid: mr.iid,
          title: mr.title,
          source_branch: mr.sourceBranch,
          source_project_id: mr.sourceProjectId,
          target_branch: mr.targetBranch,
          target_project_id: mr.targetProjectId,
          state: mr.state,
          merge_status: "can_be_merged",
          detailed_merge_status: "mergeable",
          url: mr.webUrl,
        }
      : null,
    user: userHookAttrs(state, user),
    project: projectHookAttrs(state, project, { backward: false }),
    commit: commit ? commitHookAttrs(state, project, commit, { files: false }) : null,
    // `pipeline.latest_builds` is `Ci::Build` only: trigger jobs (bridges) are not among the builds.
    builds: pipeline.jobs
      .filter((j) => !j.retried && j.trigger === null)
      .map((j) => ({
        id: j.id,
        stage: j.stage,
        name: j.name,
        status: j.status,
        created_at: hookTime(j.createdAt),
        started_at: hookTime(j.startedAt),
        finished_at: hookTime(j.finishedAt),
        duration: j.startedAt === null ? null : durationSeconds(j.startedAt, j.finishedAt),
        queued_duration: null,
        failure_reason: j.failureReason,
        when: "on_success",
        manual: false,
        allow_failure: j.allowFailure,
        user: userHookAttrs(state, state.user(j.userId)),
        runner: null,
        artifacts_file: { filename: null, size: null },
        environment: null,
      })),
  };
}
