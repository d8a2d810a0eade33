/**
 * The BullMQ worker: takes jobs, holds the MR lock around MR jobs, calls the workflow, and turns failures into
 * retry decisions (src/errors.ts):
 * - `PermanentError` or `ConfigError` → BullMQ `UnrecoverableError`: failed at once, the hint logged (retrying
 *   cannot fix a 403 or a wrong setting);
 * - `RateLimitedError` → moved back to delayed for exactly the wait GitLab named (see backoff.ts), MR lock released,
 *   for any kind of job: not an attempt, since the job did nothing wrong and retrying sooner only earns another 429;
 * - anything else → transient, retried with exponential backoff and jitter until `worker.attempts`; command jobs
 *   until they succeed (queue.ts `COMMAND_ATTEMPTS`), since a comment is the only copy of what it asked;
 * - a job whose worker process died under it (stalled) → queued again, however often that happens
 *   ({@link MAX_STALLED_COUNT}); not an attempt.
 * A committer's command is never dropped silently: from its `worker.attempts`-th transient failure on, the workflow
 * tells the commenter once that it waits (`commandDelayed`), and a permanent failure is answered too
 * (`commandFailed`).
 * Several worker processes may run against one Redis; the MR lock keeps them off each other's MRs.
 */
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import type { Config } from "../config/config.js";
import { ConfigError, PermanentError, RateLimitedError } from "../errors.js";
import { type CallPriority, withCallPriority } from "../gitlab/call-budget.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { Redis } from "../redis.js";
import { retryDelayMs } from "./backoff.js";
import {
  type CommandJob,
  isMrJob,
  type JobContext,
  type JobData,
  type MrKey,
  type ReconcileOptions,
  type WorkflowHandlers,
} from "./jobs.js";
import type { MrLocks } from "./mr-lock.js";
import { QUEUE_NAME } from "./queue.js";

/** When the GitLab call budget is tight, commands go first and the sweep yields. */
const CALL_PRIORITY: Record<JobData["kind"], CallPriority> = {
  command: "command",
  reconcile: "reconcile",
  push: "reconcile",
  pipeline: "reconcile",
  sweep: "sweep",
};

/** First wait before retrying a job whose MR is locked; doubles per deferral up to {@link LOCK_RETRY_MAX_MS}. */
const LOCK_RETRY_BASE_MS = 100;
const LOCK_RETRY_MAX_MS = 1000;

/**
 * How often a job may be found stalled (its worker process died under it: SIGKILL, OOM, a lost node) and still be
 * put back in the queue: as often as it happens. BullMQ's default of 1 fails a job the second time, without running
 * it and without a log line (bullmq 6.7 `moveStalledJobsToWait-9.lua` sets `defa`, `Worker.processJob` fails it),
 * which drops a command silently and gives up a reconcile for a crash that was not the job's fault. A job that
 * itself brings its worker down is not stopped by a limit here either (the sweep queues its MR again); the `stalled`
 * warning below is what shows it. Each stall costs the lock's 30 s, so such a job cannot spin fast.
 */
const MAX_STALLED_COUNT = 1_000_000;
/**
 * Between stalled checks (BullMQ's default is 30 s). A check takes back the jobs the previous one saw active whose
 * lock is gone, so a job stranded by a dead process waits for its lock to expire (up to 30 s after the kill) plus
 * up to one interval: with 30 s, a command could sit a minute before it ran again (and the soak's time to quiet
 * with it). One check runs per interval however many workers there are (the `stalled-check` key), so a shorter one
 * costs one Redis script every few seconds; the lock, not this, decides whether a job has stalled.
 */
const STALLED_CHECK_INTERVAL_MS = 5_000;

export interface BotWorkerOptions {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** A `durable` connection (BullMQ blocks on a duplicate of it). */
  connection: Redis;
  handlers: WorkflowHandlers;
  locks: MrLocks;
  /** Used by fan-out jobs (push, pipeline, sweep) through `JobContext.enqueueReconcile`. */
  enqueueReconcile(mr: MrKey, reason: string, options?: ReconcileOptions): Promise<void>;
}

export interface BotWorker {
  readonly worker: Worker<JobData, void, JobData["kind"]>;
  /**
   * Stop taking jobs and wait up to `timeoutMs` for the active ones. Resolves with the ids of jobs still running
   * at the deadline: BullMQ's stalled-job check hands them to another worker once their lock expires.
   */
  close(timeoutMs: number): Promise<{ abandoned: string[] }>;
}

export function createBotWorker(options: BotWorkerOptions): BotWorker {
  const { config, logger, metrics, handlers, locks } = options;
  const active = new Set<string>();

  const processor = async (job: Job<JobData, void, JobData["kind"]>, token?: string): Promise<void> => {
    const data = job.data;
    const log = logger.child(jobLogFields(job));
    const ctx: JobContext = { log, enqueueReconcile: options.enqueueReconcile };
    // Before the MR lock (jobs.ts `screen`); a screen that fails (Redis) only means the job takes the usual path.
    if (data.kind === "command" && handlers.screen && !(await handlers.screen(data, ctx).catch(() => true))) {
      metrics.jobs.inc({ kind: data.kind, outcome: "completed" });
      return;
    }
    const lock = isMrJob(data) ? await locks.tryAcquire(data) : undefined;
    if (isMrJob(data) && !lock) {
      // Not an attempt: `moveToDelayed` keeps `attemptsMade` (bullmq Job#moveToDelayed passes skipAttempt), and
      // DelayedError tells the worker the job was moved on purpose (https://docs.bullmq.io/patterns/process-step-jobs).
      const deferrals = Math.max(0, job.attemptsStarted - job.attemptsMade - 1);
      const ceiling = Math.min(LOCK_RETRY_MAX_MS, LOCK_RETRY_BASE_MS * 2 ** Math.min(deferrals, 10));
      await job.moveToDelayed(Date.now() + Math.ceil(ceiling * (0.5 + Math.random() / 2)), token);
      metrics.jobs.inc({ kind: data.kind, outcome: "deferred" });
      log.debug("MR is locked by another job; deferred");
      throw new DelayedError();
    }
    const started = performance.now();
    active.add(job.id ?? "");
    try {
      // Every GitLab call the handler makes carries the job's priority to the shared call budget (call-budget.ts).
      await withCallPriority(CALL_PRIORITY[data.kind], () => dispatch(handlers, data, ctx));
    } catch (error) {
      throw await failure(error, job, ctx, token);
    } finally {
      active.delete(job.id ?? "");
      await lock?.release();
    }
    metrics.jobs.inc({ kind: data.kind, outcome: "completed" });
    log.info({ durationMs: Math.round(performance.now() - started) }, `${data.kind} job completed`);
  };

  /**
   * What to throw back to BullMQ for a job whose handler threw, after the answers a command is owed. A
   * `DelayedError` means the job was moved to delayed here, without spending an attempt.
   */
  async function failure(error: unknown, job: Job<JobData>, ctx: JobContext, token?: string): Promise<Error> {
    const data = job.data;
    if (error instanceof RateLimitedError) {
      // Not an attempt, like the lock deferral above: `moveToDelayed` keeps `attemptsMade`.
      const wait = retryDelayMs(job.attemptsMade + 1, error, config.worker);
      await job.moveToDelayed(Date.now() + wait, token);
      metrics.jobs.inc({ kind: data.kind, outcome: "rate_limited" });
      ctx.log.warn(
        { err: errorSummary(error), retryAfterMs: error.retryAfterMs },
        `${data.kind} job rate limited; waiting ${wait} ms`,
      );
      return new DelayedError();
    }
    if (data.kind !== "command") return classifyFailure(error, job, ctx.log, metrics);
    const attempt = job.attemptsMade + 1;
    if (error instanceof PermanentError || error instanceof ConfigError) {
      await answer("commandFailed", data, error, ctx);
    } else if (attempt >= config.worker.attempts) {
      await answer("commandDelayed", data, error, ctx);
      if (attempt >= (job.opts.attempts ?? 1)) {
        // Out of attempts all the same: a job queued before commands were kept until they succeed. Waits on
        // without spending one, backing off by how often it was started.
        await job.moveToDelayed(Date.now() + retryDelayMs(job.attemptsStarted, error, config.worker), token);
        metrics.jobs.inc({ kind: data.kind, outcome: "retried" });
        ctx.log.warn({ err: errorSummary(error) }, "command job out of attempts; kept waiting for GitLab");
        return new DelayedError();
      }
    }
    return classifyFailure(error, job, ctx.log, metrics);
  }

  /** A command's answer is best effort: failing to post it changes nothing about the job (it is asked again). */
  async function answer(
    handler: "commandDelayed" | "commandFailed",
    data: CommandJob,
    error: unknown,
    ctx: JobContext,
  ): Promise<void> {
    try {
      await handlers[handler]?.(data, error, ctx);
    } catch (answerError) {
      ctx.log.warn({ err: errorSummary(answerError), noteId: data.noteId }, `${handler}: the answer was not posted`);
    }
  }

  const worker = new Worker<JobData, void, JobData["kind"]>(QUEUE_NAME, processor, {
    connection: options.connection,
    prefix: config.redis.prefix,
    concurrency: config.worker.concurrency,
    maxStalledCount: MAX_STALLED_COUNT,
    stalledInterval: STALLED_CHECK_INTERVAL_MS,
    // Job options name the strategy (queue.ts BACKOFF_TYPE); BullMQ passes the thrown error.
    settings: { backoffStrategy: (attemptsMade, _type, error) => retryDelayMs(attemptsMade, error, config.worker) },
  });
  worker.on("error", (error) => logger.error({ err: errorSummary(error) }, "worker error"));
  // Emitted by whichever worker's check found the job: not the process that died, which logged nothing.
  worker.on("stalled", (jobId) =>
    logger.warn({ jobId }, "job stalled (the worker running it stopped without finishing it); queued again"),
  );

  return {
    worker,
    async close(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<"deadline">((resolve) => {
        timer = setTimeout(() => resolve("deadline"), timeoutMs);
      });
      const result = await Promise.race([worker.close(), deadline]);
      clearTimeout(timer);
      return { abandoned: result === "deadline" ? [...active] : [] };
    },
  };
}

function dispatch(handlers: WorkflowHandlers, data: JobData, ctx: JobContext): Promise<void> {
  switch (data.kind) {
    case "reconcile":
      return handlers.reconcile(data, ctx);
    case "command":
      return handlers.command(data, ctx);
    case "push":
      return handlers.push(data, ctx);
    case "pipeline":
      return handlers.pipeline(data, ctx);
    case "sweep":
      return handlers.sweep(data, ctx);
  }
}

/** Count, log and convert a handler failure into what BullMQ should do with the job. */
function classifyFailure(error: unknown, job: Job<JobData>, log: Logger, metrics: Metrics): Error {
  const kind = job.data.kind;
  if (error instanceof PermanentError || error instanceof ConfigError) {
    // A configuration error names the key to fix in its message; retrying cannot change the configuration.
    const hint = error instanceof PermanentError ? error.hint : error.message;
    metrics.jobs.inc({ kind, outcome: "failed" });
    log.error({ err: errorSummary(error), hint }, `${kind} job failed permanently: ${error.message}`);
    return new UnrecoverableError(`${error.message}${hint && hint !== error.message ? `; to fix: ${hint}` : ""}`);
  }
  const willRetry = job.attemptsMade + 1 < (job.opts.attempts ?? 1);
  const err = error instanceof Error ? error : new Error(String(error));
  if (!willRetry) {
    metrics.jobs.inc({ kind, outcome: "failed" });
    log.error({ err: errorSummary(err) }, `${kind} job failed after ${job.attemptsMade + 1} attempts: ${err.message}`);
  } else {
    metrics.jobs.inc({ kind, outcome: "retried" });
    log.warn({ err: errorSummary(err) }, `${kind} job failed; will retry: ${err.message}`);
  }
  return err;
}

/** Log fields of a job: event id, project and MR when it has them. */
function jobLogFields(job: Job<JobData>): Record<string, unknown> {
  const data = job.data;
  const fields: Record<string, unknown> = { jobId: job.id, kind: data.kind, attempt: job.attemptsMade + 1 };
  if ("eventId" in data && data.eventId) fields["eventId"] = data.eventId;
  if ("projectId" in data) fields["projectId"] = data.projectId;
  if ("mrIid" in data) fields["mrIid"] = data.mrIid;
  return fields;
}

/**
 * What is logged of an error: name, message, stack and the chain of causes, nothing else. Errors from the HTTP
 * client carry the request (with the `PRIVATE-TOKEN` header) as an enumerable property; a generic serializer would
 * walk into it.
 */
export function errorSummary(error: unknown, depth = 0): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const summary: Record<string, unknown> = { type: error.name, message: error.message };
  if (error.stack) summary["stack"] = error.stack;
  if (error.cause instanceof Error && depth < 3) summary["cause"] = errorSummary(error.cause, depth + 1);
  return summary;
}
