/**
 * GitLab simulator: an in-memory GitLab served over real HTTP (`/api/v4`, the subset the bot uses) that sends
 * webhooks back. The bot talks to it through `@gitbeaker/rest` exactly as to GitLab. See `README.md` beside this file
 * for what it models, what it does not, and which behaviours are *inferred*.
 *
 * Layout: `state.ts` (records) · `permissions.ts` (GitLab's access rules) · `*-actions.ts` (what users and git do,
 * firing events) · `payloads.ts` / `entities.ts` (webhook and REST JSON) · `webhooks.ts` (delivery) · `faults.ts` ·
 * `http/` (Express shell, params, pagination) · `routes/` (one module per resource).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createPipeline,
  finishCanceling as endCanceling,
  setJobStatus as driveJob,
  setPipelineStatus as drivePipeline,
  setTestReportSummary as storeTestReport,
} from "./ci-actions.js";
import { FaultInjector } from "./faults.js";
import { createApiApp } from "./http/api-server.js";
import {
  addNote,
  closeMergeRequest as closeMr,
  editNote as changeNote,
  mergeMergeRequest as mergeMr,
  type OpenMergeRequestInput,
  openMergeRequest as openMr,
  reopenMergeRequest as reopenMr,
} from "./merge-request-actions.js";
import { isProtected } from "./permissions.js";
import { createBranch as addBranch, deleteBranch as removeBranch, push as pushCommit } from "./repository-actions.js";
import { allRoutes } from "./routes/index.js";
import { SimState, type ProjectRecord } from "./state.js";
import { WebhookDispatcher } from "./webhooks.js";
import type { World } from "./world.js";
import * as build from "./world-building.js";
import type { AddProjectInput } from "./world-building.js";
import type {
  Delivery,
  DeliveryLogEntry,
  DrivenStatus,
  Faults,
  PipelineSource,
  RequestLogEntry,
  SimAwardEmoji,
  SimBranch,
  SimCiJob,
  SimCommitStatus,
  SimGroup,
  SimHook,
  SimInstance,
  SimLabel,
  SimMergeRequest,
  SimNote,
  SimPipeline,
  SimApprovalRule,
  SimExternalStatusCheck,
  SimProject,
  SimStatusCheckResponse,
  SimTier,
  SimUser,
  TestReportSummaryInput,
  WebhookMode,
} from "./model.js";

export type { OpenMergeRequestInput } from "./merge-request-actions.js";
export type { AddProjectInput } from "./world-building.js";
export type {
  CommitStatusState,
  Delivery,
  DeliveryLogEntry,
  DrivenStatus,
  Faults,
  MergeRequestState,
  PipelineSource,
  PipelineStatus,
  RequestLogEntry,
  SimAwardEmoji,
  SimBranch,
  SimCiJob,
  SimCommit,
  SimCommitStatus,
  SimGroup,
  SimHook,
  SimInstance,
  SimJob,
  SimLabel,
  SimMergeRequest,
  SimNamespace,
  SimNote,
  SimPipeline,
  SimPipelineVariable,
  SimProject,
  SimProtectedBranchRule,
  SimTier,
  SimUser,
  TestReportSummaryInput,
  WebhookEvent,
  WebhookMode,
} from "./model.js";
export { AccessLevel, BLANK_SHA } from "./model.js";
export { SimError, type SimErrorKind } from "./sim-error.js";
export type { Visibility } from "./state.js";

export interface StartOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Sent as `X-Gitlab-Instance`; default the simulator's URL. */
  instanceName?: string;
  /** GitLab version for `User-Agent: GitLab/<version>`, `GET /metadata` and `GET /version`; default 19.0.0. */
  version?: string;
  /** `enterprise` in `GET /metadata` (an EE build); default false. */
  enterprise?: boolean;
  /** The EE license: `premium` enables approval rules, `ultimate` external status checks too; default `free`. */
  tier?: SimTier;
  /**
   * Whether hooks keep a `signing_token` and deliveries are signed (GitLab 19.0+ with the `webhook_signing_token`
   * flag on); default true. See {@link SimInstance}.
   */
  webhookSigning?: boolean;
  /** Whether `POST /api/graphql` is served; default true. See {@link GitLabSimulator.setGraphqlEnabled}. */
  graphql?: boolean;
}

export interface AddUserInput {
  username: string;
  name?: string;
  bot?: boolean;
}

export interface AddGroupInput {
  path: string;
  parentId?: number;
}

export type MemberTarget = { groupId: number } | { projectId: number };

export interface ProtectBranchInput {
  /** Exact name or wildcard such as `trusted-*`. */
  name: string;
  pushAccessLevel: number;
  mergeAccessLevel: number;
  allowedToPushUserIds?: number[];
  /** Premium "Allowed to merge" users; groups for either; deploy keys for push (listed, never used). */
  allowedToMergeUserIds?: number[];
  allowedToPushGroupIds?: number[];
  allowedToMergeGroupIds?: number[];
  allowedToPushDeployKeyIds?: number[];
  allowForcePush?: boolean;
}

export interface AddHookInput {
  url: string;
  token?: string;
  /** `whsec_<base64>`. */
  signingToken?: string;
  pushEvents?: boolean;
  mergeRequestsEvents?: boolean;
  noteEvents?: boolean;
  /** Internal notes (`Confidential Note Hook`). */
  confidentialNoteEvents?: boolean;
  pipelineEvents?: boolean;
}

export interface PushOptions {
  userId: number;
  message?: string;
  /** Create the branch from this commit (must exist in the project). Default: the default branch head. */
  fromSha?: string;
  /** Rewrite the branch: the new commit's parent is `fromSha` instead of the old head. Refused on protected branches unless `allowForcePush`. */
  force?: boolean;
  /** Files the commit writes, path to contents (`null` deletes the file); served by the repository files API. */
  files?: Readonly<Record<string, string | null>>;
}

export interface RunPipelineOptions {
  userId: number;
  source?: "web" | "push" | "trigger" | "schedule" | "api";
  variables?: Array<{ key: string; value: string }>;
}

export interface FailNextOptions {
  retryAfterSeconds?: number;
  /**
   * Only requests matching count: tested against `"METHOD /path"` (path below /api/v4, no query) and against the
   * route template `"METHOD /projects/:id/..."`; GraphQL requests are `"POST /api/graphql"` for both.
   */
  route?: RegExp;
  /** JSON `message` of the failure (default `"<status> <reason>"`), e.g. GitLab's 409 text for commit statuses. */
  message?: string;
}

function toSimProject(p: ProjectRecord): SimProject {
  const out: SimProject = {
    id: p.id,
    path: p.path,
    name: p.name,
    pathWithNamespace: p.pathWithNamespace,
    webUrl: p.webUrl,
    defaultBranch: p.defaultBranch,
    namespace: structuredClone(p.namespace),
    ciJobs: structuredClone(p.ciJobs),
    createdAt: p.createdAt,
    ...(p.forkedFromProjectId === undefined ? {} : { forkedFromProjectId: p.forkedFromProjectId }),
  };
  return out;
}

/**
 * An in-memory GitLab over real HTTP. Build the world with the synchronous `add*` methods, act as users with
 * `push`/`openMergeRequest`/`comment`/..., drive pipelines step by step, and inspect what the bot did through the
 * inspection methods and `requestLog`. Webhooks go out asynchronously; `await sim.idle()` waits for them.
 *
 * Actions throw `SimError` (with GitLab's status and message) when GitLab would refuse them.
 */
export class GitLabSimulator {
  /** `http://HOST:PORT`; give it to gitbeaker as `host`. The API is under `/api/v4`. */
  readonly url: string;

  /** Every webhook request sent (not held or dropped ones), oldest first. */
  readonly deliveryLog: DeliveryLogEntry[];

  /** Every `/api/v4` and `/api/graphql` request, oldest first, with its route template. */
  readonly requestLog: RequestLogEntry[] = [];

  private readonly state: SimState;
  private readonly dispatcher: WebhookDispatcher;
  private readonly faults = new FaultInjector();
  private readonly world: World;
  private graphqlOn: boolean;

  private constructor(
    private readonly server: Server,
    url: string,
    opts: StartOptions,
  ) {
    this.url = url;
    this.graphqlOn = opts.graphql ?? true;
    this.state = new SimState(url);
    this.setInstance({
      ...(opts.version === undefined ? {} : { version: opts.version }),
      ...(opts.enterprise === undefined ? {} : { enterprise: opts.enterprise }),
      ...(opts.tier === undefined ? {} : { tier: opts.tier }),
      ...(opts.webhookSigning === undefined ? {} : { webhookSigning: opts.webhookSigning }),
    });
    this.dispatcher = new WebhookDispatcher({
      state: this.state,
      instance: opts.instanceName ?? url,
      dropRate: () => this.faults.dropWebhookRate,
    });
    this.deliveryLog = this.dispatcher.log;
    this.world = { state: this.state, hooks: this.dispatcher };
    const app = createApiApp({
      world: this.world,
      dispatcher: this.dispatcher,
      faults: this.faults,
      requestLog: this.requestLog,
      routes: allRoutes(),
      graphqlEnabled: () => this.graphqlOn,
    });
    server.on("request", app);
  }

  /** Starts the HTTP server (port 0 = a free port). */
  static async start(opts: StartOptions = {}): Promise<GitLabSimulator> {
    const host = opts.host ?? "127.0.0.1";
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const urlHost = host.includes(":") ? `[${host}]` : host;
    return new GitLabSimulator(server, `http://${urlHost}:${port}`, opts);
  }

  /** Stops the server; queued webhook deliveries are dropped and in-flight ones aborted. */
  async stop(): Promise<void> {
    this.dispatcher.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** What happens to webhook deliveries: sent (`deliver`), kept for the test (`hold`), or silently lost (`drop`). */
  get webhookMode(): WebhookMode {
    return this.dispatcher.mode;
  }

  set webhookMode(mode: WebhookMode) {
    this.dispatcher.mode = mode;
  }

  /** The instance as `GET /metadata` describes it, and whether it signs webhooks. */
  get instance(): SimInstance {
    return { ...this.state.instance };
  }

  /** Changes the instance (version, edition, webhook signing), e.g. to play an older GitLab. */
  setInstance(i: Partial<SimInstance>): void {
    Object.assign(this.state.instance, i);
  }

  /** Whether `POST /api/graphql` is served. */
  get graphqlEnabled(): boolean {
    return this.graphqlOn;
  }

  /**
   * Turns the GraphQL endpoint off (or back on): off, `POST /api/graphql` answers `404 Not Found` (text/plain,
   * logged with route `UNKNOWN`), as a GitLab stand-in that only serves REST would, so a client's fallback to REST
   * can be tested.
   */
  setGraphqlEnabled(on: boolean): void {
    this.graphqlOn = on;
  }

  // ---- approvals and external status checks (approvals.ts) ----

  /** Ids of the users who approved the MR, in approval order. */
  approvals(projectId: number, iid: number): number[] {
    return [...(this.state.project(projectId).approvals.get(iid) ?? [])];
  }

  approvalRules(projectId: number): SimApprovalRule[] {
    return structuredClone(this.state.project(projectId).approvalRules);
  }

  externalStatusChecks(projectId: number): SimExternalStatusCheck[] {
    return structuredClone(this.state.project(projectId).externalStatusChecks);
  }

  /** Every status check response given for the MR, oldest first. */
  statusCheckResponses(projectId: number, iid: number): SimStatusCheckResponse[] {
    return structuredClone(this.state.project(projectId).statusCheckResponses.get(iid) ?? []);
  }

  // ---- world building (synchronous, no webhooks) ----

  addUser(u: AddUserInput): SimUser {
    return build.publicUser(build.addUser(this.state, u));
  }

  /**
   * Renames a user (a profile change: no webhook). The id stays and the old username is free again, so
   * `addUser` may give it to someone else: what a bot must not mistake for the original user.
   */
  renameUser(userId: number, username: string): SimUser {
    return build.publicUser(build.renameUser(this.state, userId, username));
  }

  addGroup(g: AddGroupInput): SimGroup {
    return build.publicGroup(build.addGroup(this.state, g));
  }

  /** Direct membership; group membership is inherited by subgroups and their projects (max level wins). */
  addMember(target: MemberTarget, userId: number, accessLevel: number): void {
    build.addMember(this.state, target, userId, accessLevel);
  }

  /** Creates a project with its default branch holding one initial commit. */
  addProject(p: AddProjectInput): SimProject {
    return toSimProject(build.addProject(this.state, p));
  }

  /** Forks a project (`forked_from_project`), copying its branches and commits; the owner owns the fork. */
  fork(projectId: number, o: { ownerId: number; path: string }): SimProject {
    return toSimProject(build.fork(this.state, projectId, o));
  }

  /**
   * Deletes a project as `DELETE /projects/:id` does once GitLab's destroy worker ran (no permission check): MRs
   * from it into other projects stay, with `source_project_id` null; its forks stay, unlinked. No webhook fires.
   */
  deleteProject(projectId: number): void {
    build.deleteProject(this.state, projectId);
  }

  /**
   * Sets (or, with `undefined`, removes) the project's `workflow: rules`: a pipeline they reject is not created, a
   * push starts none and `POST /projects/:id/pipeline` answers 400 "Pipeline filtered out by workflow rules.".
   */
  setWorkflowRules(
    projectId: number,
    rules: ((pipeline: { ref: string; source: PipelineSource }) => boolean) | undefined,
  ): void {
    this.state.project(projectId).workflowRules = rules;
  }

  /**
   * Whether the project's CI config runs merge request pipelines (as a `.gitlab-ci.yml` commit with `rules: - if:
   * $CI_PIPELINE_SOURCE == "merge_request_event"` would): same-project MRs then get one when opened and on every push.
   */
  setMergeRequestPipelines(projectId: number, on: boolean): void {
    this.state.project(projectId).mergeRequestPipelines = on;
  }

  /**
   * Replaces the project's CI jobs, as a commit to `.gitlab-ci.yml` would: pipelines created from now on get them
   * (a `trigger` job is a bridge). Existing pipelines keep theirs.
   */
  setCiJobs(projectId: number, jobs: SimCiJob[]): void {
    this.state.project(projectId).ciJobs = structuredClone(jobs);
  }

  protectBranch(projectId: number, r: ProtectBranchInput): void {
    build.protectBranch(this.state, projectId, r);
  }

  /** Registers a project webhook; returns its id. `pushEvents` defaults to true (as in GitLab), the others to false. */
  addHook(projectId: number, h: AddHookInput): number {
    return build.addHook(this.state, projectId, h).id;
  }

  // ---- git-like and user actions (permission-checked; fire webhooks) ----

  /**
   * Pushes one new commit to `branch` (creating the branch if needed). Fires a Push Hook; updates every open MR
   * whose source is this branch (`refs/merge-requests/:iid/head` in the target, MR Hook `update` with `oldrev`
   * on the target project); starts a `push` pipeline unless the project's `pipelineOnPush` says otherwise.
   * Throws `SimError` (400, GitLab's pre-receive message) if the user may not push there.
   */
  push(projectId: number, branch: string, o: PushOptions): { before: string; after: string } {
    return this.act(() => pushCommit(this.world, this.state.project(projectId), branch, o));
  }

  /**
   * Creates `branch` at `ref` (a branch, MR ref or sha) as `POST /projects/:id/repository/branches` does
   * (`Branches::CreateService`): no new commit; fires a Push Hook and may start a push pipeline. Throws `SimError`
   * (400, GitLab's message) when the name is taken or invalid or the user may not create it.
   */
  createBranch(projectId: number, branch: string, ref: string, o: { userId: number }): void {
    this.act(() => addBranch(this.world, this.state.project(projectId), o.userId, branch, ref));
  }

  /** Deletes a branch; fires a Push Hook with `after` = 40 zeros. Protected branches need Maintainer. */
  deleteBranch(projectId: number, branch: string, o: { userId: number }): void {
    this.act(() => removeBranch(this.world, this.state.project(projectId), branch, o.userId));
  }

  /** Opens an MR (in the target project) and fires MR Hook `open` there. */
  openMergeRequest(m: OpenMergeRequestInput): SimMergeRequest {
    return structuredClone(this.act(() => openMr(this.world, m)));
  }

  /**
   * Adds a note to an MR; fires Note Hook `create`. A system note (`{ system: true }`) fires no hook, as in GitLab
   * (`Notes::PostProcessService` skips hooks for system notes). An internal note (`{ internal: true }`, kept only
   * when the author is a Planner, Reporter or more) fires `Confidential Note Hook` to hooks with
   * `confidentialNoteEvents` instead.
   */
  comment(
    projectId: number,
    iid: number,
    userId: number,
    body: string,
    o?: { system?: boolean; internal?: boolean },
  ): SimNote {
    const note = this.act(() => addNote(this.world, this.state.mergeRequest(projectId, iid), userId, body, o));
    return toSimNote(note);
  }

  /** Edits a note (author only, else 403); fires Note Hook `update`. */
  editNote(projectId: number, iid: number, noteId: number, userId: number, body: string): void {
    this.act(() => {
      const mr = this.state.mergeRequest(projectId, iid);
      changeNote(this.world, mr, this.state.note(projectId, iid, noteId), userId, body);
    });
  }

  /** Merges: the target branch moves to a merge commit (Push Hook, push pipeline), then MR Hook `merge`. */
  mergeMergeRequest(projectId: number, iid: number, userId: number): void {
    this.act(() => mergeMr(this.world, this.state.mergeRequest(projectId, iid), userId));
  }

  closeMergeRequest(projectId: number, iid: number, userId: number): void {
    this.act(() => closeMr(this.world, this.state.mergeRequest(projectId, iid), userId));
  }

  reopenMergeRequest(projectId: number, iid: number, userId: number): void {
    this.act(() => reopenMr(this.world, this.state.mergeRequest(projectId, iid), userId));
  }

  /**
   * Creates a pipeline (status `created`) with the project's CI jobs, as a user would from the UI, a trigger or a
   * schedule; same permission rules as the API. Fires a Pipeline Hook.
   */
  runPipeline(projectId: number, ref: string, o: RunPipelineOptions): SimPipeline {
    const pipeline = this.act(() =>
      createPipeline(this.world, this.state.project(projectId), {
        ref,
        userId: o.userId,
        source: o.source ?? "web",
        variables: o.variables ?? [],
      }),
    );
    return structuredClone(pipeline);
  }

  // ---- pipelines, driven step by step ----

  /** Sets the pipeline status and moves its jobs along; fires a Pipeline Hook when the status changes. */
  setPipelineStatus(projectId: number, pipelineId: number, status: DrivenStatus): void {
    this.act(() => drivePipeline(this.world, this.state.pipeline(projectId, pipelineId), status));
  }

  /** Cancelling leaves running jobs `canceling` until {@link finishCanceling} (see `SimState.gracefulCancel`). */
  set gracefulCancel(on: boolean) {
    this.state.gracefulCancel = on;
  }

  /** The runner reports the `canceling` jobs of a pipeline as ended; fires a Pipeline Hook (`canceled`). */
  finishCanceling(projectId: number, pipelineId: number): void {
    this.act(() => endCanceling(this.world, this.state.pipeline(projectId, pipelineId)));
  }

  /** Sets one job's status; the pipeline status follows like GitLab's `Ci::Status::Composite`. */
  setJobStatus(projectId: number, pipelineId: number, jobName: string, status: DrivenStatus): void {
    this.act(() => driveJob(this.world, this.state.pipeline(projectId, pipelineId), jobName, status));
  }

  setTestReportSummary(projectId: number, pipelineId: number, s: TestReportSummaryInput): void {
    storeTestReport(this.state.pipeline(projectId, pipelineId), s);
  }

  // ---- webhooks ----

  heldDeliveries(): Delivery[] {
    return this.dispatcher.heldDeliveries();
  }

  takeHeldDeliveries(): Delivery[] {
    return this.dispatcher.takeHeldDeliveries();
  }

  /**
   * Re-sends like GitLab's "Resend request": same `Idempotency-Key`, new `X-Gitlab-Webhook-UUID`, fresh
   * `webhook-timestamp`/`webhook-signature`. Rejects on a network error or timeout.
   */
  redeliver(d: Delivery): Promise<{ status: number; body: string }> {
    return this.dispatcher.redeliver(d);
  }

  /** Resolves when no delivery is queued or in flight. */
  idle(): Promise<void> {
    return this.dispatcher.idle();
  }

  // ---- faults (applied to /api/v4 and /api/graphql requests; not to webhooks) ----

  /** Merges `f` into the current faults. */
  setFaults(f: Faults): void {
    this.faults.set(f);
  }

  /** Removes all faults, `failNext` ones included. */
  clearFaults(): void {
    this.faults.clear();
  }

  /** The next `n` API requests (matching `o.route`, if given) are answered with `status`. */
  failNext(n: number, status: number, o?: FailNextOptions): void {
    this.faults.failNext(n, status, o);
  }

  clearRequestLog(): void {
    this.requestLog.length = 0;
  }

  // ---- inspection (copies) ----

  project(id: number): SimProject {
    return toSimProject(this.state.project(id));
  }

  /** The branch, or undefined when it does not exist. */
  branch(projectId: number, name: string): SimBranch | undefined {
    const project = this.state.project(projectId);
    const sha = project.branches.get(name);
    return sha === undefined ? undefined : { name, sha, protected: isProtected(project, name) };
  }

  /** Every branch of the project, by name. */
  branches(projectId: number): SimBranch[] {
    const project = this.state.project(projectId);
    return [...project.branches.keys()].sort().map((name) => this.branch(projectId, name) as SimBranch);
  }

  mergeRequest(projectId: number, iid: number): SimMergeRequest {
    return structuredClone(this.state.mergeRequest(projectId, iid));
  }

  /** Notes of an MR, oldest first. */
  notes(projectId: number, iid: number): SimNote[] {
    return this.state.notesOf(projectId, iid).map(toSimNote);
  }

  awardEmoji(projectId: number, iid: number, noteId: number): SimAwardEmoji[] {
    return structuredClone(this.state.note(projectId, iid, noteId).awards);
  }

  /** External commit statuses (those posted through `POST /statuses/:sha`) for a sha, oldest first, retried included. */
  statuses(projectId: number, sha: string): SimCommitStatus[] {
    return this.state
      .project(projectId)
      .commitStatuses.filter((s) => s.sha === sha)
      .map(({ retried: _retried, ...s }) => structuredClone(s));
  }

  /** Pipelines of a project, oldest first. */
  pipelines(projectId: number): SimPipeline[] {
    return structuredClone(this.state.project(projectId).pipelines);
  }

  pipeline(projectId: number, id: number): SimPipeline {
    return structuredClone(this.state.pipeline(projectId, id));
  }

  labels(projectId: number): SimLabel[] {
    return structuredClone(this.state.project(projectId).labels);
  }

  hooks(projectId: number): SimHook[] {
    return structuredClone(this.state.project(projectId).hooks);
  }

  /** Runs a user action with one `X-Gitlab-Event-UUID` for the hooks it fires. */
  private act<T>(fn: () => T): T {
    return this.dispatcher.withEventScope(fn);
  }
}

function toSimNote(n: { awards: unknown } & SimNote): SimNote {
  const { awards: _awards, ...note } = n;
  return structuredClone(note);
}
