/**
 * The GitLab port: what the trust workflow needs from GitLab, in the workflow's words (STYLE.md §8).
 *
 * Only `gitbeaker-adapter.ts` implements it against the REST API; the workflow, sweep and setup see nothing else.
 * Reads return small domain types parsed from the API (tolerant: an unknown enum value becomes `"unknown"`, never a
 * crash). Writes named `ensure*` converge: calling them twice with the same arguments changes nothing the second time.
 * A missing object is a value (`undefined`, `false`), not an error; every other failure is thrown as one of the
 * classes in `src/errors.ts` (RateLimitedError / PermanentError / TransientError).
 */

/** GitLab access levels (`Gitlab::Access`). */
export const ACCESS_LEVEL = {
  none: 0,
  minimal: 5,
  guest: 10,
  planner: 15,
  reporter: 20,
  developer: 30,
  maintainer: 40,
  owner: 50,
} as const;

export interface User {
  id: number;
  username: string;
}

export type MergeRequestState = "opened" | "closed" | "merged" | "locked" | "unknown";

/** An MR as seen in its target project (where the hooks fire, the trusted branch lives and statuses are posted). */
export interface MergeRequest {
  /** The target project. */
  projectId: number;
  iid: number;
  state: MergeRequestState;
  /** Head commit: for a fork MR this is the target project's `refs/merge-requests/<iid>/head`. */
  sha: string;
  /**
   * The project the source branch lives in; `null` once that fork was deleted (GitLab nullifies the column:
   * `merge_requests.source_project_id` is `on_delete: :nullify`). Such an MR keeps its `sha` (the last diff's head,
   * `MergeRequest#diff_head_sha`) and its `refs/merge-requests/<iid>/head`, but GitLab can no longer merge or
   * reopen it (`MergeRequest#broken?`, `#reopenable?`). A `null` source is a fork, never the target project.
   */
  sourceProjectId: number | null;
  sourceBranch: string;
  targetBranch: string;
  author: User;
  labels: string[];
  draft: boolean;
  title: string;
  /** e.g. `https://gitlab.example.com/group/app/-/merge_requests/7`. */
  webUrl: string;
  /** ISO timestamps; null while not applicable. */
  mergedAt: string | null;
  closedAt: string | null;
  updatedAt: string;
  /**
   * The pipeline the MR shows and "Pipelines must succeed" reads (`head_pipeline` in the single-MR answer:
   * `MergeRequest#diff_head_pipeline`, merge request pipelines first, then the source branch's, newest first, for
   * the head SHA). `projectId` is the fork's for a fork MR's branch pipelines. Absent when not read (lists).
   */
  headPipeline?: HeadPipeline | null;
}

/** An MR's head pipeline, as much of it as a commit status posted into it needs. */
export interface HeadPipeline {
  id: number;
  projectId: number;
  sha: string;
  /** `refs/merge-requests/<iid>/head` for a merge request pipeline, else the source branch. */
  ref: string;
  status: string;
}

/**
 * What `PUT .../merge_requests/:iid/merge` with `sha` did: merged, or refused with GitLab's reason. `sha`: the head
 * moved (409 "SHA does not match HEAD of source branch"); `not_mergeable`: 405/406/422 (not open, draft, pipeline
 * not passed, approvals missing, conflicts); `not_allowed`: 401/403 (the bot may not merge into the target branch).
 */
export type MergeOutcome =
  | { merged: MergeRequest }
  | { refused: "sha" | "not_mergeable" | "not_allowed"; message: string };

/**
 * `ci_pipeline_variables_minimum_override_role` (GitLab 17.1+, `ProjectCiCdSetting`): the least role that may set
 * pipeline variables when `restrict_user_defined_variables` is on. `no_one_allowed` lets nobody, not even an Owner;
 * it is GitLab.com's default for new projects since 17.7 (self-managed: `maintainer`). `unknown`: a value this bot
 * does not know.
 */
export type PipelineVariablesRole = "no_one_allowed" | "developer" | "maintainer" | "owner" | "unknown";

export interface Project {
  id: number;
  pathWithNamespace: string;
  webUrl: string;
  defaultBranch: string;
  /**
   * Who may set pipeline variables. `GET /projects/:id` shows it only to Maintainers and up (`admin_project`), and
   * only from GitLab 17.1; `undefined` when it is not shown.
   */
  pipelineVariablesMinimumRole?: PipelineVariablesRole;
  /**
   * `restrict_user_defined_variables`: when false, anyone who may run a pipeline may set its variables, whatever
   * the minimum role says (`ProjectCiCdSetting#override_pipeline_variables_allowed?`). `undefined` when not shown.
   */
  restrictUserDefinedVariables?: boolean;
}

export interface Branch {
  name: string;
  /** Head commit. */
  sha: string;
  /** A protected-branch rule (exact or wildcard) matches the name. */
  protected: boolean;
  /** Committed date of the head commit (ISO), when GitLab says. */
  committedAt?: string;
}

export type PipelineStatus =
  | "created"
  | "waiting_for_resource"
  | "preparing"
  | "waiting_for_callback"
  | "pending"
  | "running"
  | "success"
  | "failed"
  | "canceling"
  | "canceled"
  | "skipped"
  | "manual"
  | "scheduled"
  | "unknown";

export interface Pipeline {
  id: number;
  projectId: number;
  ref: string;
  sha: string;
  status: PipelineStatus;
  /** `push`, `api`, `web`, `merge_request_event`, ... (free text: GitLab adds sources). */
  source: string;
  webUrl: string;
  createdAt?: string;
}

export interface PipelineJob {
  id: number;
  name: string;
  stage: string;
  status: PipelineStatus;
  allowFailure: boolean;
  webUrl: string;
  /** The job's pipeline as the jobs API embeds it: one call gives the jobs and the pipeline status. */
  pipeline?: { id: number; status: PipelineStatus };
}

/** What {@link GitLabPort.getPipelineReport} reads in one request. */
export interface PipelineReport {
  status: PipelineStatus;
  /** The failed jobs, trigger jobs included, latest attempt of each; allowed failures too (`allowFailure`). */
  failedJobs: PipelineJob[];
  /** `undefined` when the pipeline has no test reports. */
  tests?: TestReportSummary;
}

export interface TestReportSummary {
  total: number;
  success: number;
  failed: number;
  skipped: number;
  error: number;
  /** Suites with failures first. */
  suites: Array<{ name: string; total: number; failed: number; error: number }>;
}

/** States the commit status API accepts. */
export type CommitStatusState = "pending" | "running" | "success" | "failed" | "canceled" | "skipped";

export interface CommitStatusInput {
  /** Status name, e.g. `trusted-pipeline` (config `trust.status_name`). */
  name: string;
  state: CommitStatusState;
  /** Same-project MR: the source branch. Fork MR: `refs/merge-requests/<iid>/head`. */
  ref: string;
  targetUrl?: string;
  /** At most 255 characters (longer is cut). */
  description?: string;
  pipelineId?: number;
}

export interface MergeRequestVersion {
  id: number;
  headSha: string;
  /** ISO time GitLab created this version (the head became the MR's head). */
  createdAt: string;
}

export interface Note {
  id: number;
  body: string;
  authorId: number;
  system: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface PipelineVariable {
  key: string;
  value: string;
}

/**
 * One entry of a rule's "Allowed to push" or "Allowed to merge" (`API::Entities::ProtectedRefAccess`): a role
 * (`access_level`; 0 is "No one"), a user or a group (Premium), or a deploy key (push only). GitLab also sends an
 * `access_level` on user, group and deploy-key entries; it grants nothing there.
 */
export type ProtectedRefAccess =
  | { kind: "role"; accessLevel: number }
  | { kind: "user"; userId: number }
  | { kind: "group"; groupId: number }
  | { kind: "deployKey"; deployKeyId: number };

export interface ProtectedBranchRule {
  id: number;
  /** Exact name or wildcard such as `trusted-*`. */
  name: string;
  /** The role levels of "Allowed to push" (user, group and deploy-key entries left out). */
  pushAccessLevels: number[];
  mergeAccessLevels: number[];
  /** Users named in `allowed_to_push` (Premium). */
  pushUserIds: number[];
  /** Every entry of "Allowed to push" and "Allowed to merge". */
  pushAccess: ProtectedRefAccess[];
  mergeAccess: ProtectedRefAccess[];
  allowForcePush: boolean;
  /** Defined on the group, not the project (Premium group-level protected branches). */
  inherited: boolean;
}

export interface Label {
  id: number;
  name: string;
  color: string;
  description: string | null;
}

export interface ProjectHook {
  id: number;
  url: string;
  pushEvents: boolean;
  mergeRequestsEvents: boolean;
  noteEvents: boolean;
  /** Internal notes, delivered as `Confidential Note Hook` only to hooks with this on. */
  confidentialNoteEvents: boolean;
  pipelineEvents: boolean;
  enableSslVerification: boolean;
  /**
   * Whether the hook has a signing token (`signing_token_present`, GitLab 19.0+); `undefined` when GitLab does not
   * say, i.e. an instance that knows no webhook signing.
   */
  signingTokenPresent?: boolean;
}

export interface ProjectHookInput {
  url: string;
  /** Secret sent as `X-Gitlab-Token`. */
  token?: string;
  /**
   * Standard-Webhooks secret (`whsec_<base64 of 32 bytes>`) GitLab signs deliveries with. An instance that does not
   * sign drops it silently: read {@link ProjectHook.signingTokenPresent} back.
   */
  signingToken?: string;
  pushEvents: boolean;
  mergeRequestsEvents: boolean;
  noteEvents: boolean;
  confidentialNoteEvents?: boolean;
  pipelineEvents: boolean;
  enableSslVerification: boolean;
}

/** The GitLab instance (`GET /metadata`, or `GET /version` before 15.2). */
export interface GitLabInstance {
  /** `19.0.0-ee`, `17.11.2`: what GitLab reports. */
  version: string;
  revision: string;
  /** An Enterprise Edition build; `undefined` when GitLab does not say (before 15.2). Says nothing of the tier. */
  enterprise: boolean | undefined;
}

/** What {@link GitLabPort.ensureTrustedBranch} did. */
export type EnsureBranchResult =
  | { outcome: "created" }
  | { outcome: "unchanged" }
  | { outcome: "moved"; previousSha: string };

/**
 * What {@link GitLabPort.createPipeline} did: created the pipeline (`withoutVariables` when GitLab does not let the
 * bot set pipeline variables in this project, so it was created without them), or GitLab refused it.
 */
export type CreatePipelineResult = { created: Pipeline; withoutVariables?: true } | { refused: string };

/** What an `ensure*` write did: `changed` false means GitLab already had it. */
export interface EnsureResult {
  changed: boolean;
}

export interface ListMergeRequestsFilter {
  state: "opened" | "closed" | "merged" | "all";
  sourceBranch?: string;
  authorId?: number;
  /** Only MRs updated at or after this time (ISO; GitLab's `updated_after`). */
  updatedAfter?: string;
  /** Stop after this many (default: all pages). */
  limit?: number;
}

/** A project approval rule (EE Premium+). */
export interface ApprovalRule {
  id: number;
  name: string;
  approvalsRequired: number;
  userIds: number[];
}

/** A project external status check (EE Ultimate). */
export interface ExternalStatusCheck {
  id: number;
  name: string;
  externalUrl: string;
}

export interface GitLabPort {
  // ---- identity and permissions ----

  /** The bot's own user (`GET /user`). Callers cache it. */
  currentUser(): Promise<User>;

  /** A user by id; `undefined` when there is none. */
  getUser(userId: number): Promise<User | undefined>;

  /**
   * The user whose username is `username` (`GET /users?username=`: exact, case-insensitive); `undefined` when there
   * is none. Usernames change and are reused: callers resolve a name once and keep the id.
   */
  findUserByUsername(username: string): Promise<User | undefined>;

  /** A project by numeric id or full path; `undefined` when it does not exist or is not visible to the bot. */
  getProject(idOrPath: number | string): Promise<Project | undefined>;

  /**
   * A file's contents at `ref` (`GET /projects/:id/repository/files/:file_path/raw`, lib/api/files.rb); `undefined`
   * when GitLab answers 404 (no such file, commit or project).
   */
  getRepositoryFile(projectId: number, path: string, ref: string): Promise<string | undefined>;

  /**
   * Projects the bot is a member of with at least `minAccessLevel` (direct or inherited), for the sweep when no
   * project list is configured.
   */
  listMemberProjects(minAccessLevel: number): Promise<Project[]>;

  /**
   * The unarchived projects of a group and of all its subgroups, every page (`GET /groups/:id/projects` with
   * `include_subgroups=true&with_shared=false&archived=false`, lib/api/groups.rb, GroupProjectsFinder); projects
   * only shared with the group are left out. `undefined` when the group does not exist or the bot may not see it.
   */
  listGroupProjects(group: number | string): Promise<Project[] | undefined>;

  /**
   * Effective access level of `userId` in `projectId`, inherited and invited membership included
   * (`GET /projects/:id/members/all/:user_id`); 0 when not a member.
   */
  effectiveAccessLevel(projectId: number, userId: number): Promise<number>;

  /**
   * Access level of `userId` in the group given by id or full path, inherited membership of ancestor groups included
   * (`GET /groups/:id/members/all/:user_id`); 0 when not a member. An inherited Guest of a parent group is a member
   * of every subgroup: callers compare the level, not mere membership.
   */
  groupAccessLevel(group: number | string, userId: number): Promise<number>;

  // ---- merge requests ----

  /** One MR of the target project; `undefined` when it does not exist. */
  getMergeRequest(projectId: number, iid: number): Promise<MergeRequest | undefined>;

  /** Open MRs of the target project, optionally only those from a source branch name (any source project). */
  listOpenMergeRequests(projectId: number, filter?: { sourceBranch?: string }): Promise<MergeRequest[]>;

  /** MRs of the target project by state, source branch or author, newest first. */
  listMergeRequests(projectId: number, filter: ListMergeRequestsFilter): Promise<MergeRequest[]>;

  /** Whether `authorId` has at least one merged MR in the project (first-time contributor check: one call). */
  hasMergedMergeRequest(projectId: number, authorId: number): Promise<boolean>;

  /**
   * The MR's diff versions (`GET .../merge_requests/:iid/versions`), newest first: each head the MR had, and when
   * GitLab recorded it (its own clock, unlike commit dates, which the commit's author chooses).
   */
  listMergeRequestVersions(projectId: number, iid: number): Promise<MergeRequestVersion[]>;

  /**
   * Merges the MR if its head is still `sha` (`PUT .../merge_requests/:iid/merge` with `sha`): a push that raced the
   * call makes GitLab refuse (409) and nothing is merged. GitLab's own mergeability checks apply ("Pipelines must
   * succeed", approvals, draft). Refusals are outcomes, not errors.
   */
  mergeMergeRequest(projectId: number, iid: number, sha: string): Promise<MergeOutcome>;

  /** Adds labels to an MR (existing labels stay). */
  addLabels(projectId: number, iid: number, labels: string[]): Promise<void>;

  /** Adds and removes labels in one MR update (`PUT .../merge_requests/:iid` with `add_labels`, `remove_labels`). */
  editLabels(projectId: number, iid: number, change: { add: string[]; remove: string[] }): Promise<void>;

  // ---- branches ----

  /** A branch, or `undefined` when it does not exist. */
  getBranch(projectId: number, name: string): Promise<Branch | undefined>;

  /** Branches whose name starts with `prefix` (all pages). */
  listBranches(projectId: number, prefix: string): Promise<Branch[]>;

  /**
   * The project's branches in name order, at most `maxPages` pages of 100 (`GET .../repository/branches`): each
   * with the same `protected` a single branch read gives. The sweep's cold start reads it instead of one branch per
   * same-project MR.
   */
  listAllBranches(projectId: number, maxPages: number): Promise<Branch[]>;

  /**
   * Makes branch `name` point at `sha`: creates it, or deletes and re-creates it when it points elsewhere (GitLab has
   * no "move branch" call). A branch that already points at `sha` is never deleted. `lastSeen` is where the caller
   * last saw the branch: when that is another commit (a move), the branch is read first, then deleted and created;
   * otherwise creating comes first and the branch is read only on "already exists".
   */
  ensureTrustedBranch(projectId: number, name: string, sha: string, lastSeen?: string): Promise<EnsureBranchResult>;

  /** Deletes a branch; `false` when it was already gone. */
  deleteBranch(projectId: number, name: string): Promise<boolean>;

  // ---- pipelines ----

  /**
   * Creates one pipeline on `ref` as the bot (`POST /projects/:id/pipeline`), with `variables` where the project lets
   * the bot set pipeline variables. Where it does not (`ci_pipeline_variables_minimum_override_role` above the bot's
   * role, or `no_one_allowed`, GitLab.com's default), GitLab answers 400 "Insufficient permissions to set pipeline
   * variables" and creates nothing; the pipeline is then created without them (`withoutVariables`), and later ones
   * in that project skip them for a while. GitLab refusing the pipeline itself (400: filtered out by
   * `workflow: rules`, no jobs, invalid CI config) is an outcome, not an error.
   */
  createPipeline(projectId: number, ref: string, variables: PipelineVariable[]): Promise<CreatePipelineResult>;

  /** Pipelines on `ref` (optionally only for `sha`), newest first. */
  listPipelines(projectId: number, filter: { ref: string; sha?: string }): Promise<Pipeline[]>;

  /** One pipeline, or `undefined` when it does not exist. */
  getPipeline(projectId: number, pipelineId: number): Promise<Pipeline | undefined>;

  /** The jobs of a pipeline (latest attempt of each), each with its pipeline's current status when GitLab embeds it. */
  getPipelineJobs(projectId: number, pipelineId: number): Promise<PipelineJob[]>;

  /**
   * The trigger (bridge) jobs of a pipeline (`GET .../pipelines/:id/bridges`, latest attempt of each): the jobs list
   * leaves them out. Same shape as a job; `webUrl` is the trigger job's page.
   */
  getPipelineBridges(projectId: number, pipelineId: number): Promise<PipelineJob[]>;

  /** The test-report summary; `undefined` when the pipeline has no test reports. */
  getTestReportSummary(projectId: number, pipelineId: number): Promise<TestReportSummary | undefined>;

  /**
   * A pipeline's status, its failed jobs (trigger jobs too) and its test report summary in one request (GitLab's
   * GraphQL API); `null` when the pipeline does not exist; `undefined` when this GitLab's GraphQL API cannot answer
   * it (none, or a schema without these fields): the caller then reads the REST routes.
   */
  getPipelineReport(
    projectId: number,
    pipelineId: number,
    /** A page of the project as GitLab linked it (an MR's or a pipeline's `web_url`): saves reading its path. */
    projectPageUrl?: string,
  ): Promise<PipelineReport | null | undefined>;

  /** Cancels a pipeline's running jobs. A pipeline that has already finished is left as it is. */
  cancelPipeline(projectId: number, pipelineId: number): Promise<Pipeline | undefined>;

  /** Retries the failed and canceled jobs of a pipeline; returns it with its new status. */
  retryPipeline(projectId: number, pipelineId: number): Promise<Pipeline>;

  // ---- commit status ----

  /**
   * Sets commit status `input.name` on `sha` to `input.state` (`POST /projects/:id/statuses/:sha`). Posting the state
   * the status already has is a 400 in GitLab; that answer counts as converged (`changed: false`). Callers skip the
   * call entirely when they know the status is already set.
   */
  ensureStatus(projectId: number, sha: string, input: CommitStatusInput): Promise<EnsureResult>;

  // ---- merge gating (approvals, external status checks) ----

  /**
   * Approves the MR as the bot at `sha` (`POST .../approve` with `sha`). `approved`: done now; `already`: the bot had
   * approved it (GitLab's 401 for a second approval, told apart from a refusal by reading the approvals);
   * `headMoved`: `sha` is no longer the head (409), nothing was approved. A real refusal throws.
   */
  approveMergeRequest(projectId: number, iid: number, sha: string): Promise<"approved" | "already" | "headMoved">;

  /** Withdraws the bot's approval (`POST .../unapprove`); `false` when it had none (GitLab's 404). */
  unapproveMergeRequest(projectId: number, iid: number): Promise<boolean>;

  /**
   * Answers the external status check named `name` for the MR's `sha` (Ultimate). The check's id is looked up by name
   * once per project and kept. `headMoved` when `sha` is no longer the head (409); a missing check throws.
   */
  respondToStatusCheck(
    projectId: number,
    iid: number,
    name: string,
    sha: string,
    status: "passed" | "failed",
  ): Promise<"answered" | "headMoved">;

  /** The project's approval rules; `undefined` where the instance or tier has none (404, 403). */
  listApprovalRules(projectId: number): Promise<ApprovalRule[] | undefined>;

  /** Creates a project approval rule requiring `approvalsRequired` approvals from `userIds` (Premium). */
  createApprovalRule(
    projectId: number,
    rule: { name: string; approvalsRequired: number; userIds: number[] },
  ): Promise<ApprovalRule>;

  /** The project's external status checks; `undefined` where the tier has none (Ultimate only: 401, 403, 404). */
  listExternalStatusChecks(projectId: number): Promise<ExternalStatusCheck[] | undefined>;

  /** Registers an external status check: GitLab POSTs every MR change to `externalUrl`. */
  createExternalStatusCheck(
    projectId: number,
    check: { name: string; externalUrl: string },
  ): Promise<ExternalStatusCheck>;

  // ---- notes and reactions ----

  /**
   * The bot's sticky note: a note by `authorId` (the bot) whose body *starts* with `marker` (a reply that quoted a
   * user's text, or a human quoting the marker, never does), not a system note. `knownId`, the id the bot last
   * knew, wins when that note still qualifies; otherwise the oldest qualifying note. `undefined` when there is none.
   */
  findStickyNote(
    projectId: number,
    iid: number,
    marker: string,
    authorId: number,
    knownId?: number,
  ): Promise<Note | undefined>;

  /**
   * Writes the sticky note identified by `marker` (which `body` must start with): updates `current` (the note as the
   * caller found it with {@link findStickyNote} or last wrote it) when its body differs, or creates the note when
   * `current` is undefined. An unchanged body costs no call. A note deleted meanwhile is written anew.
   */
  ensureStickyNote(
    projectId: number,
    iid: number,
    marker: string,
    body: string,
    current: { id: number; body: string } | undefined,
  ): Promise<Note>;

  /** One note of an MR; `undefined` when it does not exist (any more). */
  getNote(projectId: number, iid: number, noteId: number): Promise<Note | undefined>;

  /**
   * Posts a new note (a reply to a command). `internal` makes it an internal note (`internal: true`), visible only
   * to Planners, Reporters and up: the answer to a command written as an internal note.
   */
  postNote(projectId: number, iid: number, body: string, options?: { internal?: boolean }): Promise<Note>;

  /** Awards an emoji on a note; awarding one the bot already gave counts as done. */
  awardEmoji(projectId: number, iid: number, noteId: number, name: string): Promise<void>;

  // ---- project setup ----

  getProtectedBranch(projectId: number, name: string): Promise<ProtectedBranchRule | undefined>;

  /**
   * Every protected-branch rule of the project (all pages). Several can match one branch and the most permissive
   * wins, so checking one rule by name says little about who may push there.
   */
  listProtectedBranches(projectId: number): Promise<ProtectedBranchRule[]>;

  /** Protects `name` (wildcards allowed) with the given push/merge levels; `allowedToPushUserIds` needs Premium. */
  protectBranch(
    projectId: number,
    rule: { name: string; pushAccessLevel: number; mergeAccessLevel: number; allowForcePush: boolean },
  ): Promise<ProtectedBranchRule>;

  getLabel(projectId: number, name: string): Promise<Label | undefined>;

  createLabel(projectId: number, label: { name: string; color: string; description: string }): Promise<Label>;

  listHooks(projectId: number): Promise<ProjectHook[]>;

  /** Creates a project hook (`hookId` undefined) or edits one. */
  saveHook(projectId: number, hook: ProjectHookInput, hookId?: number): Promise<ProjectHook>;

  /** The instance's version and edition. */
  instance(): Promise<GitLabInstance>;
}
