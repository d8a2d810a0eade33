/**
 * The work items that flow from the receiver to the worker, and the contract the worker calls into.
 *
 * Events are hints (STYLE.md, "level-triggered"): a reconcile job names an MR that needs a look, nothing more.
 * Only a comment carries information that GitLab does not keep as state (who asked for what, seeing which SHA),
 * so a command is its own job and is never coalesced away.
 */
import type { MergeRequest } from "../gitlab/port.js";
import type { Logger } from "../logger.js";

/** An MR, addressed in its target project (where the hooks fire and the trusted branch lives). */
export interface MrKey {
  projectId: number;
  mrIid: number;
}

export function mrKeyString(mr: MrKey): string {
  return `${mr.projectId}!${mr.mrIid}`;
}

/** Converge one MR. Coalesced: at most one waiting per MR (see `queue.ts`). */
export interface ReconcileJob extends MrKey {
  kind: "reconcile";
  /**
   * Why it was enqueued, for logs only: "Merge Request Hook:update", "sweep", "push:trusted-x", ... Coalescing keeps
   * the data of one job among many, so nothing may depend on it; what an event said goes into a durable hint.
   */
  reason: string;
  eventId?: string;
  /**
   * Enqueued only because a pipeline on the MR's trusted branch changed (workflow.ts `pipeline`): such jobs
   * coalesce only with each other (queue.ts), so a job that has it carries no MR event, and its pass may mirror
   * the pipeline against the MR as last read (observe.ts) instead of reading it again.
   */
  mirror?: boolean;
  /**
   * What the sweep's list pages said about an MR with no record (sweep.ts): such jobs too coalesce only with each
   * other, and their pass may start from this instead of reading the MR again while the record is still cold
   * (workflow.ts). Never a reason to believe a trusted branch is anywhere: see {@link ListedFacts}.
   */
  listed?: ListedFacts;
}

/**
 * What the sweep's list pages said about an MR a moment ago. `mr`: the MR as the open-MR list (or, for a branch the
 * sweep cleaned up, a single read) gave it. `branchSha`: its trusted branch's SHA per the list of trusted branches
 * (`null`: no such branch); it only ever confirms the note's record (observe.ts). `committerBranch`: whether the
 * source branch is protected, per the project's branch list (the `protected` a single branch read gives too:
 * GitLab's `ProtectedBranch.protected?`). `cleanedUp`: the sweep itself just deleted the trusted branch.
 */
export interface ListedFacts {
  mr: MergeRequest;
  branchSha?: string | null;
  committerBranch?: boolean;
  cleanedUp?: boolean;
}

/** How a reconcile is enqueued (`JobContext.enqueueReconcile`). */
export interface ReconcileOptions {
  /** See {@link ReconcileJob.mirror}. */
  mirror?: boolean;
  /** See {@link ReconcileJob.listed}. */
  listed?: ListedFacts;
}

/** A note on an MR that may carry a command. One job per note; never coalesced. */
export interface CommandJob extends MrKey {
  kind: "command";
  eventId?: string;
  noteId: number;
  noteUrl?: string;
  body: string;
  /** `create` or `update` (GitLab 16.11+; absent before, meaning create). */
  action: "create" | "update";
  system: boolean;
  author: { id: number; username: string };
  /** The MR head the commenter saw: `merge_request.last_commit.id` in the note payload. */
  seenSha?: string;
  /** MR state in the payload, for a quick refusal; the worker re-reads anyway. */
  mrState?: string;
  /** An internal note (`Confidential Note Hook`): the bot answers with internal notes too. */
  internal?: boolean;
}

/** A push to a branch of `projectId`: the worker finds the MRs it concerns and reconciles them. */
export interface PushJob {
  kind: "push";
  eventId?: string;
  projectId: number;
  branch: string;
  before: string;
  after: string;
  userId?: number;
  /**
   * The push may have changed the project's policy file (`.gitlab/trusted-mr-bot.yml`) on what the payload calls
   * the default branch: the worker reads the policy again, from the default branch the API names (policy.ts).
   */
  policyFile?: boolean;
}

/**
 * A pipeline on a trusted branch changed status. One job per event, never coalesced: the status it reports is
 * written as a durable hint for the MR (which survives the MR's reconciles being coalesced), then the MR's
 * reconcile is enqueued.
 */
export interface PipelineJob {
  kind: "pipeline";
  eventId?: string;
  projectId: number;
  pipelineId: number;
  ref: string;
  sha: string;
  status: string;
  /** The MR the pipeline was created for, when the payload names it (`TRUSTED_MR_IID`); else found from `ref`. */
  mrIid?: number;
}

/** One reconcile pass over every open MR with trust state and every trusted branch. */
export interface SweepJob {
  kind: "sweep";
  reason: string;
}

export type JobData = ReconcileJob | CommandJob | PushJob | PipelineJob | SweepJob;
export type MrJob = ReconcileJob | CommandJob;

export function isMrJob(job: JobData): job is MrJob {
  return job.kind === "reconcile" || job.kind === "command";
}

/** Context for a handler call. */
export interface JobContext {
  log: Logger;
  /** Enqueue reconciles for MRs found by a fan-out job (push, pipeline, sweep). */
  enqueueReconcile(mr: MrKey, reason: string, options?: ReconcileOptions): Promise<void>;
}

/**
 * What the worker calls. The trust workflow implements it; the worker owns locking, retries and shutdown.
 * MR jobs run while holding that MR's lock (at most one per MR across all worker processes).
 * Errors follow `src/errors.ts`: RateLimitedError / PermanentError / anything else = transient.
 */
export interface WorkflowHandlers {
  reconcile(job: ReconcileJob, ctx: JobContext): Promise<void>;
  command(job: CommandJob, ctx: JobContext): Promise<void>;
  /**
   * Optional, called before a command job takes its MR lock; `false` completes the job there. Only for what Redis
   * alone decides (a refused user's note flood, workflow.ts): it must not wait for the lock of the MR it floods.
   */
  screen?(job: CommandJob, ctx: JobContext): Promise<boolean>;
  /**
   * Optional: a command job failed for a transient reason for the `worker.attempts`-th time, and again at each
   * later failure (command jobs are retried until they succeed, queue.ts). Answers the commenter, at most once per
   * note, that the command is not carried out yet and will be; throws when the answer could not be posted, so the
   * next failure tries again.
   */
  commandDelayed?(job: CommandJob, error: unknown, ctx: JobContext): Promise<void>;
  /** Optional: a command job failed permanently (`PermanentError`, `ConfigError`); answers the commenter why. */
  commandFailed?(job: CommandJob, error: unknown, ctx: JobContext): Promise<void>;
  push(job: PushJob, ctx: JobContext): Promise<void>;
  pipeline(job: PipelineJob, ctx: JobContext): Promise<void>;
  sweep(job: SweepJob, ctx: JobContext): Promise<void>;
}
