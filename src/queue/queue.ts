/**
 * The one BullMQ queue between receiver and worker, and how each kind of job is added to it.
 *
 * Coalescing (STYLE.md 3, "level-triggered"): a reconcile job only says "look at this MR", so a burst of MR events
 * needs one run, not one per event. BullMQ's deduplication (https://docs.bullmq.io/guide/jobs/deduplication) with
 * `keepLastIfActive` (`DeduplicationOptions` in bullmq's types) gives exactly that without ever dropping
 * an event that arrives mid-run; verified in bullmq 6.7's Lua (`includes/deduplicateJob.lua`,
 * `storeDeduplicatedNextJob.lua`, `requeueDeduplicatedJob.lua`):
 * - while the MR's reconcile job waits or is delayed (also when it was moved back to delayed for a retry or
 *   because the MR lock was taken), a new one is folded into it: the pending job reads GitLab afresh when it
 *   runs (if it then fails for good, the periodic sweep is what looks at the MR again);
 * - while it is active, the new one is stored aside (`dn:<id>`, latest wins) and added when the active one
 *   completes or fails for good, so a change made during a run always gets a run after it.
 * A plain custom jobId would instead silently drop a job whose id still exists (active, or kept after completion).
 *
 * Commands are not coalesced: each note is its own job, with a jobId derived from the note so a re-delivered note
 * is not queued twice while its job is kept. Nor are they given up for a transient failure: GitLab keeps no trace
 * of what a comment asked, so its job is the only copy ({@link COMMAND_ATTEMPTS}).
 */
import { type JobsOptions, Queue } from "bullmq";
import type { Config } from "../config/config.js";
import type { Redis } from "../redis.js";
import { type JobData, type MrKey, mrKeyString, type ReconcileJob, type ReconcileOptions } from "./jobs.js";

export const QUEUE_NAME = "trusted-mr-bot";

/** Job name = `JobData["kind"]`. */
export type BotQueue = Queue<JobData, void, JobData["kind"]>;

/** Name of the custom backoff strategy the worker registers (`settings.backoffStrategy`). */
export const BACKOFF_TYPE = "trusted-mr-bot";

/** Job scheduler id of the periodic sweep; one scheduler however many processes upsert it. */
export const SWEEP_SCHEDULER_ID = "sweep";

/**
 * Completed jobs are kept a day (up to 10 000) so a command's jobId stays taken and a re-delivered note cannot
 * queue it again; the delivery key covers longer. BullMQ trims the completed set with the options of whichever
 * job completes, so these must be the same for every kind.
 */
const KEEP_COMPLETED = { age: 24 * 3600, count: 10_000 };
/** Failed jobs are kept a week for inspection (`hint` in the log says what to fix). */
const KEEP_FAILED = { age: 7 * 24 * 3600, count: 10_000 };

/**
 * Attempts of a command job: as many as it takes. At `worker.backoff_max_ms` apart (5 minutes by default) this is
 * years; `worker.attempts` is instead when the worker tells the commenter that the command waits (worker.ts). A
 * permanent failure still ends the job at once.
 */
export const COMMAND_ATTEMPTS = 1_000_000;

/**
 * BullMQ priorities (lower runs first). A command never waits behind a backlog of reconciles or a sweep: someone
 * is waiting for its answer, while a reconcile only looks again at an MR. Every kind gets a priority, because BullMQ
 * takes jobs without one (its `wait` list) before any prioritized job (`moveToActive.lua`: `RPOPLPUSH` from wait,
 * then `ZPOPMIN` from prioritized). Deduplication and `keepLastIfActive` work the same for prioritized jobs
 * (`storeAndEnqueueJob` re-adds the stored job with its options). Pipeline and push jobs only record a hint.
 */
export const JOB_PRIORITY: Record<JobData["kind"], number> = {
  command: 1,
  pipeline: 2,
  push: 2,
  reconcile: 3,
  sweep: 4,
};

export function createQueue(connection: Redis, config: Pick<Config, "redis">): BotQueue {
  return new Queue<JobData, void, JobData["kind"]>(QUEUE_NAME, { connection, prefix: config.redis.prefix });
}

/** Name, data and options for adding `data`: where coalescing and jobIds are decided. */
export function jobSpec(
  data: JobData,
  config: Pick<Config, "worker">,
): { name: JobData["kind"]; data: JobData; opts: JobsOptions } {
  const opts: JobsOptions = {
    attempts: config.worker.attempts,
    backoff: { type: BACKOFF_TYPE },
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    priority: JOB_PRIORITY[data.kind],
  };
  switch (data.kind) {
    case "reconcile":
      opts.deduplication = { id: reconcileDeduplicationId(data), keepLastIfActive: true };
      break;
    case "command":
      // BullMQ refuses ':' in custom ids.
      opts.jobId = `command-${data.projectId}-${data.noteId}-${data.action}`;
      opts.attempts = COMMAND_ATTEMPTS;
      break;
    case "pipeline":
      // One job per delivery (not per pipeline and status: a retried pipeline reports `running`/`failed` again
      // under the same id, and BullMQ would silently drop the second job while the first is kept).
      if (data.eventId) opts.jobId = `pipeline-${data.eventId.replace(/:/g, "-")}`;
      break;
    default:
      break;
  }
  return { name: data.kind, data, opts };
}

/**
 * One waiting reconcile per MR, one more for pipeline mirroring and one for the sweep's cold looks: a job whose pass
 * may skip reading the MR must never absorb a reconcile an MR event asked for, while such jobs coalesce with each
 * other.
 */
function reconcileDeduplicationId(job: ReconcileJob): string {
  return `reconcile-${mrKeyString(job)}${job.mirror ? "-mirror" : job.listed ? "-listed" : ""}`;
}

export async function enqueueJobs(queue: BotQueue, config: Pick<Config, "worker">, jobs: JobData[]): Promise<void> {
  await Promise.all(
    jobs.map((job) => {
      const spec = jobSpec(job, config);
      return queue.add(spec.name, spec.data, spec.opts);
    }),
  );
}

export function reconcileJob(mr: MrKey, reason: string, options: ReconcileOptions = {}): ReconcileJob {
  return {
    kind: "reconcile",
    projectId: mr.projectId,
    mrIid: mr.mrIid,
    reason,
    ...(options.mirror ? { mirror: true } : {}),
    ...(options.listed ? { listed: options.listed } : {}),
  };
}

/** Upserts (or removes, when the interval is 0) the periodic sweep; safe to call from every process. */
export async function scheduleSweep(queue: BotQueue, config: Pick<Config, "sweep" | "worker">): Promise<void> {
  const every = config.sweep.interval_seconds * 1000;
  if (every === 0) {
    await queue.removeJobScheduler(SWEEP_SCHEDULER_ID);
    return;
  }
  const { opts } = jobSpec({ kind: "sweep", reason: "periodic" }, config);
  await queue.upsertJobScheduler(
    SWEEP_SCHEDULER_ID,
    { every },
    {
      name: "sweep",
      data: { kind: "sweep", reason: "periodic" },
      opts: {
        attempts: opts.attempts,
        backoff: opts.backoff,
        priority: opts.priority,
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
      },
    },
  );
}

/** Jobs per state, for the queue-depth gauge. */
export async function queueDepth(queue: BotQueue): Promise<Record<string, number>> {
  return queue.getJobCounts("waiting", "prioritized", "delayed", "active", "failed");
}
