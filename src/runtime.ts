/**
 * Wiring: which parts run in this process (receiver, worker, sweep scheduler), their Redis connections, and an
 * orderly shutdown. The CLI and the tests start the service through {@link startService}; nothing here reads the
 * environment or keeps module-level state.
 */
import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "./config/config.js";
import type { Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import type { JobContext, JobData, MrKey, ReconcileOptions, WorkflowHandlers } from "./queue/jobs.js";
import {
  createInboxStore,
  type InboxEntry,
  type InboxPump,
  inboxKey,
  readInbox,
  startInboxPump,
} from "./queue/inbox.js";
import { createMrLocks } from "./queue/mr-lock.js";
import { type BotQueue, createQueue, enqueueJobs, queueDepth, reconcileJob, scheduleSweep } from "./queue/queue.js";
import { type BotWorker, createBotWorker, errorSummary } from "./queue/worker.js";
import { createApp } from "./receiver/app.js";
import { createWebhookHandler } from "./receiver/webhook-handler.js";
import type { WorkflowDeps } from "./trust/workflow.js";
import {
  closeRedis,
  createRedis,
  describeRedis,
  type Redis,
  type RedisProfile,
  type RedisTarget,
  waitForRedis,
} from "./redis.js";

/** Which parts run in this process. */
export interface ServiceRoles {
  /** `POST /webhook`. Implies the HTTP server. */
  receiver?: boolean;
  /** The BullMQ worker. */
  worker?: boolean;
  /** Upsert the periodic sweep's job scheduler (`sweep.interval_seconds`). */
  scheduler?: boolean;
  /** Serve /healthz, /readyz and /metrics even without the receiver (a worker-only process). */
  http?: boolean;
}

export interface StartServiceOptions {
  config: Config;
  logger: Logger;
  metrics?: Metrics;
  roles: ServiceRoles;
  /** The workflow; by default `createWorkflow` from `trust/workflow.ts` when the worker role is on. */
  handlers?: WorkflowHandlers;
  /** Overrides `redis.url` and `redis.sentinels` (tests). */
  redisUrl?: string;
}

/** A running service. */
export interface Service {
  /** `http://host:port` of the HTTP server, when one is served. */
  receiverUrl?: string;
  queue: BotQueue;
  /** Deliveries the receiver stored that no pump has moved into the queue yet (see `queue/inbox.ts`). */
  inbox: {
    read(): Promise<InboxEntry[]>;
    /** Move everything in the inbox into the queue now. */
    drain(): Promise<number>;
  };
  metrics: Metrics;
  enqueue(jobs: JobData[]): Promise<void>;
  enqueueReconcile(mr: MrKey, reason: string): Promise<void>;
  /**
   * Stop taking webhooks and jobs, let active jobs finish within `timeoutMs` (default
   * `worker.shutdown_timeout_ms`), close connections. Idempotent.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/** How long start-up waits for Redis before giving up with a clear error. */
const REDIS_START_TIMEOUT_MS = 10_000;

export async function startService(options: StartServiceOptions): Promise<Service> {
  const { config, logger, roles } = options;
  const metrics = options.metrics ?? createMetrics();
  const target: RedisTarget = options.redisUrl ?? config.redis;
  const cleanups: Array<() => Promise<void>> = [];
  let shutdownTimeoutMs = config.worker.shutdown_timeout_ms;
  const closeAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => logger.warn({ err: errorSummary(error) }, "shutdown step failed"));
    }
  };

  const connect = async (profile: RedisProfile, name: string): Promise<Redis> => {
    const redis = createRedis(target, profile, { name: `trusted-mr-bot:${name}` });
    cleanups.push(() => closeRedis(redis));
    watchRedis(redis, logger.child({ redis: name }));
    await waitForRedis(redis, REDIS_START_TIMEOUT_MS);
    return redis;
  };

  try {
    // The receiver's connection fails fast (503 within a second); the worker's waits through reconnects.
    const fastRedis = roles.receiver ? await connect("fail-fast", "receiver") : undefined;
    const durableRedis = roles.worker || roles.scheduler ? await connect("durable", "worker") : undefined;
    const probeRedis = fastRedis ?? durableRedis ?? (await connect("fail-fast", "probe"));

    const workQueue = durableRedis ? createQueue(durableRedis, config) : undefined;
    for (const q of [workQueue]) {
      if (!q) continue;
      cleanups.push(() => q.close());
      q.on("error", (error) => logger.warn({ err: errorSummary(error) }, "queue error"));
      await q.waitUntilReady();
    }
    // A receiver-only process still reports queue depth: a Queue object is only a client.
    const queue = workQueue ?? createQueue(probeRedis, config);
    if (!workQueue) cleanups.push(() => queue.close());
    let pump: InboxPump | undefined;

    const enqueue = (jobs: JobData[]) => enqueueJobs(queue, config, jobs);
    const enqueueReconcile = (mr: MrKey, reason: string, options?: ReconcileOptions) =>
      enqueue([reconcileJob(mr, reason, options)]);

    if (roles.worker && durableRedis) {
      const handlers =
        options.handlers ?? (await loadWorkflow({ config, logger, metrics, redis: durableRedis }, cleanups));
      const locks = createMrLocks({
        redis: durableRedis,
        prefix: config.redis.prefix,
        ttlMs: config.worker.mr_lock_ttl_ms,
        onLost: (key, error) =>
          logger.warn({ lock: key, err: error ? errorSummary(error) : undefined }, "MR lock lost while a job ran"),
      });
      const botWorker = createBotWorker({
        config,
        logger,
        metrics,
        connection: durableRedis,
        handlers,
        locks,
        enqueueReconcile,
      });
      // Registered before the worker's, so it stops after it: on SIGTERM the worker stops taking jobs at once,
      // while the pump may still move stored deliveries into the queue for the workers that remain.
      const running = await startInboxPump({ redis: durableRedis, queue: workQueue!, config, logger });
      pump = running;
      cleanups.push(() => running.stop());
      cleanups.push(() => stopWorker(botWorker, shutdownTimeoutMs, logger));
    }

    if (roles.scheduler && workQueue) {
      await scheduleSweep(workQueue, config);
      logger.info(
        { intervalSeconds: config.sweep.interval_seconds },
        config.sweep.interval_seconds > 0 ? "periodic sweep scheduled" : "periodic sweep off",
      );
    }

    let receiverUrl: string | undefined;
    if (roles.receiver || roles.http) {
      const webhook = fastRedis
        ? createWebhookHandler({
            config,
            logger,
            store: createInboxStore(fastRedis, config),
          })
        : undefined;
      const app = createApp({
        config,
        logger,
        metrics,
        webhook,
        ready: () => ping(probeRedis),
        beforeScrape: async () => {
          const depth = await queueDepth(queue);
          for (const [state, count] of Object.entries(depth)) metrics.queueDepth.set({ state }, count);
          metrics.queueDepth.set({ state: "inbox" }, await probeRedis.xlen(inboxKey(config)));
        },
      });
      const server = app.listen(config.server.port, config.server.host);
      await once(server, "listening");
      // Registered after the worker's cleanup, so it runs first: stop taking webhooks, then drain jobs.
      cleanups.push(() => closeServer(server));
      const { port } = server.address() as AddressInfo;
      const host = config.server.host === "0.0.0.0" || config.server.host === "::" ? "127.0.0.1" : config.server.host;
      receiverUrl = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
      logger.info({ url: receiverUrl, webhook: Boolean(webhook) }, "HTTP server listening");
    }

    logger.info({ roles, redis: describeRedis(probeRedis), prefix: config.redis.prefix }, "service started");

    let closing: Promise<void> | undefined;
    return {
      receiverUrl,
      queue,
      inbox: {
        read: () => readInbox(probeRedis, config),
        async drain() {
          // A process without the worker role moves entries with a pump that has no background loop.
          pump ??= await startInboxPump({ redis: probeRedis, queue, config, logger, run: false });
          return pump.drain();
        },
      },
      metrics,
      enqueue,
      enqueueReconcile,
      close(closeOptions = {}) {
        shutdownTimeoutMs = closeOptions.timeoutMs ?? shutdownTimeoutMs;
        closing ??= closeAll().then(() => logger.info("service stopped"));
        return closing;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

export interface SweepOnceOptions {
  config: Config;
  logger: Logger;
  metrics?: Metrics;
  handlers?: WorkflowHandlers;
  redisUrl?: string;
}

/** Outcome of {@link runSweepOnce}. */
export interface SweepOnceResult {
  reconciled: number;
  /** MRs skipped because a worker held their lock: that worker is converging them. */
  busy: number;
  failed: number;
}

/**
 * `trusted-mr-bot sweep`: one reconcile pass without the queue. The workflow's sweep handler finds the MRs; each
 * is reconciled here, in turn, under its MR lock so a running worker and this pass never touch one MR at once.
 */
export async function runSweepOnce(options: SweepOnceOptions): Promise<SweepOnceResult> {
  const { config, logger } = options;
  const metrics = options.metrics ?? createMetrics({ defaultMetrics: false });
  const redis = createRedis(options.redisUrl ?? config.redis, "durable", { name: "trusted-mr-bot:sweep" });
  const cleanups: Array<() => Promise<void>> = [() => closeRedis(redis)];
  watchRedis(redis, logger);
  try {
    await waitForRedis(redis, REDIS_START_TIMEOUT_MS);
    const handlers = options.handlers ?? (await loadWorkflow({ config, logger, metrics, redis }, cleanups));
    const locks = createMrLocks({ redis, prefix: config.redis.prefix, ttlMs: config.worker.mr_lock_ttl_ms });
    const found = new Map<string, { mr: MrKey; reason: string; options?: ReconcileOptions }>();
    const ctx: JobContext = {
      log: logger,
      enqueueReconcile: async (mr, reason, options) => {
        found.set(`${mr.projectId}!${mr.mrIid}`, { mr, reason, ...(options ? { options } : {}) });
      },
    };
    await handlers.sweep({ kind: "sweep", reason: "cli" }, ctx);
    const result: SweepOnceResult = { reconciled: 0, busy: 0, failed: 0 };
    for (const { mr, reason, options: jobOptions } of found.values()) {
      const log = logger.child({ projectId: mr.projectId, mrIid: mr.mrIid });
      const lock = await locks.tryAcquire(mr);
      if (!lock) {
        result.busy += 1;
        log.info("MR is being handled by a worker; skipped");
        continue;
      }
      try {
        await handlers.reconcile(reconcileJob(mr, reason, jobOptions), { ...ctx, log });
        result.reconciled += 1;
      } catch (error) {
        result.failed += 1;
        const hint = (error as { hint?: unknown }).hint;
        log.error({ err: errorSummary(error), hint }, "reconcile failed");
      } finally {
        await lock.release();
      }
    }
    logger.info(result, "sweep finished");
    return result;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

/** The trust workflow, imported only where jobs run: a receiver-only process never loads the GitLab client. */
async function loadWorkflow(deps: WorkflowDeps, cleanups: Array<() => Promise<void>>): Promise<WorkflowHandlers> {
  const { createWorkflow } = await import("./trust/workflow.js");
  const workflow = createWorkflow(deps);
  cleanups.push(() => workflow.close());
  return workflow;
}

async function stopWorker(worker: BotWorker, timeoutMs: number, logger: Logger): Promise<void> {
  logger.info({ timeoutMs }, "stopping worker; waiting for active jobs");
  const { abandoned } = await worker.close(timeoutMs);
  if (abandoned.length > 0) {
    logger.warn(
      { jobIds: abandoned, timeoutMs },
      "shutdown deadline passed with jobs still running; another worker takes them over once their lock expires",
    );
  }
}

async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // Keep-alive connections from GitLab would hold `close` open; in-flight requests take milliseconds.
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), 2000);
  await closed;
  clearTimeout(timer);
}

/** Redis answers PING within a second. */
async function ping(redis: Redis): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), 1000);
  });
  try {
    return await Promise.race([redis.ping().then((reply) => reply === "PONG"), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * ioredis reports every failed reconnect; log the first failure and the recovery, not one line per attempt.
 * (An `error` listener is also what keeps ioredis from printing "Unhandled error event".)
 */
function watchRedis(redis: Redis, logger: Logger): void {
  let down = false;
  redis.on("error", (error: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err: error.message, redis: describeRedis(redis) }, "Redis connection failed; reconnecting");
  });
  redis.on("ready", () => {
    if (!down) return;
    down = false;
    logger.info({ redis: describeRedis(redis) }, "Redis connection restored");
  });
}
