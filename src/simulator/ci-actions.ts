/**
 * Pipelines, jobs and external commit statuses. Every pipeline status change fires a Pipeline Hook, like
 * `Ci::Pipeline`'s `after_transition` → `PipelineHooksWorker`.
 */
import { branchNamesContaining, resolveRef } from "./git.js";
import {
  BLANK_SHA,
  type CommitStatusState,
  type DrivenStatus,
  type PipelineSource,
  type PipelineStatus,
  type TestReportSummaryInput,
} from "./model.js";
import { pipelinePayload } from "./payloads.js";
import { canPushCode, canUpdateBranch, isProtected } from "./permissions.js";
import { COMMIT_STATUS_EVENTS, compositeStatus, isCompleted } from "./pipeline-status.js";
import { FORBIDDEN, SimError } from "./sim-error.js";
import type { CommitStatusRecord, JobRecord, MergeRequestRecord, PipelineRecord, ProjectRecord } from "./state.js";
import { nowIso, type World } from "./world.js";

/** `Ci::HasStatus::CANCELABLE_STATUSES` */
const CANCELABLE: readonly PipelineStatus[] = [
  "running",
  "waiting_for_resource",
  "preparing",
  "pending",
  "created",
  "scheduled",
];

function emitPipeline(world: World, pipeline: PipelineRecord): void {
  world.hooks.emit(pipeline.projectId, "pipeline", pipelinePayload(world.state, pipeline));
}

function stamp(target: { status: PipelineStatus; startedAt: string | null; finishedAt: string | null }): void {
  const now = nowIso();
  if (target.status === "running" && target.startedAt === null) target.startedAt = now;
  if (isCompleted(target.status)) {
    target.finishedAt = now;
  } else {
    target.finishedAt = null;
    if (target.status === "created" || target.status === "pending") target.startedAt = null;
  }
}

function latestJobs(pipeline: PipelineRecord): JobRecord[] {
  return pipeline.jobs.filter((j) => !j.retried);
}

function latestStatuses(world: World, pipeline: PipelineRecord): CommitStatusRecord[] {
  return world.state
    .project(pipeline.projectId)
    .commitStatuses.filter((s) => s.pipelineId === pipeline.id && !s.retried);
}

/** Sets a pipeline's status, stamps it, and fires the hook when it changed. */
function transitionPipeline(world: World, pipeline: PipelineRecord, status: PipelineStatus): void {
  if (pipeline.status === status) return;
  pipeline.status = status;
  pipeline.updatedAt = nowIso();
  stamp(pipeline);
  emitPipeline(world, pipeline);
}

/** Re-derives the pipeline status from its latest jobs and external statuses (`Ci::ProcessPipelineService`). */
export function refreshPipelineStatus(world: World, pipeline: PipelineRecord): void {
  const members = [
    ...latestJobs(pipeline).map((j) => ({ status: j.status, allowFailure: j.allowFailure })),
    ...latestStatuses(world, pipeline).map((s) => ({
      status: s.status as PipelineStatus,
      allowFailure: s.allowFailure,
    })),
  ];
  const derived = compositeStatus(members);
  if (derived !== undefined) transitionPipeline(world, pipeline, derived);
}

export interface CreatePipelineInput {
  ref: string;
  userId: number;
  source: PipelineSource;
  variables?: ReadonlyArray<{ key: string; value: string; variableType?: "env_var" | "file" }>;
  beforeSha?: string;
  /** Skip the permission checks (the push that causes a push pipeline was already checked). */
  trusted?: boolean;
}

/**
 * `Ci::CreatePipelineService` for a branch: permission chain (`Gitlab::Ci::Pipeline::Chain::Validate::Abilities`),
 * ref existence, jobs from the project's CI config. Errors are the service's messages, which the API renders with
 * `render_validation_error!` as `{"message": {"base": [...]}}` (400).
 */
export function createPipeline(world: World, project: ProjectRecord, input: CreatePipelineInput): PipelineRecord {
  const { state } = world;
  const refusal = (msg: string) => new SimError("bad_request", { base: [msg] });
  if (!input.trusted) {
    if (!canPushCode(state, input.userId, project)) throw refusal("Insufficient permissions to create a new pipeline");
    if (project.branches.has(input.ref) && !canUpdateBranch(state, input.userId, project, input.ref)) {
      throw refusal(`Insufficient permissions for protected ref '${input.ref}'`);
    }
  }
  const sha = project.branches.get(input.ref);
  if (sha === undefined) throw refusal("Reference not found");
  // `Gitlab::Ci::Pipeline::Chain::EvaluateWorkflowRules` (lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb),
  // after the permission and ref checks of the chain, before the jobs are seeded.
  if (project.workflowRules && !project.workflowRules({ ref: input.ref, source: input.source })) {
    throw refusal("Pipeline filtered out by workflow rules.");
  }
  if (project.ciJobs.length === 0) throw refusal("No stages / jobs for this pipeline.");
  const now = nowIso();
  const pipeline = addPipelineRecord(world, project, {
    ref: input.ref,
    sha,
    beforeSha: input.beforeSha ?? BLANK_SHA,
    source: input.source,
    userId: input.userId,
    variables: (input.variables ?? []).map((v) => ({
      key: v.key,
      value: v.value,
      variableType: v.variableType ?? "env_var",
    })),
    jobs: seedJobs(world, project, input.userId, now),
  });
  emitPipeline(world, pipeline);
  return pipeline;
}

/** The jobs of a new pipeline, from the project's CI config (`ciJobs`). */
function seedJobs(world: World, project: ProjectRecord, userId: number, now: string): JobRecord[] {
  return project.ciJobs.map((j) =>
    newJob(
      world,
      { name: j.name, stage: j.stage, allowFailure: j.allowFailure ?? false, trigger: j.trigger ?? null },
      userId,
      now,
    ),
  );
}

/** A job record as `Ci::CreatePipelineService` or a retry makes it: `created`, not started, by `userId`. */
function newJob(
  world: World,
  j: Pick<JobRecord, "name" | "stage" | "allowFailure" | "trigger">,
  userId: number,
  now: string,
): JobRecord {
  return {
    id: world.state.nextId("build"),
    name: j.name,
    stage: j.stage,
    status: "created",
    allowFailure: j.allowFailure,
    userId,
    createdAt: now,
    startedAt: null,
    finishedAt: null,
    retried: false,
    failureReason: null,
    trigger: j.trigger,
  };
}

/**
 * A merge request pipeline (`MergeRequests::CreatePipelineService` -> `Ci::CreatePipelineService` with `source:
 * :merge_request_event`): it runs for the MR's head on `refs/merge-requests/:iid/head` in the target project, and
 * `head-pipeline.ts` picks it before any branch pipeline. Same-project MRs only: a fork MR's pipelines run in the
 * fork unless a maintainer runs them in the parent (`allow_fork_pipelines_to_run_in_parent_project`), not modelled.
 * `userId` is checked like any pipeline's creator unless `trusted` (a push already was).
 */
export function createMergeRequestPipeline(
  world: World,
  mr: MergeRequestRecord,
  userId: number,
  o: { trusted?: boolean } = {},
): PipelineRecord {
  const project = world.state.project(mr.targetProjectId);
  const refusal = (msg: string) => new SimError("bad_request", { base: [msg] });
  if (mr.sourceProjectId !== project.id) {
    throw refusal("Merge request pipelines for fork merge requests are not modelled by the simulator");
  }
  if (!o.trusted && !canPushCode(world.state, userId, project)) {
    throw refusal("Insufficient permissions to create a new pipeline");
  }
  const ref = `refs/merge-requests/${mr.iid}/head`;
  if (project.workflowRules && !project.workflowRules({ ref, source: "merge_request_event" })) {
    throw refusal("Pipeline filtered out by workflow rules.");
  }
  if (project.ciJobs.length === 0) throw refusal("No stages / jobs for this pipeline.");
  const pipeline = addPipelineRecord(world, project, {
    ref,
    sha: mr.sha,
    beforeSha: BLANK_SHA,
    source: "merge_request_event",
    userId,
    variables: [],
    jobs: seedJobs(world, project, userId, nowIso()),
  });
  pipeline.mergeRequestIid = mr.iid;
  emitPipeline(world, pipeline);
  return pipeline;
}

function stageOrder(pipeline: PipelineRecord): string[] {
  return [...new Set(pipeline.jobs.map((j) => j.stage))];
}

function setJob(job: JobRecord, status: PipelineStatus): void {
  if (job.status === status) return;
  job.status = status;
  job.failureReason = status === "failed" ? "script_failure" : null;
  stamp(job);
}

/**
 * Drives a pipeline to `status`, moving its jobs the way GitLab would have got there: `running` runs the first
 * unfinished stage; `failed` fails the first unfinished job and skips later stages; `success` passes everything;
 * `canceled` cancels whatever has not finished.
 */
export function setPipelineStatus(world: World, pipeline: PipelineRecord, status: DrivenStatus): void {
  const jobs = latestJobs(pipeline);
  const unfinished = jobs.filter((j) => !isCompleted(j.status));
  const stages = stageOrder(pipeline);
  switch (status) {
    case "created":
    case "pending":
      for (const j of jobs) setJob(j, status);
      break;
    case "running": {
      const firstStage = stages.find((s) => unfinished.some((j) => j.stage === s));
      for (const j of unfinished) setJob(j, j.stage === firstStage ? "running" : "created");
      break;
    }
    case "success":
      for (const j of jobs) setJob(j, "success");
      break;
    case "failed": {
      const failedAlready = jobs.find((j) => j.status === "failed" && !j.allowFailure);
      const victim = failedAlready ?? unfinished[0] ?? jobs[jobs.length - 1];
      if (victim) setJob(victim, "failed");
      const victimStage = victim ? stages.indexOf(victim.stage) : -1;
      for (const j of unfinished) {
        if (j === victim) continue;
        setJob(j, stages.indexOf(j.stage) > victimStage ? "skipped" : "failed");
      }
      break;
    }
    case "canceled":
      for (const j of unfinished.length > 0 ? unfinished : jobs) setJob(j, "canceled");
      break;
  }
  pipeline.jobs.sort((a, b) => a.id - b.id);
  // External commit statuses in the pipeline count too (`Ci::Status::Composite` over all latest statuses): a bot's
  // pending status keeps a pipeline whose jobs all passed from succeeding.
  if (latestStatuses(world, pipeline).length > 0) refreshPipelineStatus(world, pipeline);
  else transitionPipeline(world, pipeline, status);
}

export function setJobStatus(world: World, pipeline: PipelineRecord, jobName: string, status: DrivenStatus): void {
  const job = latestJobs(pipeline).find((j) => j.name === jobName);
  if (!job) throw new SimError("not_found", `404 Job ${jobName} Not Found`);
  setJob(job, status);
  refreshPipelineStatus(world, pipeline);
}

/** `Ci::CancelPipelineService`: cancels cancelable jobs; the pipeline status follows. */
export function cancelPipeline(world: World, pipeline: PipelineRecord): void {
  const cancelable = latestJobs(pipeline).filter((j) => CANCELABLE.includes(j.status));
  const graceful = world.state.gracefulCancel;
  for (const j of cancelable) setJob(j, graceful && j.status === "running" ? "canceling" : "canceled");
  if (pipeline.jobs.length === 0 && CANCELABLE.includes(pipeline.status)) {
    transitionPipeline(world, pipeline, "canceled");
    return;
  }
  if (latestJobs(pipeline).some((j) => j.status === "canceling")) {
    transitionPipeline(world, pipeline, "canceling");
    return;
  }
  refreshPipelineStatus(world, pipeline);
}

/** The runner reports its `canceling` jobs as ended: they are canceled, and the pipeline status follows. */
export function finishCanceling(world: World, pipeline: PipelineRecord): void {
  for (const j of latestJobs(pipeline)) if (j.status === "canceling") setJob(j, "canceled");
  refreshPipelineStatus(world, pipeline);
}

/**
 * `Ci::RetryPipelineService`: every latest failed or canceled job is replaced by a new job (the old one is marked
 * retried), skipped jobs are reset to created, and the pipeline is processed again: new jobs whose earlier stages
 * all passed are pending, the rest wait as created.
 */
export function retryPipeline(world: World, pipeline: PipelineRecord, userId: number): void {
  const stages = stageOrder(pipeline);
  const now = nowIso();
  for (const old of latestJobs(pipeline)) {
    if (old.status === "skipped") {
      setJob(old, "created");
      continue;
    }
    if (old.status !== "failed" && old.status !== "canceled") continue;
    old.retried = true;
    pipeline.jobs.push(newJob(world, old, userId, now));
  }
  const latest = latestJobs(pipeline);
  for (const j of latest) {
    if (j.status !== "created") continue;
    const before = latest.filter((o) => stages.indexOf(o.stage) < stages.indexOf(j.stage));
    if (before.every((o) => o.status === "success" || o.allowFailure)) setJob(j, "pending");
  }
  refreshPipelineStatus(world, pipeline);
}

export function setTestReportSummary(pipeline: PipelineRecord, s: TestReportSummaryInput): void {
  pipeline.testReport = structuredClone(s);
}

export interface CommitStatusInput {
  sha: string;
  state: string | undefined;
  ref?: string;
  name?: string;
  targetUrl?: string;
  description?: string;
  coverage?: number;
  pipelineId?: number;
}

const STATES = Object.keys(COMMIT_STATUS_EVENTS);

/**
 * `POST /projects/:id/statuses/:sha` (`Ci::CreateCommitStatusService`): attaches to the newest pipeline for the sha
 * (and `ref`, `pipeline_id` when given) or creates an `external` one; updates the caller's running/pending status
 * of that name and ref, or creates a new one (a finished status is never updated: posting again creates a new
 * status and marks the older one retried). A disallowed transition (same state twice while pending/running) is a
 * 400 with the state machine's message.
 */
export function createCommitStatus(
  world: World,
  project: ProjectRecord,
  userId: number,
  input: CommitStatusInput,
): CommitStatusRecord {
  const { state } = world;
  const sha = resolveRef(project, input.sha);
  if (sha === undefined) throw new SimError("not_found", "404 Commit Not Found");
  if (!input.state) throw new SimError("bad_request", "State is required");
  if (!STATES.includes(input.state))
    throw new SimError("bad_request", { error: ["state does not have a valid value"] });
  const requested = input.state as CommitStatusState;
  const name = input.name ?? "default";

  const candidates = project.pipelines
    .filter((p) => p.sha === sha && (input.ref === undefined || p.ref === input.ref))
    .filter((p) => input.pipelineId === undefined || p.id === input.pipelineId)
    .sort((a, b) => b.id - a.id);
  let pipeline = candidates[0];
  if (input.pipelineId !== undefined && !pipeline) {
    throw new SimError("not_found", "404 Pipeline for pipeline_id, sha and ref Not Found");
  }
  const ref = input.ref ?? pipeline?.ref ?? branchNamesContaining(project, sha)[0];
  if (ref === undefined) throw new SimError("not_found", "404 References for commit Not Found");
  if (input.description !== undefined && input.description.length > 255) {
    // *inferred*: GitLab documents "255 characters or fewer"; modelled as a validation error, not truncation.
    throw new SimError("bad_request", { description: ["is too long (maximum is 255 characters)"] });
  }

  if (!pipeline) pipeline = createExternalPipeline(world, project, { sha, ref, userId });
  // The service checks `update_pipeline` after finding or creating the pipeline, so a refused caller still leaves
  // an empty external pipeline behind (spec: "does not create commit status" but changes Ci::Pipeline.count by 1).
  if (!canUpdateBranch(state, userId, project, ref)) {
    throw new SimError("forbidden", FORBIDDEN);
  }

  const pipelineId = pipeline.id;
  const existing = project.commitStatuses.find(
    (s) =>
      s.pipelineId === pipelineId &&
      !s.retried &&
      (s.status === "running" || s.status === "pending") &&
      s.ref === ref &&
      s.name === name &&
      s.authorId === userId,
  );
  const now = nowIso();
  const status: CommitStatusRecord = existing ?? {
    id: state.nextId("build"),
    projectId: project.id,
    sha,
    ref,
    name,
    status: "created",
    targetUrl: null,
    description: null,
    pipelineId,
    authorId: userId,
    allowFailure: false,
    coverage: null,
    createdAt: now,
    startedAt: null,
    finishedAt: null,
    retried: false,
  };
  let current = status.status as PipelineStatus;
  if (requested === "running" && COMMIT_STATUS_EVENTS.pending.from.includes(current)) current = "pending";
  const { event, from } = COMMIT_STATUS_EVENTS[requested];
  if (!from.includes(current)) {
    throw new SimError(
      "bad_request",
      `Cannot transition status via :${event} from :${status.status} (Reason(s): Status cannot transition via "${event}")`,
    );
  }
  if (input.targetUrl !== undefined) status.targetUrl = input.targetUrl;
  if (input.description !== undefined) status.description = input.description;
  if (input.coverage !== undefined) status.coverage = input.coverage;
  status.status = requested;
  stamp(status);
  if (!existing) {
    // `CommitStatus#update_older_statuses_retried!`
    for (const s of project.commitStatuses) {
      if (s.pipelineId === pipelineId && s.name === name && s.ref === ref) s.retried = true;
    }
    project.commitStatuses.push(status);
  }
  refreshPipelineStatus(world, pipeline);
  return status;
}

function createExternalPipeline(
  world: World,
  project: ProjectRecord,
  o: { sha: string; ref: string; userId: number },
): PipelineRecord {
  return addPipelineRecord(world, project, {
    ref: o.ref,
    sha: o.sha,
    beforeSha: BLANK_SHA,
    source: "external",
    userId: o.userId,
    variables: [],
    jobs: [],
  });
}

/** A new pipeline in `created` with the given origin and jobs, stored on the project (no webhook). */
function addPipelineRecord(
  world: World,
  project: ProjectRecord,
  p: Pick<PipelineRecord, "ref" | "sha" | "beforeSha" | "source" | "userId" | "variables" | "jobs">,
): PipelineRecord {
  const now = nowIso();
  const id = world.state.nextId("pipeline");
  const pipeline: PipelineRecord = {
    ...p,
    id,
    iid: project.nextPipelineIid++,
    projectId: project.id,
    tag: false,
    status: "created",
    protectedRef: isProtected(project, p.ref),
    testReport: null,
    mergeRequestIid: null,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    webUrl: `${project.webUrl}/-/pipelines/${id}`,
  };
  project.pipelines.push(pipeline);
  return pipeline;
}
