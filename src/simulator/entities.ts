/**
 * REST representations, after GitLab's Grape entities (`lib/api/entities/*.rb`) and the response examples in
 * `doc/api/*.md`: snake_case, ISO 8601 timestamps with milliseconds, the fields a client reads.
 */
import type { SimAwardEmoji, SimCommit, SimHook, SimInstance, SimLabel, SimProtectedBranchRule } from "./model.js";
import { AccessLevel } from "./model.js";
import { namespaceName } from "./payloads.js";
import { isAncestor } from "./git.js";
import { knowsSigningTokens } from "./instance.js";
import {
  canMergeToBranch,
  canPushToBranch,
  groupAccessLevel,
  hasAccess,
  isProtected,
  matchingRules,
} from "./permissions.js";
import { detailedStatus } from "./pipeline-status.js";
import { headPipelineOf } from "./head-pipeline.js";
import type {
  CommitStatusRecord,
  GroupRecord,
  JobRecord,
  MergeRequestRecord,
  MergeRequestVersionRecord,
  NoteRecord,
  PipelineRecord,
  ProjectRecord,
  SimState,
  UserRecord,
} from "./state.js";

type Json = Record<string, unknown>;

const ACCESS_LEVEL_DESCRIPTIONS: Record<number, string> = {
  [AccessLevel.NoAccess]: "No one",
  [AccessLevel.Developer]: "Developers + Maintainers",
  [AccessLevel.Maintainer]: "Maintainers",
  [AccessLevel.Owner]: "Owners",
};

/** `Entities::UserBasic` */
export function userBasic(state: SimState, user: UserRecord | undefined): Json | null {
  if (!user) return null;
  return {
    id: user.id,
    username: user.username,
    name: user.name,
    state: "active",
    locked: false,
    avatar_url: `${state.baseUrl}/uploads/-/system/user/avatar/${user.id}/avatar.png`,
    web_url: `${state.baseUrl}/${user.username}`,
  };
}

function userById(state: SimState, id: number | null): Json | null {
  return id === null ? null : userBasic(state, state.users.get(id));
}

/** `Entities::UserPublic` (for `GET /user`) / `Entities::User` (for `GET /users/:id`). */
export function userEntity(state: SimState, user: UserRecord, o: { self: boolean }): Json {
  const base: Json = {
    ...userBasic(state, user),
    created_at: "2020-01-01T00:00:00.000Z",
    bio: "",
    bot: user.bot,
    public_email: null,
  };
  if (o.self)
    Object.assign(base, { email: `${user.username}@example.com`, is_admin: false, two_factor_enabled: false });
  return base;
}

function namespaceEntity(state: SimState, project: ProjectRecord): Json {
  const ns = project.namespace;
  return {
    id: ns.id,
    name: namespaceName(state, project),
    path: ns.fullPath.split("/").pop(),
    kind: ns.kind === "group" ? "group" : "user",
    full_path: ns.fullPath,
    parent_id: ns.kind === "group" ? (state.groups.get(ns.id)?.parentId ?? null) : null,
    avatar_url: null,
    web_url: `${state.baseUrl}/${ns.kind === "group" ? "groups/" : ""}${ns.fullPath}`,
  };
}

function projectBasic(state: SimState, project: ProjectRecord): Json {
  return {
    id: project.id,
    description: "",
    name: project.name,
    name_with_namespace: `${namespaceName(state, project)} / ${project.name}`,
    path: project.path,
    path_with_namespace: project.pathWithNamespace,
    created_at: project.createdAt,
    default_branch: project.defaultBranch,
    tag_list: [],
    topics: [],
    ssh_url_to_repo: `git@${new URL(state.baseUrl).host}:${project.pathWithNamespace}.git`,
    http_url_to_repo: `${project.webUrl}.git`,
    web_url: project.webUrl,
    readme_url: null,
    avatar_url: null,
    forks_count: [...state.projects.values()].filter((p) => p.forkedFromProjectId === project.id).length,
    star_count: 0,
    last_activity_at: project.createdAt,
    namespace: namespaceEntity(state, project),
  };
}

/** `Entities::Project` (with `permissions` for the caller, as `GET /projects/:id` adds). */
export function projectEntity(state: SimState, project: ProjectRecord, viewerId: number): Json {
  const upstream =
    project.forkedFromProjectId === undefined ? undefined : state.projects.get(project.forkedFromProjectId);
  const direct = project.members.get(viewerId);
  const ns = project.namespace;
  const groupLevel = ns.kind === "group" ? groupAccessLevel(state, viewerId, ns.id) : 0;
  return {
    ...projectBasic(state, project),
    visibility: project.visibility,
    forked_from_project: upstream ? projectBasic(state, upstream) : undefined,
    empty_repo: project.branches.size === 0,
    archived: false,
    issues_enabled: true,
    merge_requests_enabled: true,
    jobs_enabled: true,
    builds_access_level: "enabled",
    ci_config_path: null,
    only_allow_merge_if_pipeline_succeeds: project.onlyAllowMergeIfPipelineSucceeds,
    ci_forward_deployment_enabled: true,
    public_jobs: true,
    // `API::Entities::Project` shows the CI/CD settings only `with_options if: admin_project` (Maintainer+).
    ...(hasAccess(state, viewerId, project, AccessLevel.Maintainer)
      ? {
          restrict_user_defined_variables: project.restrictUserDefinedVariables,
          ci_pipeline_variables_minimum_override_role: project.ciPipelineVariablesMinimumOverrideRole,
        }
      : {}),
    permissions: {
      project_access: direct === undefined ? null : { access_level: direct, notification_level: 3 },
      group_access: groupLevel > 0 ? { access_level: groupLevel, notification_level: 3 } : null,
    },
  };
}

/** `Entities::Member` */
export function memberEntity(state: SimState, user: UserRecord, level: number): Json {
  return {
    ...userBasic(state, user),
    access_level: level,
    created_at: "2020-01-01T00:00:00.000Z",
    created_by: null,
    expires_at: null,
    membership_state: "active",
  };
}

export function groupEntity(state: SimState, group: GroupRecord): Json {
  return {
    id: group.id,
    name: group.path,
    path: group.path,
    full_name: group.fullPath.split("/").join(" / "),
    full_path: group.fullPath,
    parent_id: group.parentId ?? null,
    visibility: "public",
    web_url: `${state.baseUrl}/groups/${group.fullPath}`,
  };
}

/** `Entities::Commit` (with `web_url`); `stats` and `last_pipeline` as the single-commit endpoint adds. */
export function commitEntity(
  state: SimState,
  project: ProjectRecord,
  commit: SimCommit,
  o: { detail?: boolean } = {},
): Json {
  const author = state.users.get(commit.authorId);
  const name = author?.name ?? "unknown";
  const email = author ? `${author.username}@example.com` : "unknown@example.com";
  const json: Json = {
    id: commit.id,
    short_id: commit.id.slice(0, 8),
    created_at: commit.createdAt,
    parent_ids: commit.parentIds,
    title: commit.title,
    message: commit.message,
    author_name: name,
    author_email: email,
    authored_date: commit.createdAt,
    committer_name: name,
    committer_email: email,
    committed_date: commit.createdAt,
    trailers: {},
    extended_trailers: {},
    web_url: `${project.webUrl}/-/commit/${commit.id}`,
  };
  if (o.detail) {
    const last = [...project.pipelines].filter((p) => p.sha === commit.id).sort((a, b) => b.id - a.id)[0];
    Object.assign(json, {
      stats: { additions: 1, deletions: 0, total: 1 },
      status: last?.status ?? null,
      project_id: project.id,
      last_pipeline: last ? pipelineBasic(last) : null,
    });
  }
  return json;
}

/** `Entities::Branch` */
export function branchEntity(state: SimState, project: ProjectRecord, name: string, viewerId: number): Json {
  const sha = project.branches.get(name)!;
  const commit = project.commits.get(sha)!;
  const rules = matchingRules(project, name);
  const defaultHead = project.branches.get(project.defaultBranch);
  return {
    name,
    merged: name !== project.defaultBranch && defaultHead !== undefined && isAncestor(project, sha, defaultHead),
    protected: isProtected(project, name),
    default: name === project.defaultBranch,
    developers_can_push: rules.some((r) => r.pushAccessLevel === AccessLevel.Developer),
    developers_can_merge: rules.some((r) => r.mergeAccessLevel === AccessLevel.Developer),
    can_push: canPushToBranch(state, viewerId, project, name),
    web_url: `${project.webUrl}/-/tree/${encodeURIComponent(name)}`,
    commit: commitEntity(state, project, commit),
  };
}

/**
 * `Entities::ProtectedBranch`, its access entries `Entities::ProtectedRefAccess` (`lib/api/entities/
 * protected_ref_access.rb`: `id`, `access_level`, `access_level_description`, and `deploy_key_id` only when set)
 * with EE's `user_id` and `group_id` (`ee/lib/ee/api/entities/protected_ref_access.rb`). A user, group or deploy-key
 * entry carries the column default `access_level` 40 too; its kind follows its id (`ProtectedRefAccess#type`).
 */
export function protectedBranchEntity(state: SimState, rule: SimProtectedBranchRule): Json {
  let seq = 0;
  const entry = (
    description: string,
    ids: { user_id?: number; group_id?: number; deploy_key_id?: number },
    level: number = AccessLevel.Maintainer,
  ) => ({
    id: rule.id * 100 + ++seq,
    access_level: level,
    access_level_description: description,
    ...(ids.deploy_key_id !== undefined ? { deploy_key_id: ids.deploy_key_id } : {}),
    user_id: ids.user_id ?? null,
    group_id: ids.group_id ?? null,
  });
  const role = (level: number) => entry(ACCESS_LEVEL_DESCRIPTIONS[level] ?? String(level), {}, level);
  const user = (userId: number) => entry(state.users.get(userId)?.name ?? "User", { user_id: userId });
  const group = (groupId: number) => entry(state.groups.get(groupId)?.fullPath ?? "Group", { group_id: groupId });
  const deployKey = (id: number) => entry(`Deploy key ${id}`, { deploy_key_id: id });
  return {
    id: rule.id,
    name: rule.name,
    push_access_levels: [
      role(rule.pushAccessLevel),
      ...rule.allowedToPushUserIds.map(user),
      ...rule.allowedToPushGroupIds.map(group),
      ...rule.allowedToPushDeployKeyIds.map(deployKey),
    ],
    merge_access_levels: [
      role(rule.mergeAccessLevel),
      ...rule.allowedToMergeUserIds.map(user),
      ...rule.allowedToMergeGroupIds.map(group),
    ],
    unprotect_access_levels: [],
    allow_force_push: rule.allowForcePush,
    code_owner_approval_required: false,
    inherited: false,
  };
}

/** `Entities::MergeRequestBasic`, plus `Entities::MergeRequest` fields when `detail` (single MR). */
export function mergeRequestEntity(
  state: SimState,
  mr: MergeRequestRecord,
  viewerId: number,
  o: { detail: boolean },
): Json {
  const target = state.project(mr.targetProjectId);
  const json: Json = {
    id: mr.id,
    iid: mr.iid,
    project_id: mr.projectId,
    title: mr.title,
    description: mr.description,
    state: mr.state,
    created_at: mr.createdAt,
    updated_at: mr.updatedAt,
    merged_by: userById(state, mr.mergedById),
    merge_user: userById(state, mr.mergedById),
    merged_at: mr.mergedAt,
    closed_by: userById(state, mr.closedById),
    closed_at: mr.closedAt,
    target_branch: mr.targetBranch,
    source_branch: mr.sourceBranch,
    user_notes_count: (target.notes.get(mr.iid) ?? []).filter((n) => !n.system).length,
    upvotes: 0,
    downvotes: 0,
    author: userById(state, mr.authorId),
    assignees: [],
    assignee: null,
    reviewers: [],
    source_project_id: mr.sourceProjectId,
    target_project_id: mr.targetProjectId,
    labels: [...mr.labels],
    draft: mr.draft,
    work_in_progress: mr.draft,
    milestone: null,
    merge_when_pipeline_succeeds: false,
    merge_status: "can_be_merged",
    detailed_merge_status: mr.state === "opened" ? (mr.draft ? "draft_status" : "mergeable") : "not_open",
    sha: mr.sha,
    merge_commit_sha: mr.mergeCommitSha,
    squash_commit_sha: null,
    discussion_locked: null,
    should_remove_source_branch: null,
    force_remove_source_branch: false,
    prepared_at: mr.createdAt,
    reference: `!${mr.iid}`,
    references: { short: `!${mr.iid}`, relative: `!${mr.iid}`, full: `${target.pathWithNamespace}!${mr.iid}` },
    web_url: mr.webUrl,
    time_stats: { time_estimate: 0, total_time_spent: 0, human_time_estimate: null, human_total_time_spent: null },
    squash: false,
    squash_on_merge: false,
    task_completion_status: { count: 0, completed_count: 0 },
    has_conflicts: false,
    blocking_discussions_resolved: true,
  };
  if (o.detail) {
    // `head_pipeline` is `MergeRequest#diff_head_pipeline` (`lib/api/entities/merge_request.rb`), see head-pipeline.ts.
    const head = headPipelineOf(state, mr);
    Object.assign(json, {
      subscribed: false,
      changes_count: "1",
      latest_build_started_at: head?.startedAt ?? null,
      latest_build_finished_at: head?.finishedAt ?? null,
      first_deployed_to_production_at: null,
      pipeline: head ? pipelineBasic(head) : null,
      head_pipeline: head ? pipelineEntity(state, head) : null,
      diff_refs: { base_sha: mr.baseSha, head_sha: mr.sha, start_sha: mr.startSha },
      merge_error: null,
      first_contribution: false,
      user: { can_merge: canMergeToBranch(state, viewerId, target, mr.targetBranch) },
      rebase_in_progress: false,
    });
  }
  return json;
}

/** `Entities::MergeRequestDiff` (lib/api/entities/merge_request_diff.rb), as `GET .../versions` lists it. */
export function mergeRequestVersionEntity(v: MergeRequestVersionRecord): Json {
  return {
    id: v.id,
    head_commit_sha: v.headCommitSha,
    base_commit_sha: v.baseCommitSha,
    start_commit_sha: v.startCommitSha,
    created_at: v.createdAt,
    merge_request_id: v.mergeRequestId,
    state: "collected",
    real_size: "1",
    patch_id_sha: null,
  };
}

/** `Entities::Note` */
export function noteEntity(state: SimState, note: NoteRecord): Json {
  return {
    id: note.id,
    type: null,
    body: note.body,
    attachment: null,
    author: userById(state, note.authorId),
    created_at: note.createdAt,
    updated_at: note.updatedAt,
    system: note.system,
    noteable_id: note.noteableId,
    noteable_type: "MergeRequest",
    project_id: note.projectId,
    commit_id: null,
    resolvable: false,
    // `Entities::Note`: both read the `internal` column (`confidential` is the deprecated name).
    confidential: note.internal,
    internal: note.internal,
    imported: false,
    imported_from: "none",
    noteable_iid: note.noteableIid,
    commands_changes: {},
  };
}

/** `Entities::AwardEmoji` */
export function awardEmojiEntity(state: SimState, award: SimAwardEmoji): Json {
  return {
    id: award.id,
    name: award.name,
    user: userById(state, award.userId),
    created_at: award.createdAt,
    updated_at: award.createdAt,
    awardable_id: award.awardableId,
    awardable_type: "Note",
    url: null,
  };
}

/** `Entities::CommitStatus`; CI jobs are commit statuses too (`GET .../statuses` lists both). */
export function commitStatusEntity(state: SimState, s: CommitStatusRecord): Json {
  return {
    id: s.id,
    sha: s.sha,
    ref: s.ref,
    status: s.status,
    name: s.name,
    target_url: s.targetUrl,
    description: s.description,
    created_at: s.createdAt,
    started_at: s.startedAt,
    finished_at: s.finishedAt,
    allow_failure: s.allowFailure,
    coverage: s.coverage,
    pipeline_id: s.pipelineId,
    author: userById(state, s.authorId),
  };
}

export function jobAsCommitStatus(state: SimState, pipeline: PipelineRecord, job: JobRecord): Json {
  const project = state.project(pipeline.projectId);
  return {
    id: job.id,
    sha: pipeline.sha,
    ref: pipeline.ref,
    status: job.status,
    name: job.name,
    target_url: `${project.webUrl}/-/jobs/${job.id}`,
    description: null,
    created_at: job.createdAt,
    started_at: job.startedAt,
    finished_at: job.finishedAt,
    allow_failure: job.allowFailure,
    coverage: null,
    pipeline_id: pipeline.id,
    author: userById(state, job.userId),
  };
}

/** `Entities::Ci::PipelineBasic` */
export function pipelineBasic(p: PipelineRecord): Json {
  return {
    id: p.id,
    iid: p.iid,
    project_id: p.projectId,
    sha: p.sha,
    ref: p.ref,
    status: p.status,
    source: p.source,
    created_at: p.createdAt,
    updated_at: p.updatedAt,
    web_url: p.webUrl,
    name: null,
  };
}

function seconds(from: string | null, to: string | null): number | null {
  if (from === null) return null;
  return Math.max(0, Math.round(((to === null ? Date.now() : Date.parse(to)) - Date.parse(from)) / 1000));
}

/** `Entities::Ci::Pipeline` */
export function pipelineEntity(state: SimState, p: PipelineRecord): Json {
  const project = state.project(p.projectId);
  return {
    ...pipelineBasic(p),
    before_sha: p.beforeSha,
    tag: p.tag,
    yaml_errors: null,
    user: userById(state, p.userId),
    started_at: p.startedAt,
    finished_at: p.finishedAt,
    committed_at: null,
    duration: seconds(p.startedAt, p.finishedAt),
    queued_duration: null,
    coverage: null,
    detailed_status: detailedStatus(p.status, `/${project.pathWithNamespace}/-/pipelines/${p.id}`),
    archived: false,
  };
}

/** `Entities::Ci::JobBasic` (lib/api/entities/ci/job_basic.rb): what jobs and bridges share. */
function jobBasic(state: SimState, p: PipelineRecord, job: JobRecord): Json {
  const project = state.project(p.projectId);
  const commit = project.commits.get(p.sha);
  return {
    id: job.id,
    status: job.status,
    stage: job.stage,
    name: job.name,
    ref: p.ref,
    tag: p.tag,
    coverage: null,
    allow_failure: job.allowFailure,
    created_at: job.createdAt,
    started_at: job.startedAt,
    finished_at: job.finishedAt,
    erased_at: null,
    duration: seconds(job.startedAt, job.finishedAt),
    queued_duration: null,
    user: userById(state, job.userId),
    commit: commit ? commitEntity(state, project, commit) : null,
    pipeline: pipelineBasic(p),
    web_url: `${project.webUrl}/-/jobs/${job.id}`,
    project: { ci_job_token_scope_enabled: false },
  };
}

/** `Entities::Ci::Job` */
export function jobEntity(state: SimState, p: PipelineRecord, job: JobRecord): Json {
  return {
    ...jobBasic(state, p, job),
    artifacts: [],
    runner: null,
    runner_manager: null,
    artifacts_expire_at: null,
    archived: false,
    tag_list: [],
    failure_reason: job.failureReason ?? undefined,
    retried: job.retried,
  };
}

/**
 * `Entities::Ci::Bridge` (lib/api/entities/ci/bridge.rb): `JobBasic` plus `downstream_pipeline`, null here (the
 * simulator creates no downstream pipelines). `failure_reason` only when failed.
 */
export function bridgeEntity(state: SimState, p: PipelineRecord, job: JobRecord): Json {
  return {
    ...jobBasic(state, p, job),
    ...(job.status === "failed" ? { failure_reason: job.failureReason } : {}),
    downstream_pipeline: null,
  };
}

/** `TestReportSummaryEntity` */
export function testReportSummaryEntity(p: PipelineRecord): Json {
  const r = p.testReport;
  const jobIds = p.jobs.filter((j) => !j.retried).map((j) => j.id);
  return {
    total: {
      time: r ? r.total * 0.01 : 0,
      count: r?.total ?? 0,
      success: r?.success ?? 0,
      failed: r?.failed ?? 0,
      skipped: r?.skipped ?? 0,
      error: r?.error ?? 0,
      suite_error: null,
    },
    test_suites: (r?.suites ?? []).map((s) => ({
      name: s.name,
      total_time: s.total * 0.01,
      total_count: s.total,
      success_count: s.total - s.failed,
      failed_count: s.failed,
      skipped_count: 0,
      error_count: 0,
      build_ids: jobIds,
      suite_error: null,
    })),
  };
}

/**
 * `Entities::ProjectHook` (the tokens are never returned). `signing_token_present` only from 19.0
 * (`lib/api/entities/hook.rb`), where it says whether the hook kept a signing token.
 */
export function hookEntity(hook: SimHook, instance: SimInstance): Json {
  const signing = knowsSigningTokens(instance) ? { signing_token_present: hook.signingToken !== null } : {};
  return {
    id: hook.id,
    url: hook.url,
    name: null,
    description: null,
    project_id: hook.projectId,
    push_events: hook.pushEvents,
    push_events_branch_filter: hook.pushEventsBranchFilter,
    branch_filter_strategy: "wildcard",
    issues_events: false,
    confidential_issues_events: false,
    merge_requests_events: hook.mergeRequestsEvents,
    tag_push_events: false,
    note_events: hook.noteEvents,
    confidential_note_events: hook.confidentialNoteEvents,
    job_events: false,
    pipeline_events: hook.pipelineEvents,
    wiki_page_events: false,
    deployment_events: false,
    releases_events: false,
    enable_ssl_verification: hook.enableSslVerification,
    alert_status: "executable",
    disabled_until: null,
    url_variables: [],
    custom_webhook_template: null,
    created_at: hook.createdAt,
    ...signing,
  };
}

/** `Entities::ProjectLabel` */
export function labelEntity(project: ProjectRecord, label: SimLabel): Json {
  const mrCount = [...project.mergeRequests.values()].filter(
    (m) => m.state === "opened" && m.labels.includes(label.name),
  ).length;
  return {
    id: label.id,
    name: label.name,
    color: label.color,
    text_color: "#FFFFFF",
    description: label.description,
    description_html: label.description ?? "",
    open_issues_count: 0,
    closed_issues_count: 0,
    open_merge_requests_count: mrCount,
    subscribed: false,
    priority: null,
    is_project_label: true,
  };
}
