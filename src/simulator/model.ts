/**
 * The simulator's world: plain records for everything the fake GitLab keeps. Public inspection methods of
 * `GitLabSimulator` return copies of these records, so tests cannot change the world behind the simulator's back.
 *
 * Field names are camelCase here; the REST entities (`entities.ts`) and webhook payloads (`payloads.ts`) turn them
 * into GitLab's snake_case JSON.
 */

/** GitLab's role levels (`Gitlab::Access`): 0 none, 5 minimal, 10 guest, 15 planner, 20 reporter, 30 developer, 40 maintainer, 50 owner. */
export const AccessLevel = {
  NoAccess: 0,
  Minimal: 5,
  Guest: 10,
  Planner: 15,
  Reporter: 20,
  Developer: 30,
  Maintainer: 40,
  Owner: 50,
} as const;

/**
 * `ci_pipeline_variables_minimum_override_role` (`ProjectCiCdSetting`): the least role that may set pipeline
 * variables while `restrict_user_defined_variables` is on. `no_one_allowed` lets nobody, Owners included; it is
 * GitLab.com's default for new projects in new namespaces since 17.7, `maintainer` the self-managed default.
 */
export type PipelineVariablesRole = "no_one_allowed" | "developer" | "maintainer" | "owner";

export const PIPELINE_VARIABLES_ROLES: readonly PipelineVariablesRole[] = [
  "no_one_allowed",
  "developer",
  "maintainer",
  "owner",
];

/** A 40-character hex string of zeros: GitLab's "no commit" in push payloads (`Gitlab::Git::SHA1_BLANK_SHA`). */
export const BLANK_SHA = "0000000000000000000000000000000000000000";

export interface SimUser {
  readonly id: number;
  readonly username: string;
  readonly name: string;
  /** Personal access token; send it as `PRIVATE-TOKEN` (or `Authorization: Bearer`). */
  readonly token: string;
  readonly bot: boolean;
}

export interface SimGroup {
  readonly id: number;
  readonly path: string;
  /** Slash-separated path from the top-level group, e.g. `org/team`. */
  readonly fullPath: string;
  readonly parentId?: number;
}

/** A project's namespace: a group or a user's personal namespace. */
export type SimNamespace =
  | { readonly kind: "group"; readonly id: number; readonly fullPath: string }
  | { readonly kind: "user"; readonly id: number; readonly fullPath: string; readonly userId: number };

export interface SimCiJob {
  readonly name: string;
  readonly stage: string;
  /** `allow_failure: true` jobs do not fail their pipeline. */
  readonly allowFailure?: boolean;
  /**
   * A trigger job (`trigger: <project>`): a bridge (`Ci::Bridge`), listed by `GET .../pipelines/:id/bridges`, never
   * by `.../jobs`. Its status is driven like any job's; no downstream pipeline is created (`downstream_pipeline: null`).
   */
  readonly trigger?: string;
}

export interface SimProject {
  readonly id: number;
  /** Last path segment, e.g. `app`. */
  readonly path: string;
  readonly name: string;
  /** e.g. `group/app`. */
  readonly pathWithNamespace: string;
  readonly webUrl: string;
  readonly defaultBranch: string;
  readonly namespace: SimNamespace;
  readonly forkedFromProjectId?: number;
  readonly ciJobs: readonly SimCiJob[];
  readonly createdAt: string;
}

export interface SimCommit {
  readonly id: string;
  readonly parentIds: readonly string[];
  readonly title: string;
  readonly message: string;
  readonly authorId: number;
  readonly createdAt: string;
  /**
   * Files this commit wrote (`null`: deleted), for the repository files API and the push hook's
   * `added`/`modified`/`removed`. Other contents are not modelled.
   */
  readonly files?: Readonly<Record<string, string | null>>;
}

export interface SimBranch {
  readonly name: string;
  /** Head commit. */
  readonly sha: string;
  /** True when a protected-branch rule (exact or wildcard) matches the name. */
  readonly protected: boolean;
}

export interface SimProtectedBranchRule {
  readonly id: number;
  /** Exact name or wildcard such as `trusted-*`. */
  readonly name: string;
  readonly pushAccessLevel: number;
  readonly mergeAccessLevel: number;
  readonly allowedToPushUserIds: readonly number[];
  /** Premium: users and groups named in "Allowed to merge" / "Allowed to push" (`allowed_to_merge`, ...). */
  readonly allowedToMergeUserIds: readonly number[];
  readonly allowedToPushGroupIds: readonly number[];
  readonly allowedToMergeGroupIds: readonly number[];
  /** Deploy keys allowed to push (listed only: the simulator has no git over SSH). */
  readonly allowedToPushDeployKeyIds: readonly number[];
  readonly allowForcePush: boolean;
}

export type MergeRequestState = "opened" | "closed" | "merged" | "locked";

export interface SimMergeRequest {
  readonly id: number;
  readonly iid: number;
  /** The target project; MRs live there. */
  readonly projectId: number;
  readonly targetProjectId: number;
  readonly targetBranch: string;
  /** `null` once the source project was deleted (`merge_requests.source_project_id` is `on_delete: :nullify`). */
  readonly sourceProjectId: number | null;
  readonly sourceBranch: string;
  readonly title: string;
  readonly description: string;
  readonly authorId: number;
  readonly state: MergeRequestState;
  readonly labels: readonly string[];
  readonly draft: boolean;
  /** Head commit of the source branch as the MR last saw it. */
  readonly sha: string;
  /** Target branch head when the MR was opened or last updated (`diff_refs.base_sha`). */
  readonly baseSha: string;
  readonly startSha: string;
  readonly mergeCommitSha: string | null;
  readonly mergedById: number | null;
  readonly closedById: number | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly mergedAt: string | null;
  readonly closedAt: string | null;
  readonly webUrl: string;
}

export interface SimNote {
  readonly id: number;
  readonly projectId: number;
  /** The MR's iid. */
  readonly noteableIid: number;
  /** The MR's global id. */
  readonly noteableId: number;
  readonly body: string;
  readonly authorId: number;
  readonly system: boolean;
  /** An internal note (`internal`, formerly `confidential`): visible to Reporters and up, fires `Confidential Note Hook`. */
  readonly internal: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface SimAwardEmoji {
  readonly id: number;
  readonly name: string;
  readonly userId: number;
  readonly awardableId: number;
  readonly createdAt: string;
}

export type CommitStatusState = "pending" | "running" | "success" | "failed" | "canceled" | "skipped";

export interface SimCommitStatus {
  readonly id: number;
  readonly projectId: number;
  readonly sha: string;
  readonly ref: string;
  readonly name: string;
  /** GitLab keeps `created` until the first transition; the API only accepts the states of {@link CommitStatusState}. */
  readonly status: CommitStatusState | "created";
  readonly targetUrl: string | null;
  readonly description: string | null;
  readonly pipelineId: number;
  readonly authorId: number;
  readonly allowFailure: boolean;
  readonly coverage: number | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
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
  | "scheduled";

/** The statuses tests may drive a pipeline or job to. */
export type DrivenStatus = "created" | "pending" | "running" | "success" | "failed" | "canceled";

export type PipelineSource =
  | "push"
  | "web"
  | "trigger"
  | "schedule"
  | "api"
  | "external"
  | "pipeline"
  | "chat"
  | "merge_request_event"
  | "parent_pipeline";

export interface SimJob {
  readonly id: number;
  readonly name: string;
  readonly stage: string;
  readonly status: PipelineStatus;
  readonly allowFailure: boolean;
  readonly userId: number;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  /** Set on the old job when a retry replaced it; GitLab hides retried jobs unless `include_retried`. */
  readonly retried: boolean;
  readonly failureReason: string | null;
  /** The downstream project of a trigger job (a bridge, `Ci::Bridge`); `null` for a build. */
  readonly trigger: string | null;
}

export interface SimPipelineVariable {
  readonly key: string;
  readonly value: string;
  readonly variableType: "env_var" | "file";
}

export interface TestReportSummaryInput {
  readonly total: number;
  readonly success: number;
  readonly failed: number;
  readonly skipped: number;
  readonly error: number;
  readonly suites?: ReadonlyArray<{ readonly name: string; readonly total: number; readonly failed: number }>;
}

export interface SimPipeline {
  readonly id: number;
  /** Per-project sequence. */
  readonly iid: number;
  readonly projectId: number;
  readonly ref: string;
  readonly sha: string;
  readonly beforeSha: string;
  readonly tag: boolean;
  readonly source: PipelineSource;
  readonly status: PipelineStatus;
  readonly userId: number;
  /** `CI_COMMIT_REF_PROTECTED`: the ref matched a protected-branch rule when the pipeline was created. */
  readonly protectedRef: boolean;
  readonly variables: readonly SimPipelineVariable[];
  readonly jobs: readonly SimJob[];
  readonly testReport: TestReportSummaryInput | null;
  /** The MR (in this project) for `merge_request_event` pipelines, else null. */
  readonly mergeRequestIid: number | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly webUrl: string;
}

export interface SimLabel {
  readonly id: number;
  readonly name: string;
  readonly color: string;
  readonly description: string | null;
}

export interface SimHook {
  readonly id: number;
  readonly projectId: number;
  readonly url: string;
  /** Sent as `X-Gitlab-Token`. */
  readonly token: string | null;
  /** `whsec_<base64>`: when set, deliveries carry Standard-Webhooks `webhook-*` headers. */
  readonly signingToken: string | null;
  readonly pushEvents: boolean;
  readonly pushEventsBranchFilter: string | null;
  readonly mergeRequestsEvents: boolean;
  readonly noteEvents: boolean;
  /** Internal notes go only to hooks with `confidential_note_events` (`Notes::PostProcessService`). */
  readonly confidentialNoteEvents: boolean;
  readonly pipelineEvents: boolean;
  readonly enableSslVerification: boolean;
  readonly createdAt: string;
}

export type WebhookEvent =
  | "Push Hook"
  | "Merge Request Hook"
  | "Note Hook"
  | "Confidential Note Hook"
  | "Pipeline Hook";

/**
 * The instance as `GET /metadata` describes it, and the version-dependent behaviour the simulator follows.
 * `webhookSigning`: hooks keep a `signing_token` and deliveries carry Standard-Webhooks headers (GitLab 19.0+, the
 * `webhook_signing_token` feature flag, `config/feature_flags/beta/webhook_signing_token.yml`); off, the parameter is
 * dropped like GitLab drops it (`lib/api/helpers/web_hooks_helpers.rb` `create_hook_params`).
 */
export interface SimInstance {
  version: string;
  revision: string;
  /** `enterprise` in `GET /metadata`: an EE build (any tier, Free included). */
  enterprise: boolean;
  /**
   * The license of an EE build (`License#feature_available?`): approval rules need Premium, external status checks
   * Ultimate. Not in `GET /metadata` (GitLab shows the license to administrators only); ignored on a CE build.
   */
  tier: SimTier;
  webhookSigning: boolean;
}

export type SimTier = "free" | "premium" | "ultimate";

/** A project approval rule (`ApprovalProjectRule`, `ee/lib/api/project_approval_rules.rb`); EE Premium+. */
export interface SimApprovalRule {
  readonly id: number;
  readonly name: string;
  readonly approvalsRequired: number;
  readonly userIds: readonly number[];
}

/** A project's external status check (`MergeRequests::ExternalStatusCheck`, `ee/lib/api/status_checks.rb`); Ultimate. */
export interface SimExternalStatusCheck {
  readonly id: number;
  readonly name: string;
  readonly externalUrl: string;
  readonly protectedBranchIds: readonly number[];
}

/** A `status_check_responses` row: what the external service answered for one SHA of one MR. */
export interface SimStatusCheckResponse {
  readonly id: number;
  readonly checkId: number;
  readonly sha: string;
  readonly status: "passed" | "failed";
}

/** One webhook request as it was (or would be) sent. `body` is the exact raw JSON that was signed. */
export interface Delivery {
  readonly id: string;
  readonly hookId: number;
  readonly url: string;
  readonly event: WebhookEvent;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly idempotencyKey: string;
}

export interface DeliveryLogEntry {
  readonly event: WebhookEvent;
  readonly url: string;
  /** HTTP status of the receiver's answer, or `"error"` for a network error / 10 s timeout. */
  readonly status: number | "error";
  readonly idempotencyKey: string;
  readonly at: number;
}

export type WebhookMode = "deliver" | "hold" | "drop";

export interface RequestLogEntry {
  readonly method: string;
  /**
   * Route template, e.g. `GET /projects/:id/merge_requests/:iid` (below `/api/v4`), or `POST /api/graphql`;
   * `UNKNOWN` for a route the simulator does not serve (501, or 404 for GraphQL while it is turned off).
   */
  readonly route: string;
  /** Request path below `/api/v4` with the query string; for GraphQL, `/api/graphql`. */
  readonly path: string;
  readonly status: number;
  readonly userId?: number;
  readonly at: number;
}

export interface Faults {
  /** Added before every `/api/v4` answer. */
  readonly latencyMs?: number;
  /** Share (0..1) of API requests answered with `errorStatus`. */
  readonly errorRate?: number;
  readonly errorStatus?: 500 | 502 | 503;
  /** Share (0..1) of API requests answered 429. */
  readonly rateLimitRate?: number;
  readonly retryAfterSeconds?: number;
  /** Add `RateLimit-Limit/Remaining/Reset` to 429s (GitLab sends them on most, not all, throttled answers). */
  readonly rateLimitHeaders?: boolean;
  /** Share (0..1) of webhook deliveries silently not sent. */
  readonly dropWebhookRate?: number;
}
