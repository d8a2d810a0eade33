/**
 * The GitLab port over the REST API, through `@gitbeaker/rest` (the only module that imports it, STYLE.md §8).
 *
 * Every answer is parsed once with zod into the port's small domain types, tolerant of what GitLab adds later
 * (unknown enum values become "unknown"). Every HTTP request is counted by route template and status, both in the
 * `tmr_gitlab_api_calls_total` metric and in a per-adapter counter that benchmarks and tests read: fewer calls is a
 * feature here. Failures leave as the classes of `src/errors.ts` via `classifyGitLabError`, except the answers that
 * are domain outcomes (a 404 for "not there", a 400 for "already exists").
 */
import { GitbeakerRequestError, Gitlab } from "@gitbeaker/rest";
import { z } from "zod";
import type { Config } from "../config/config.js";
import { PermanentError, RateLimitedError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import { classifyGitLabError, gitlabMessageText } from "./classify-error.js";
import type {
  ApprovalRule,
  Branch,
  CommitStatusInput,
  CreatePipelineResult,
  EnsureBranchResult,
  EnsureResult,
  ExternalStatusCheck,
  GitLabPort,
  Label,
  ListMergeRequestsFilter,
  MergeOutcome,
  MergeRequest,
  MergeRequestVersion,
  Note,
  Pipeline,
  PipelineJob,
  PipelineReport,
  PipelineVariable,
  Project,
  GitLabInstance,
  ProjectHook,
  ProjectHookInput,
  ProtectedBranchRule,
  ProtectedRefAccess,
  TestReportSummary,
  User,
} from "./port.js";
import type { CallBudget } from "./call-budget.js";
import { type CallStatus, createRequesterFn } from "./requester.js";

// ---- API answers, parsed tolerantly ----

const userSchema = z.object({ id: z.number(), username: z.string() });

const mergeRequestSchema = z.object({
  iid: z.number(),
  project_id: z.number(),
  state: z.enum(["opened", "closed", "merged", "locked"]).or(z.string().transform(() => "unknown" as const)),
  sha: z.string().nullable().catch(null),
  // `null` once the source fork was deleted (the foreign key is `on_delete: :nullify`): the MR still parses.
  source_project_id: z.number().nullable(),
  source_branch: z.string(),
  target_branch: z.string(),
  author: userSchema,
  labels: z.array(z.union([z.string(), z.object({ name: z.string() }).transform((l) => l.name)])).catch([]),
  draft: z.boolean().catch(false),
  title: z.string().catch(""),
  web_url: z.string(),
  merged_at: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
  closed_at: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
  updated_at: z.string().catch(""),
  // Single-MR answers only (`MergeRequest#diff_head_pipeline`); anything unexpected reads as "none".
  head_pipeline: z
    .object({ id: z.number(), project_id: z.number(), sha: z.string(), ref: z.string(), status: z.string() })
    .nullish()
    .catch(null),
});

const projectSchema = z.object({
  id: z.number(),
  path_with_namespace: z.string(),
  web_url: z.string(),
  default_branch: z
    .string()
    .nullish()
    .transform((v) => v ?? "main"),
  // CI/CD settings: shown to Maintainers and up only (`API::Entities::Project`, `admin_project`); 17.1+ for the role.
  ci_pipeline_variables_minimum_override_role: z
    .enum(["no_one_allowed", "developer", "maintainer", "owner"])
    .or(z.string().transform(() => "unknown" as const))
    .optional()
    .catch(undefined),
  restrict_user_defined_variables: z.boolean().optional().catch(undefined),
});

const branchSchema = z.object({
  name: z.string(),
  protected: z.boolean().catch(false),
  commit: z.object({ id: z.string(), committed_date: z.string().nullish() }),
});

const pipelineStatus = z
  .enum([
    "created",
    "waiting_for_resource",
    "preparing",
    "waiting_for_callback",
    "pending",
    "running",
    "success",
    "failed",
    "canceling",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
  ])
  .catch("unknown" as never) as z.ZodType<Pipeline["status"]>;

const pipelineSchema = z.object({
  id: z.number(),
  project_id: z.number(),
  ref: z
    .string()
    .nullish()
    .transform((v) => v ?? ""),
  sha: z.string(),
  status: pipelineStatus,
  source: z
    .string()
    .nullish()
    .transform((v) => v ?? "unknown"),
  web_url: z
    .string()
    .nullish()
    .transform((v) => v ?? ""),
  created_at: z.string().nullish(),
});

const jobSchema = z.object({
  id: z.number(),
  name: z.string(),
  stage: z.string().catch(""),
  status: pipelineStatus,
  allow_failure: z.boolean().catch(false),
  web_url: z
    .string()
    .nullish()
    .transform((v) => v ?? ""),
  pipeline: z.object({ id: z.number(), status: pipelineStatus }).optional().catch(undefined),
});

const count = z
  .number()
  .nullish()
  .transform((v) => v ?? 0);
const testReportSummarySchema = z.object({
  total: z.object({ count, success: count, failed: count, skipped: count, error: count }),
  test_suites: z
    .array(z.object({ name: z.string(), total_count: count, failed_count: count, error_count: count }))
    .catch([]),
});

const noteSchema = z.object({
  id: z.number(),
  body: z.string(),
  author: z.object({ id: z.number() }),
  system: z.boolean().catch(false),
  created_at: z.string().catch(""),
  updated_at: z.string().catch(""),
});

const memberSchema = z.object({ access_level: z.number() });

const versionSchema = z.object({ id: z.number(), head_commit_sha: z.string(), created_at: z.string() });

/** `API::Entities::ProtectedRefAccess`: `user_id` and `group_id` come from EE, `deploy_key_id` only when set. */
const accessLevels = z
  .array(
    z.object({
      access_level: z.number().nullish(),
      user_id: z.number().nullish(),
      group_id: z.number().nullish(),
      deploy_key_id: z.number().nullish(),
    }),
  )
  .catch([]);
const protectedBranchSchema = z.object({
  id: z.number(),
  name: z.string(),
  push_access_levels: accessLevels,
  merge_access_levels: accessLevels,
  // Unknown means allowed: a reader that checks safety must not assume the safe answer.
  allow_force_push: z.boolean().catch(true),
  inherited: z.boolean().catch(false),
});

const labelSchema = z.object({
  id: z.number(),
  name: z.string(),
  color: z.string().catch(""),
  description: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
});

const hookSchema = z.object({
  id: z.number(),
  url: z.string(),
  push_events: z.boolean().catch(false),
  merge_requests_events: z.boolean().catch(false),
  note_events: z.boolean().catch(false),
  confidential_note_events: z.boolean().catch(false),
  pipeline_events: z.boolean().catch(false),
  enable_ssl_verification: z.boolean().catch(true),
  // GitLab 19.0+ (`lib/api/entities/hook.rb`); absent before.
  signing_token_present: z.boolean().optional().catch(undefined),
});

/** `GET /metadata` (15.2+) and `GET /version` (older ones answer only `version` and `revision`). */
const approvalRuleSchema = z.object({
  id: z.number(),
  name: z.string(),
  approvals_required: z.number(),
  users: z.array(z.object({ id: z.number() })).catch([]),
});

const externalStatusCheckSchema = z.object({ id: z.number(), name: z.string(), external_url: z.string() });

function toApprovalRule(raw: unknown): ApprovalRule {
  const r = parse(approvalRuleSchema, raw, "approval rule");
  return { id: r.id, name: r.name, approvalsRequired: r.approvals_required, userIds: r.users.map((u) => u.id) };
}

function toStatusCheck(raw: unknown): ExternalStatusCheck {
  const c = parse(externalStatusCheckSchema, raw, "external status check");
  return { id: c.id, name: c.name, externalUrl: c.external_url };
}

/** Where a licensed feature is missing: no EE route (404), the licence check (401 for status checks, 403). */
const NOT_ON_THIS_TIER: ReadonlySet<number> = new Set([401, 403, 404]);

const metadataSchema = z.object({
  version: z.string(),
  revision: z.string().catch(""),
  enterprise: z.boolean().optional().catch(undefined),
});

// ---- mapping ----

function toMergeRequest(raw: unknown): MergeRequest {
  const m = parse(mergeRequestSchema, raw, "merge request");
  return {
    projectId: m.project_id,
    iid: m.iid,
    state: m.state,
    sha: m.sha ?? "",
    sourceProjectId: m.source_project_id,
    sourceBranch: m.source_branch,
    targetBranch: m.target_branch,
    author: { id: m.author.id, username: m.author.username },
    labels: m.labels,
    draft: m.draft,
    title: m.title,
    webUrl: m.web_url,
    mergedAt: m.merged_at,
    closedAt: m.closed_at,
    updatedAt: m.updated_at,
    ...(m.head_pipeline !== undefined
      ? {
          headPipeline: m.head_pipeline
            ? {
                id: m.head_pipeline.id,
                projectId: m.head_pipeline.project_id,
                sha: m.head_pipeline.sha,
                ref: m.head_pipeline.ref,
                status: m.head_pipeline.status,
              }
            : null,
        }
      : {}),
  };
}

function toProject(raw: unknown): Project {
  const p = parse(projectSchema, raw, "project");
  const role = p.ci_pipeline_variables_minimum_override_role;
  const restrict = p.restrict_user_defined_variables;
  return {
    id: p.id,
    pathWithNamespace: p.path_with_namespace,
    webUrl: p.web_url,
    defaultBranch: p.default_branch,
    ...(role !== undefined ? { pipelineVariablesMinimumRole: role } : {}),
    ...(restrict !== undefined ? { restrictUserDefinedVariables: restrict } : {}),
  };
}

function toBranch(raw: unknown): Branch {
  const b = parse(branchSchema, raw, "branch");
  return {
    name: b.name,
    sha: b.commit.id,
    protected: b.protected,
    ...(b.commit.committed_date ? { committedAt: b.commit.committed_date } : {}),
  };
}

function toPipeline(raw: unknown): Pipeline {
  const p = parse(pipelineSchema, raw, "pipeline");
  return {
    id: p.id,
    projectId: p.project_id,
    ref: p.ref,
    sha: p.sha,
    status: p.status,
    source: p.source,
    webUrl: p.web_url,
    ...(p.created_at ? { createdAt: p.created_at } : {}),
  };
}

function toJob(raw: unknown): PipelineJob {
  const j = parse(jobSchema, raw, "job");
  return {
    id: j.id,
    name: j.name,
    stage: j.stage,
    status: j.status,
    allowFailure: j.allow_failure,
    webUrl: j.web_url,
    ...(j.pipeline ? { pipeline: j.pipeline } : {}),
  };
}

function toNote(raw: unknown): Note {
  const n = parse(noteSchema, raw, "note");
  return {
    id: n.id,
    body: n.body,
    authorId: n.author.id,
    system: n.system,
    createdAt: n.created_at,
    updatedAt: n.updated_at,
  };
}

/** An entry's kind follows its ids, as `ProtectedRefAccess#type` does; its `access_level` counts only for a role. */
function toRefAccess(l: z.infer<typeof accessLevels>[number]): ProtectedRefAccess[] {
  if (l.user_id) return [{ kind: "user", userId: l.user_id }];
  if (l.group_id) return [{ kind: "group", groupId: l.group_id }];
  if (l.deploy_key_id) return [{ kind: "deployKey", deployKeyId: l.deploy_key_id }];
  return l.access_level !== null && l.access_level !== undefined ? [{ kind: "role", accessLevel: l.access_level }] : [];
}

function toProtectedBranch(raw: unknown): ProtectedBranchRule {
  const r = parse(protectedBranchSchema, raw, "protected branch");
  const pushAccess = r.push_access_levels.flatMap(toRefAccess);
  const mergeAccess = r.merge_access_levels.flatMap(toRefAccess);
  const roles = (list: ProtectedRefAccess[]) => list.flatMap((a) => (a.kind === "role" ? [a.accessLevel] : []));
  return {
    id: r.id,
    name: r.name,
    pushAccessLevels: roles(pushAccess),
    mergeAccessLevels: roles(mergeAccess),
    pushUserIds: pushAccess.flatMap((a) => (a.kind === "user" ? [a.userId] : [])),
    pushAccess,
    mergeAccess,
    allowForcePush: r.allow_force_push,
    inherited: r.inherited,
  };
}

function toHook(raw: unknown): ProjectHook {
  const h = parse(hookSchema, raw, "hook");
  return {
    id: h.id,
    url: h.url,
    pushEvents: h.push_events,
    mergeRequestsEvents: h.merge_requests_events,
    noteEvents: h.note_events,
    confidentialNoteEvents: h.confidential_note_events,
    pipelineEvents: h.pipeline_events,
    enableSslVerification: h.enable_ssl_verification,
    ...(h.signing_token_present === undefined ? {} : { signingTokenPresent: h.signing_token_present }),
  };
}

function parse<T>(schema: z.ZodType<T>, raw: unknown, what: string): T {
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new Error(
      `GitLab answered with an unexpected ${what}: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "invalid"}`,
    );
  }
  return result.data;
}

function statusOf(error: unknown): number | undefined {
  const response = (error as { cause?: { response?: { status?: unknown } } } | undefined)?.cause?.response;
  return typeof response?.status === "number" ? response.status : undefined;
}

/** GitLab's message as one plain sentence (a validation-error hash flattened, `gitlabMessageText`). */
function descriptionOf(error: unknown): string {
  const description = (error as { cause?: { description?: unknown } } | undefined)?.cause?.description;
  return typeof description === "string" ? gitlabMessageText(description) : "";
}

// ---- the adapter ----

export interface ApiCallCount {
  route: string;
  status: CallStatus;
  count: number;
}

/** The route GitLab's GraphQL API is counted under (requester.ts `routeTemplate`). */
const GRAPHQL_ROUTE = "POST /api/graphql";

/**
 * Writes the requester sends again after a 5xx or a network error (requester.ts), inside one port operation, so a
 * blip costs no job attempt. Only writes idempotent by construction: when the first try did reach GitLab after
 * all, the second ends in the same state and answers what the method below already takes as "done".
 * - `PUT .../notes/:note_id` (`ensureStickyNote`): sets the whole body; the same body twice is the same note.
 * - `DELETE .../branches/:branch` (`deleteBranch`): a 404, already gone, is "nothing to delete".
 * - `POST .../repository/branches` (`ensureTrustedBranch`): 400 "already exists" makes it compare the branch's SHA.
 * - `POST .../statuses/:sha` (`ensureStatus`): a pending or running state posted again is 400 "Cannot transition
 *   ... from" that state, taken as already set; a finished one posted again is a second, identical status.
 * - `POST .../award_emoji` (`awardEmoji`): "has already been taken" is done.
 * - `POST .../pipelines/:pipeline_id/cancel`: cancelling a cancelled pipeline answers the pipeline as it is.
 * - `PUT .../merge_requests/:iid` (`addLabels`, `editLabels`: `add_labels`/`remove_labels` only): adding a label the
 *   MR has, or removing one it lacks, changes nothing.
 * Never sent again: `POST /projects/:id/pipeline` (a second pipeline for the same SHA), `POST .../notes` (a second
 * note), `POST .../pipelines/:pipeline_id/retry` (the failed jobs run twice), and `setup`'s writes (protected
 * branches, labels, hooks), which a person runs and watches. Those fail the job attempt; the next attempt observes
 * GitLab first, so it sees what the failed try did after all.
 */
const IDEMPOTENT_WRITES: ReadonlySet<string> = new Set([
  "PUT /projects/:id/merge_requests/:iid/notes/:note_id",
  "DELETE /projects/:id/repository/branches/:branch",
  "POST /projects/:id/repository/branches",
  "POST /projects/:id/statuses/:sha",
  "POST /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji",
  "POST /projects/:id/pipelines/:pipeline_id/cancel",
  "PUT /projects/:id/merge_requests/:iid",
  // A second approve is GitLab's 401, read back as "already"; a second unapprove its 404, "had none"; a second
  // status check response the same answer for the same SHA again.
  "POST /projects/:id/merge_requests/:iid/approve",
  "POST /projects/:id/merge_requests/:iid/unapprove",
  "POST /projects/:id/merge_requests/:iid/status_check_responses",
  // A GraphQL query reads only (getPipelineReport).
  GRAPHQL_ROUTE,
]);

/**
 * One request for what mirroring a finished pipeline shows (`getPipelineReport`): GitLab's GraphQL schema
 * (`Types::Ci::PipelineType`: `status`, `jobs`, which unlike REST's jobs list includes trigger jobs, and
 * `testReportSummary`; `Types::ProjectType#pipeline(id:)`). The REST equivalent is three requests: the jobs list,
 * the bridges and the test report summary. Variables are lower-case words: the requester snake-cases JSON keys.
 */
const PIPELINE_REPORT_QUERY = `query($path: ID!, $id: CiPipelineID!) {
  project(fullPath: $path) {
    pipeline(id: $id) {
      status
      jobs(statuses: [FAILED], retried: false, first: 100) {
        nodes { id name status allowFailure webPath kind stage { name } }
      }
      testReportSummary {
        total { count success failed skipped error }
        testSuites(first: 100) { nodes { name totalCount failedCount errorCount } }
      }
    }
  }
}`;
/**
 * How long a GitLab whose GraphQL API could not answer the report (no endpoint, an older schema) is asked over REST
 * only: the first report after it costs one refused request again, so an upgrade is noticed without a restart.
 */
const GRAPHQL_UNAVAILABLE_TTL_MS = 60 * 60 * 1000;

/** GraphQL's `PipelineStatusEnum` and `CiJobStatus` are REST's statuses in capitals. */
const graphqlStatus = z
  .unknown()
  .transform((v) => (typeof v === "string" ? v.toLowerCase() : v))
  .pipe(pipelineStatus);
const pipelineReportSchema = z.object({
  data: z.object({
    project: z
      .object({
        pipeline: z
          .object({
            status: graphqlStatus,
            jobs: z.object({
              nodes: z.array(
                z.object({
                  // `gid://gitlab/Ci::Build/12` (or `Ci::Bridge`).
                  id: z.string(),
                  name: z.string(),
                  status: graphqlStatus,
                  allowFailure: z.boolean().catch(false),
                  webPath: z.string().nullish(),
                  stage: z.object({ name: z.string() }).nullish(),
                }),
              ),
            }),
            testReportSummary: z.object({
              total: z.object({ count, success: count, failed: count, skipped: count, error: count }),
              testSuites: z.object({
                nodes: z.array(
                  z.object({ name: z.string(), totalCount: count, failedCount: count, errorCount: count }),
                ),
              }),
            }),
          })
          .nullable(),
      })
      .nullable(),
  }),
});

/**
 * GitLab's answer to pipeline variables from a user the project does not let set them: 400
 * `{"message":{"base":["Insufficient permissions to set pipeline variables"]}}` (`Gitlab::Ci::Pipeline::Chain::Build`
 * via `render_validation_error!` in `lib/api/ci/pipelines.rb`). The chain stops before the pipeline is saved.
 */
const VARIABLES_REFUSED_MESSAGE = "Insufficient permissions to set pipeline variables";
const VARIABLES_REFUSED = Symbol("pipeline variables refused");
/**
 * How long a project that refused the bot's pipeline variables gets none: a project whose setting is relaxed later
 * gets them back after this, without a restart (the first try then costs one refused request again).
 */
const VARIABLES_REFUSED_TTL_MS = 60 * 60 * 1000;

export interface GitbeakerAdapterOptions {
  config: Pick<Config, "gitlab">;
  metrics?: Metrics;
  /** The call budget shared by every process (call-budget.ts); absent where there is no Redis (the `setup` CLI). */
  budget?: CallBudget;
}

export class GitbeakerAdapter implements GitLabPort {
  private readonly api: InstanceType<typeof Gitlab<false>>;
  private readonly counts = new Map<string, ApiCallCount>();
  /** Project id → when GitLab last refused the bot's pipeline variables there ({@link createPipeline}). */
  private readonly variablesRefused = new Map<number, number>();
  /** Project id → its full path, for GraphQL (`project(fullPath:)`); a project's path is read once per process. */
  private readonly projectPaths = new Map<number, string>();
  /** Until when GitLab's GraphQL API is not asked for pipeline reports ({@link getPipelineReport}). */
  private graphqlUnavailableUntil = 0;
  /** Requests outside the REST API (`/api/graphql`), through the same requester: budget, retries, counts. */
  private readonly graphql: ReturnType<ReturnType<typeof createRequesterFn>>;
  private readonly origin: string;
  /** `gitlab.url` without trailing slashes. */
  private readonly host: string;
  /** `projectId:name` → id of that external status check ({@link respondToStatusCheck}). */
  private readonly statusChecks = new Map<string, number>();
  private readonly metrics: Metrics | undefined;

  constructor(options: GitbeakerAdapterOptions) {
    const { gitlab } = options.config;
    const { budget } = options;
    this.metrics = options.metrics;
    const requesterFn = createRequesterFn({
      onCall: (route, status) => this.count(route, status),
      requestError: (description, cause) => new GitbeakerRequestError(description, { cause }),
      retriesWrite: (route) => IDEMPOTENT_WRITES.has(route),
      ...(budget && {
        beforeCall: () => budget.acquire(),
        rateLimited: async (error: Error, route: string) => {
          const limited = classifyGitLabError(error, route);
          if (limited instanceof RateLimitedError) await budget.pause(limited.retryAfterMs);
        },
      }),
    });
    const host = gitlab.url.replace(/\/+$/, "");
    this.host = host;
    this.origin = new URL(host).origin;
    this.graphql = requesterFn({
      url: `${host}/api/`,
      headers: {},
      authHeaders: { "private-token": async () => gitlab.token ?? "" },
    });
    this.api = new Gitlab({
      host,
      token: gitlab.token ?? "",
      queryTimeout: gitlab.request_timeout_ms,
      // biome-ignore lint/suspicious/noExplicitAny: gitbeaker types requesterFn against its internal RequesterType.
      requesterFn: requesterFn as any,
    });
  }

  /** Calls sent since construction (or the last reset), by route template and status. */
  apiCalls(): ApiCallCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }));
  }

  totalApiCalls(): number {
    let total = 0;
    for (const c of this.counts.values()) total += c.count;
    return total;
  }

  resetApiCalls(): void {
    this.counts.clear();
  }

  private count(route: string, status: CallStatus): void {
    const key = `${route} ${status}`;
    const entry = this.counts.get(key) ?? { route, status, count: 0 };
    entry.count++;
    this.counts.set(key, entry);
    this.metrics?.gitlabCalls.inc({ route, status: String(status) });
  }

  /** Runs one port operation; failures not handled by `onError` leave classified. */
  private async call<T>(route: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw classifyGitLabError(error, route);
    }
  }

  /** Like {@link call}, but a 404 is a value. */
  private async maybe<T>(route: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw classifyGitLabError(error, route);
    }
  }

  // ---- identity and permissions ----

  async currentUser(): Promise<User> {
    const raw = await this.call("GET /user", () => this.api.Users.showCurrentUser());
    return parse(userSchema, raw, "user");
  }

  async getUser(userId: number): Promise<User | undefined> {
    const raw = await this.maybe("GET /users/:user_id", () => this.api.Users.show(userId));
    return raw === undefined ? undefined : parse(userSchema, raw, "user");
  }

  async findUserByUsername(username: string): Promise<User | undefined> {
    // One page is plenty: GitLab answers at most one user for an exact username.
    const raw = await this.call("GET /users", () => this.api.Users.all({ username, perPage: 20, maxPages: 1 }));
    const users = parse(z.array(userSchema), raw, "users");
    // The match is GitLab's (case-insensitive); checked again so a lenient search can never pick someone else.
    return users.find((u) => u.username.toLowerCase() === username.toLowerCase());
  }

  async getProject(idOrPath: number | string): Promise<Project | undefined> {
    const raw = await this.maybe("GET /projects/:id", () => this.api.Projects.show(idOrPath));
    return raw === undefined ? undefined : toProject(raw);
  }

  async getRepositoryFile(projectId: number, path: string, ref: string): Promise<string | undefined> {
    const raw = await this.maybe("GET /projects/:id/repository/files/:file_path/raw", () =>
      this.api.RepositoryFiles.showRaw(projectId, path, ref),
    );
    if (raw === undefined) return undefined;
    // GitLab sends the blob as text/plain (lib/api/helpers.rb `send_git_blob`); anything else is read as UTF-8.
    return typeof raw === "string" ? raw : await (raw as Blob).text();
  }

  async listMemberProjects(minAccessLevel: number): Promise<Project[]> {
    const raw = await this.call("GET /projects", () =>
      this.api.Projects.all({ membership: true, minAccessLevel, archived: false, simple: true, perPage: 100 } as never),
    );
    return (raw as unknown[]).map(toProject);
  }

  async listGroupProjects(group: number | string): Promise<Project[] | undefined> {
    // Without `page`, gitbeaker follows the pages to the end.
    const raw = await this.maybe("GET /groups/:id/projects", () =>
      this.api.Groups.allProjects(group, {
        includeSubgroups: true,
        withShared: false,
        archived: false,
        perPage: 100,
      } as never),
    );
    return raw === undefined ? undefined : (raw as unknown[]).map(toProject);
  }

  async effectiveAccessLevel(projectId: number, userId: number): Promise<number> {
    const raw = await this.maybe("GET /projects/:id/members/all/:user_id", () =>
      this.api.ProjectMembers.show(projectId, userId, { includeInherited: true }),
    );
    return raw === undefined ? 0 : parse(memberSchema, raw, "member").access_level;
  }

  async groupAccessLevel(group: number | string, userId: number): Promise<number> {
    const raw = await this.maybe("GET /groups/:id/members/all/:user_id", () =>
      this.api.GroupMembers.show(group, userId, { includeInherited: true }),
    );
    return raw === undefined ? 0 : parse(memberSchema, raw, "member").access_level;
  }

  // ---- merge requests ----

  async getMergeRequest(projectId: number, iid: number): Promise<MergeRequest | undefined> {
    const raw = await this.maybe("GET /projects/:id/merge_requests/:iid", () =>
      this.api.MergeRequests.show(projectId, iid),
    );
    return raw === undefined ? undefined : toMergeRequest(raw);
  }

  async mergeMergeRequest(projectId: number, iid: number, sha: string): Promise<MergeOutcome> {
    const route = "PUT /projects/:id/merge_requests/:iid/merge";
    try {
      return { merged: toMergeRequest(await this.api.MergeRequests.merge(projectId, iid, { sha })) };
    } catch (error) {
      // `lib/api/merge_requests.rb`: 401 `can_be_merged_by?`, 405 `not_allowed!` (not mergeable: closed, draft,
      // pipeline not passed, approvals), 406/422 "Branch cannot be merged", 409 `check_sha_param!`.
      const status = statusOf(error);
      const message = descriptionOf(error);
      if (status === 409) return { refused: "sha", message };
      if (status === 405 || status === 406 || status === 422) return { refused: "not_mergeable", message };
      if (status === 401 || status === 403) return { refused: "not_allowed", message };
      throw classifyGitLabError(error, route);
    }
  }

  listOpenMergeRequests(projectId: number, filter: { sourceBranch?: string } = {}): Promise<MergeRequest[]> {
    return this.listMergeRequests(projectId, { state: "opened", ...filter });
  }

  async listMergeRequests(projectId: number, filter: ListMergeRequestsFilter): Promise<MergeRequest[]> {
    const perPage = filter.limit !== undefined ? Math.min(100, filter.limit) : 100;
    const raw = await this.call("GET /projects/:id/merge_requests", () =>
      this.api.MergeRequests.all({
        projectId,
        state: filter.state,
        ...(filter.sourceBranch !== undefined ? { sourceBranch: filter.sourceBranch } : {}),
        ...(filter.authorId !== undefined ? { authorId: filter.authorId } : {}),
        ...(filter.updatedAfter !== undefined ? { updatedAfter: filter.updatedAfter } : {}),
        orderBy: "created_at",
        sort: "desc",
        perPage,
        ...(filter.limit !== undefined ? { maxPages: Math.ceil(filter.limit / perPage) } : {}),
      } as never),
    );
    const list = (raw as unknown[]).map(toMergeRequest);
    return filter.limit !== undefined ? list.slice(0, filter.limit) : list;
  }

  async hasMergedMergeRequest(projectId: number, authorId: number): Promise<boolean> {
    const list = await this.listMergeRequests(projectId, { state: "merged", authorId, limit: 1 });
    return list.length > 0;
  }

  async listMergeRequestVersions(projectId: number, iid: number): Promise<MergeRequestVersion[]> {
    const raw = await this.call("GET /projects/:id/merge_requests/:iid/versions", () =>
      this.api.MergeRequests.allDiffVersions(projectId, iid),
    );
    return (raw as unknown[]).map((v) => {
      const version = parse(versionSchema, v, "merge request version");
      return { id: version.id, headSha: version.head_commit_sha, createdAt: version.created_at };
    });
  }

  async addLabels(projectId: number, iid: number, labels: string[]): Promise<void> {
    await this.call("PUT /projects/:id/merge_requests/:iid", () =>
      this.api.MergeRequests.edit(projectId, iid, { addLabels: labels.join(",") }),
    );
  }

  async editLabels(projectId: number, iid: number, change: { add: string[]; remove: string[] }): Promise<void> {
    // Comma-separated, as the API takes them; an empty list is left out (GitLab would read "" as no labels at all).
    const options: { addLabels?: string; removeLabels?: string } = {};
    if (change.add.length > 0) options.addLabels = change.add.join(",");
    if (change.remove.length > 0) options.removeLabels = change.remove.join(",");
    await this.call("PUT /projects/:id/merge_requests/:iid", () =>
      this.api.MergeRequests.edit(projectId, iid, options),
    );
  }

  // ---- branches ----

  async getBranch(projectId: number, name: string): Promise<Branch | undefined> {
    const raw = await this.maybe("GET /projects/:id/repository/branches/:branch", () =>
      this.api.Branches.show(projectId, name),
    );
    return raw === undefined ? undefined : toBranch(raw);
  }

  async listBranches(projectId: number, prefix: string): Promise<Branch[]> {
    const raw = await this.call("GET /projects/:id/repository/branches", () =>
      this.api.Branches.all(projectId, { search: `^${prefix}`, perPage: 100 }),
    );
    // GitLab's search is case-insensitive; the prefix is not.
    return (raw as unknown[]).map(toBranch).filter((b) => b.name.startsWith(prefix));
  }

  async listAllBranches(projectId: number, maxPages: number): Promise<Branch[]> {
    const raw = await this.call("GET /projects/:id/repository/branches", () =>
      this.api.Branches.all(projectId, { perPage: 100, maxPages } as never),
    );
    return (raw as unknown[]).map(toBranch);
  }

  async ensureTrustedBranch(
    projectId: number,
    name: string,
    sha: string,
    lastSeen?: string,
  ): Promise<EnsureBranchResult> {
    const route = "POST /projects/:id/repository/branches";
    const create = () => this.api.Branches.create(projectId, name, sha);
    let previous: string | undefined;
    if (lastSeen !== undefined && lastSeen !== sha) {
      // A move. Read first: a retried grant may already have put the branch at `sha`, and a branch that already
      // points at its target is never deleted (its pipeline would lose its ref, and a second one would follow).
      const current = await this.getBranch(projectId, name);
      if (current?.sha === sha) return { outcome: "unchanged" };
      if (current && (await this.deleteBranch(projectId, name))) previous = current.sha;
    }
    try {
      await create();
      return previous !== undefined ? { outcome: "moved", previousSha: previous } : { outcome: "created" };
    } catch (error) {
      if (statusOf(error) !== 400 || !/already exists/i.test(descriptionOf(error))) {
        throw classifyGitLabError(error, route);
      }
    }
    const existing = await this.getBranch(projectId, name);
    if (existing?.sha === sha) return { outcome: "unchanged" };
    if (existing) await this.deleteBranch(projectId, name);
    await this.call(route, create);
    return existing ? { outcome: "moved", previousSha: existing.sha } : { outcome: "created" };
  }

  async deleteBranch(projectId: number, name: string): Promise<boolean> {
    const done = await this.maybe("DELETE /projects/:id/repository/branches/:branch", async () => {
      await this.api.Branches.remove(projectId, name);
      return true;
    });
    return done ?? false;
  }

  // ---- pipelines ----

  async createPipeline(projectId: number, ref: string, variables: PipelineVariable[]): Promise<CreatePipelineResult> {
    const refusedAt = this.variablesRefused.get(projectId);
    const skip = refusedAt !== undefined && Date.now() - refusedAt < VARIABLES_REFUSED_TTL_MS;
    if (variables.length > 0 && !skip) {
      const first = await this.postPipeline(projectId, ref, variables);
      if (first !== VARIABLES_REFUSED) return first;
      // Nothing was created (the chain stopped at its Build step), so asking again makes exactly one pipeline.
      this.variablesRefused.set(projectId, Date.now());
    }
    const result = await this.postPipeline(projectId, ref, []);
    if (result === VARIABLES_REFUSED) return { refused: VARIABLES_REFUSED_MESSAGE };
    return "created" in result && variables.length > 0 ? { ...result, withoutVariables: true } : result;
  }

  /** One `POST /projects/:id/pipeline`; `variables` are left out of the request when there are none. */
  private async postPipeline(
    projectId: number,
    ref: string,
    variables: PipelineVariable[],
  ): Promise<CreatePipelineResult | typeof VARIABLES_REFUSED> {
    try {
      const raw = await this.api.Pipelines.create(
        projectId,
        ref,
        variables.length > 0
          ? { variables: variables.map((v) => ({ key: v.key, value: v.value, variable_type: "env_var" })) as never }
          : undefined,
      );
      return { created: toPipeline(raw) };
    } catch (error) {
      if (statusOf(error) === 400) {
        const message = descriptionOf(error);
        if (variables.length > 0 && message.includes(VARIABLES_REFUSED_MESSAGE)) return VARIABLES_REFUSED;
        return { refused: message || "GitLab refused to create it (400)" };
      }
      throw classifyGitLabError(error, "POST /projects/:id/pipeline");
    }
  }

  async listPipelines(projectId: number, filter: { ref: string; sha?: string }): Promise<Pipeline[]> {
    const raw = await this.call("GET /projects/:id/pipelines", () =>
      this.api.Pipelines.all(projectId, {
        ref: filter.ref,
        ...(filter.sha !== undefined ? { sha: filter.sha } : {}),
        orderBy: "id",
        sort: "desc",
        perPage: 100,
        maxPages: 1,
      } as never),
    );
    return (raw as unknown[]).map(toPipeline);
  }

  async getPipeline(projectId: number, pipelineId: number): Promise<Pipeline | undefined> {
    const raw = await this.maybe("GET /projects/:id/pipelines/:pipeline_id", () =>
      this.api.Pipelines.show(projectId, pipelineId),
    );
    return raw === undefined ? undefined : toPipeline(raw);
  }

  async getPipelineJobs(projectId: number, pipelineId: number): Promise<PipelineJob[]> {
    const raw = await this.call("GET /projects/:id/pipelines/:pipeline_id/jobs", () =>
      this.api.Jobs.all(projectId, { pipelineId, perPage: 100 }),
    );
    return (raw as unknown[]).map(toJob);
  }

  async getPipelineBridges(projectId: number, pipelineId: number): Promise<PipelineJob[]> {
    // `API::Entities::Ci::Bridge` is a `JobBasic` plus `downstream_pipeline`: the job schema reads it.
    const raw = await this.call("GET /projects/:id/pipelines/:pipeline_id/bridges", () =>
      this.api.Jobs.allPipelineBridges(projectId, pipelineId, { perPage: 100 } as never),
    );
    return (raw as unknown[]).map(toJob);
  }

  async getTestReportSummary(projectId: number, pipelineId: number): Promise<TestReportSummary | undefined> {
    const raw = await this.maybe("GET /projects/:id/pipelines/:pipeline_id/test_report_summary", () =>
      this.api.Pipelines.showTestReportSummary(projectId, pipelineId),
    );
    if (raw === undefined) return undefined;
    const s = parse(testReportSummarySchema, raw, "test report summary");
    if (s.total.count === 0 && s.test_suites.length === 0) return undefined;
    const suites = s.test_suites
      .map((t) => ({ name: t.name, total: t.total_count, failed: t.failed_count, error: t.error_count }))
      .sort((a, b) => b.failed + b.error - (a.failed + a.error));
    return {
      total: s.total.count,
      success: s.total.success,
      failed: s.total.failed,
      skipped: s.total.skipped,
      error: s.total.error,
      suites,
    };
  }

  async getPipelineReport(
    projectId: number,
    pipelineId: number,
    projectPageUrl?: string,
  ): Promise<PipelineReport | null | undefined> {
    if (Date.now() < this.graphqlUnavailableUntil) return undefined;
    const path = await this.projectPath(projectId, projectPageUrl);
    if (path === undefined) return undefined;
    let body: unknown;
    try {
      const variables = { path, id: `gid://gitlab/Ci::Pipeline/${pipelineId}` };
      body = (await this.graphql.post("graphql", { body: { query: PIPELINE_REPORT_QUERY, variables } })).body;
    } catch (error) {
      // No GraphQL endpoint, or one that will not take this request (a GitLab stand-in, a proxy that passes only
      // /api/v4, an auth rule of its own): any 4xx but 429, or 501, means REST for a while, and REST says what is
      // wrong if anything is. A 429, another 5xx or no answer is the same outage REST would meet: the job retries.
      const status = statusOf(error);
      if (status !== undefined && ((status >= 400 && status < 500 && status !== 429) || status === 501)) {
        return this.graphqlUnavailable();
      }
      throw classifyGitLabError(error, GRAPHQL_ROUTE);
    }
    // An error in the answer (an older schema without `pipeline(id:)` or `retried`, a query too complex) or a shape
    // this version does not know: REST for a while.
    if ((body as { errors?: unknown[] } | null)?.errors?.length) return this.graphqlUnavailable();
    const parsed = pipelineReportSchema.safeParse(body);
    if (!parsed.success) return this.graphqlUnavailable();
    const project = parsed.data.data.project;
    if (project === null) return undefined; // not readable this way: REST says what it says
    const p = project.pipeline;
    if (p === null) return null;
    const t = p.testReportSummary;
    const suites = t.testSuites.nodes
      .map((s) => ({ name: s.name, total: s.totalCount, failed: s.failedCount, error: s.errorCount }))
      .sort((a, b) => b.failed + b.error - (a.failed + a.error));
    const hasTests = t.total.count > 0 || suites.length > 0;
    return {
      status: p.status,
      failedJobs: p.jobs.nodes.map((j) => {
        const id = Number(/\/(\d+)$/.exec(j.id)?.[1] ?? 0);
        return {
          id,
          name: j.name,
          stage: j.stage?.name ?? "",
          status: j.status,
          allowFailure: j.allowFailure,
          // GitLab gives a trigger job no `webPath` (`Types::Ci::JobType`); its page is a job page all the same.
          webUrl: j.webPath ? new URL(j.webPath, this.origin).toString() : `${this.host}/${path}/-/jobs/${id}`,
        };
      }),
      ...(hasTests
        ? {
            tests: {
              total: t.total.count,
              success: t.total.success,
              failed: t.total.failed,
              skipped: t.total.skipped,
              error: t.total.error,
              suites,
            },
          }
        : {}),
    };
  }

  private graphqlUnavailable(): undefined {
    this.graphqlUnavailableUntil = Date.now() + GRAPHQL_UNAVAILABLE_TTL_MS;
    return undefined;
  }

  /**
   * The project's full path (GraphQL names projects by path): from a page URL of it under this GitLab
   * (`<gitlab.url>/<path>/-/merge_requests/7`: GitLab's routes put `/-/` after the project's path), else read once
   * per process. A wrong path costs nothing worse than a `null` project (REST then).
   */
  private async projectPath(projectId: number, pageUrl?: string): Promise<string | undefined> {
    const known = this.projectPaths.get(projectId);
    if (known !== undefined) return known;
    const fromPage = pageUrl?.startsWith(`${this.host}/`)
      ? /^([^?#]+?)\/-\//.exec(pageUrl.slice(this.host.length + 1))?.[1]
      : undefined;
    if (fromPage) {
      this.projectPaths.set(projectId, decodeURIComponent(fromPage));
      return decodeURIComponent(fromPage);
    }
    // Only a 429 stops here; any other failure to learn the path leaves the report to REST.
    const project = await this.getProject(projectId).catch((error: unknown) => {
      if (error instanceof RateLimitedError) throw error;
      return undefined;
    });
    if (project) this.projectPaths.set(projectId, project.pathWithNamespace);
    return project?.pathWithNamespace;
  }

  async cancelPipeline(projectId: number, pipelineId: number): Promise<Pipeline | undefined> {
    const raw = await this.maybe("POST /projects/:id/pipelines/:pipeline_id/cancel", () =>
      this.api.Pipelines.cancel(projectId, pipelineId),
    );
    return raw === undefined ? undefined : toPipeline(raw);
  }

  async retryPipeline(projectId: number, pipelineId: number): Promise<Pipeline> {
    const raw = await this.call("POST /projects/:id/pipelines/:pipeline_id/retry", () =>
      this.api.Pipelines.retry(projectId, pipelineId),
    );
    return toPipeline(raw);
  }

  // ---- commit status ----

  async ensureStatus(projectId: number, sha: string, input: CommitStatusInput): Promise<EnsureResult> {
    const description =
      input.description && input.description.length > 255 ? `${input.description.slice(0, 254)}…` : input.description;
    const post = (state: CommitStatusInput["state"]) =>
      this.api.Commits.editStatus(projectId, sha, state as never, {
        name: input.name,
        ref: input.ref,
        ...(input.targetUrl !== undefined ? { targetUrl: input.targetUrl } : {}),
        ...(description !== undefined ? { description } : {}),
        ...(input.pipelineId !== undefined ? { pipelineId: input.pipelineId } : {}),
      });
    const route = "POST /projects/:id/statuses/:sha";
    try {
      await post(input.state);
      return { changed: true };
    } catch (error) {
      // "Cannot transition status via :enqueue from :running": GitLab updates a pending or running status in place
      // (Ci::CreateCommitStatusService), so the same state again is refused, and so is running -> pending. The
      // first means it is already set; for the second, finish the running status first: a finished status is
      // never updated, the next post starts a new one.
      const from = /cannot transition status via :\w+ from :(\w+)/i.exec(descriptionOf(error))?.[1];
      if (statusOf(error) !== 400 || from === undefined) throw classifyGitLabError(error, route);
      if (from === input.state) return { changed: false };
      if (from !== "running" && from !== "pending") throw classifyGitLabError(error, route);
    }
    await this.call(route, () => post("canceled"));
    await this.call(route, () => post(input.state));
    return { changed: true };
  }

  // ---- notes and reactions ----

  async findStickyNote(
    projectId: number,
    iid: number,
    marker: string,
    authorId: number,
    knownId?: number,
  ): Promise<Note | undefined> {
    const raw = await this.call("GET /projects/:id/merge_requests/:iid/notes", () =>
      this.api.MergeRequestNotes.all(projectId, iid, { sort: "asc", orderBy: "created_at", perPage: 100 }),
    );
    const candidates = (raw as unknown[])
      .map(toNote)
      .filter((n) => !n.system && n.authorId === authorId && n.body.startsWith(marker));
    return candidates.find((n) => n.id === knownId) ?? candidates[0];
  }

  async ensureStickyNote(
    projectId: number,
    iid: number,
    marker: string,
    body: string,
    current: { id: number; body: string } | undefined,
  ): Promise<Note> {
    if (!body.startsWith(marker)) throw new Error("a sticky note body must start with its marker");
    if (current && current.body === body) {
      return { id: current.id, body, authorId: 0, system: false, createdAt: "", updatedAt: "" };
    }
    if (current) {
      const raw = await this.maybe("PUT /projects/:id/merge_requests/:iid/notes/:note_id", () =>
        this.api.MergeRequestNotes.edit(projectId, iid, current.id, { body }),
      );
      if (raw !== undefined) return toNote(raw);
      // The note was deleted since it was read: write a new one.
    }
    return this.postNote(projectId, iid, body);
  }

  async getNote(projectId: number, iid: number, noteId: number): Promise<Note | undefined> {
    const raw = await this.maybe("GET /projects/:id/merge_requests/:iid/notes/:note_id", () =>
      this.api.MergeRequestNotes.show(projectId, iid, noteId),
    );
    return raw === undefined ? undefined : toNote(raw);
  }

  async postNote(projectId: number, iid: number, body: string, options?: { internal?: boolean }): Promise<Note> {
    // `internal` (lib/api/notes.rb; `confidential` before 15.5): sent only when asked, so a plain reply is unchanged.
    const extra = options?.internal ? ({ internal: true } as never) : undefined;
    const raw = await this.call("POST /projects/:id/merge_requests/:iid/notes", () =>
      this.api.MergeRequestNotes.create(projectId, iid, body, extra),
    );
    return toNote(raw);
  }

  async awardEmoji(projectId: number, iid: number, noteId: number, name: string): Promise<void> {
    const route = "POST /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji";
    try {
      await this.api.MergeRequestNoteAwardEmojis.award(projectId, iid, noteId, name);
    } catch (error) {
      // 404: the note is gone; 400/409 "has already been taken": the bot awarded it before.
      const status = statusOf(error);
      if (status === 404 || ((status === 400 || status === 409) && /already|taken/i.test(descriptionOf(error)))) return;
      throw classifyGitLabError(error, route);
    }
  }

  // ---- project setup ----

  async getProtectedBranch(projectId: number, name: string): Promise<ProtectedBranchRule | undefined> {
    const raw = await this.maybe("GET /projects/:id/protected_branches/:name", () =>
      this.api.ProtectedBranches.show(projectId, name),
    );
    return raw === undefined ? undefined : toProtectedBranch(raw);
  }

  async listProtectedBranches(projectId: number): Promise<ProtectedBranchRule[]> {
    const raw = await this.call("GET /projects/:id/protected_branches", () =>
      this.api.ProtectedBranches.all(projectId, { perPage: 100 }),
    );
    return (raw as unknown[]).map(toProtectedBranch);
  }

  async protectBranch(
    projectId: number,
    rule: { name: string; pushAccessLevel: number; mergeAccessLevel: number; allowForcePush: boolean },
  ): Promise<ProtectedBranchRule> {
    const raw = await this.call("POST /projects/:id/protected_branches", () =>
      this.api.ProtectedBranches.create(projectId, rule.name, {
        pushAccessLevel: rule.pushAccessLevel,
        mergeAccessLevel: rule.mergeAccessLevel,
        allowForcePush: rule.allowForcePush,
      } as never),
    );
    return toProtectedBranch(raw);
  }

  async getLabel(projectId: number, name: string): Promise<Label | undefined> {
    const raw = await this.call("GET /projects/:id/labels", () =>
      this.api.ProjectLabels.all(projectId, { search: name, perPage: 100 }),
    );
    return (raw as unknown[]).map((l) => parse(labelSchema, l, "label")).find((l) => l.name === name);
  }

  async createLabel(projectId: number, label: { name: string; color: string; description: string }): Promise<Label> {
    const raw = await this.call("POST /projects/:id/labels", () =>
      this.api.ProjectLabels.create(projectId, label.name, label.color, { description: label.description }),
    );
    return parse(labelSchema, raw, "label");
  }

  async listHooks(projectId: number): Promise<ProjectHook[]> {
    const raw = await this.call("GET /projects/:id/hooks", () =>
      this.api.ProjectHooks.all(projectId, { perPage: 100 }),
    );
    return (raw as unknown[]).map(toHook);
  }

  async saveHook(projectId: number, hook: ProjectHookInput, hookId?: number): Promise<ProjectHook> {
    const options = {
      pushEvents: hook.pushEvents,
      mergeRequestsEvents: hook.mergeRequestsEvents,
      noteEvents: hook.noteEvents,
      pipelineEvents: hook.pipelineEvents,
      enableSslVerification: hook.enableSslVerification,
      ...(hook.confidentialNoteEvents !== undefined ? { confidentialNoteEvents: hook.confidentialNoteEvents } : {}),
      ...(hook.token !== undefined ? { token: hook.token } : {}),
      ...(hook.signingToken !== undefined ? { signingToken: hook.signingToken } : {}),
    };
    const raw =
      hookId === undefined
        ? await this.call("POST /projects/:id/hooks", () => this.api.ProjectHooks.add(projectId, hook.url, options))
        : await this.call("PUT /projects/:id/hooks/:hook_id", () =>
            this.api.ProjectHooks.edit(projectId, hookId, hook.url, options),
          );
    return toHook(raw);
  }

  // ---- merge gating ----

  async approveMergeRequest(
    projectId: number,
    iid: number,
    sha: string,
  ): Promise<"approved" | "already" | "headMoved"> {
    const route = "POST /projects/:id/merge_requests/:iid/approve";
    try {
      await this.api.MergeRequestApprovals.approve(projectId, iid, { sha });
      return "approved";
    } catch (error) {
      // `check_sha_param!`: the head moved; `unauthorized!` both for "approved already" and "may not approve".
      if (statusOf(error) === 409) return "headMoved";
      if (statusOf(error) !== 401) throw classifyGitLabError(error, route);
      const raw = await this.call("GET /projects/:id/merge_requests/:iid/approvals", () =>
        this.api.MergeRequestApprovals.showConfiguration(projectId, { mergerequestIId: iid }),
      );
      if ((raw as { user_has_approved?: unknown }).user_has_approved === true) return "already";
      throw classifyGitLabError(error, route);
    }
  }

  async unapproveMergeRequest(projectId: number, iid: number): Promise<boolean> {
    const done = await this.maybe("POST /projects/:id/merge_requests/:iid/unapprove", async () => {
      await this.api.MergeRequestApprovals.unapprove(projectId, iid);
      return true;
    });
    return done === true;
  }

  async respondToStatusCheck(
    projectId: number,
    iid: number,
    name: string,
    sha: string,
    status: "passed" | "failed",
  ): Promise<"answered" | "headMoved"> {
    const id = await this.statusCheckId(projectId, name);
    try {
      await this.api.ExternalStatusChecks.set(projectId, iid, sha, id, { status });
      return "answered";
    } catch (error) {
      if (statusOf(error) === 409) return "headMoved";
      // A check deleted since it was looked up: look it up again next time.
      if (statusOf(error) === 404) this.statusChecks.delete(`${projectId}:${name}`);
      throw classifyGitLabError(error, "POST /projects/:id/merge_requests/:iid/status_check_responses");
    }
  }

  /** The id of the project's status check `name`, looked up once (`GET .../external_status_checks`) and kept. */
  private async statusCheckId(projectId: number, name: string): Promise<number> {
    const key = `${projectId}:${name}`;
    const known = this.statusChecks.get(key);
    if (known !== undefined) return known;
    const check = (await this.listExternalStatusChecks(projectId))?.find((c) => c.name === name);
    if (!check) {
      throw new PermanentError(
        `project ${projectId} has no external status check named ${JSON.stringify(name)}`,
        "run `trusted-mr-bot setup --project <path>` to register it (GitLab Ultimate), or turn trust.external_status_check off",
      );
    }
    this.statusChecks.set(key, check.id);
    return check.id;
  }

  async listApprovalRules(projectId: number): Promise<ApprovalRule[] | undefined> {
    try {
      const raw = await this.api.MergeRequestApprovals.allApprovalRules(projectId);
      return (raw as unknown[]).map(toApprovalRule);
    } catch (error) {
      if (NOT_ON_THIS_TIER.has(statusOf(error) ?? 0)) return undefined;
      throw classifyGitLabError(error, "GET /projects/:id/approval_rules");
    }
  }

  async createApprovalRule(
    projectId: number,
    rule: { name: string; approvalsRequired: number; userIds: number[] },
  ): Promise<ApprovalRule> {
    const raw = await this.call("POST /projects/:id/approval_rules", () =>
      this.api.MergeRequestApprovals.createApprovalRule(projectId, rule.name, rule.approvalsRequired, {
        userIds: rule.userIds,
      } as never),
    );
    return toApprovalRule(raw);
  }

  async listExternalStatusChecks(projectId: number): Promise<ExternalStatusCheck[] | undefined> {
    try {
      const raw = await this.api.ExternalStatusChecks.all(projectId, { perPage: 100 });
      return (raw as unknown[]).map(toStatusCheck);
    } catch (error) {
      if (NOT_ON_THIS_TIER.has(statusOf(error) ?? 0)) return undefined;
      throw classifyGitLabError(error, "GET /projects/:id/external_status_checks");
    }
  }

  async createExternalStatusCheck(
    projectId: number,
    check: { name: string; externalUrl: string },
  ): Promise<ExternalStatusCheck> {
    const raw = await this.call("POST /projects/:id/external_status_checks", () =>
      this.api.ExternalStatusChecks.create(projectId, check.name, check.externalUrl),
    );
    return toStatusCheck(raw);
  }

  async instance(): Promise<GitLabInstance> {
    // `/metadata` says whether it is an EE build; before 15.2 only the deprecated `/version` exists.
    const raw =
      (await this.maybe("GET /metadata", () => this.api.Metadata.show())) ??
      (await this.call("GET /version", async () => (await this.api.Metadata.requester.get("version", {})).body));
    const m = parse(metadataSchema, raw, "metadata");
    return { version: m.version, revision: m.revision, enterprise: m.enterprise };
  }
}
