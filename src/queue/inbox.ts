/**
 * The inbox: a Redis stream between the receiver and the BullMQ queue.
 *
 * The receiver must answer GitLab in milliseconds and acknowledge nothing it has not stored (STYLE.md §2). Adding
 * a BullMQ job is a large Lua script (~85 µs of Redis time each, measured with `INFO commandstats`) plus the
 * client work around it, and a delivery also needs its dedupe key. So the receiver does one small atomic script:
 * "if this delivery id is new, append its routed jobs to the inbox stream and remember the id". That is the point
 * of durability: from there the **pump** in every worker process moves entries into BullMQ (where reconciles
 * coalesce and commands keep their note-derived jobId) and only then acknowledges and deletes them.
 *
 * The pump reads through a consumer group, so several worker processes share the inbox and each entry goes to one
 * of them. Moving an entry twice is harmless (a command's jobId is already taken, a reconcile folds into the
 * pending one), so delivery is at-least-once: an entry whose pump died before acknowledging it is claimed by
 * another pump once it has been idle for {@link CLAIM_IDLE_MS}.
 */
import { hash } from "node:crypto";
import { hostname } from "node:os";
import type { Config } from "../config/config.js";
import type { Logger } from "../logger.js";
import type { Redis } from "../redis.js";
import type { CommandJob, JobData } from "./jobs.js";
import { type BotQueue, enqueueJobs } from "./queue.js";

const GROUP = "pump";
/** An entry delivered to a pump that has not acknowledged it for this long is taken over by another pump. */
const CLAIM_IDLE_MS = 30_000;
const BATCH = 100;
/** How long one blocking read waits; also how often abandoned entries are looked for when idle. */
const BLOCK_MS = 1000;
/** How long the receiver waits for replicas to confirm a delivery: under its 500 ms command timeout (redis.ts). */
const REPLICA_WAIT_MS = 300;

/**
 * Replicas that must hold a delivery before the receiver acknowledges it: `redis.wait_replicas`, by default 1 with
 * Sentinels and 0 without. Replication is asynchronous, so a primary can answer a write and die before any replica
 * has it; the promoted replica then never saw a delivery GitLab was told is stored, and GitLab does not re-send it.
 * `WAIT` closes that window (https://redis.io/docs/latest/commands/wait/): the answer waits for the copy.
 */
export function replicasToWait(redis: Pick<Config["redis"], "wait_replicas" | "sentinels">): number {
  return redis.wait_replicas ?? (redis.sentinels?.length ? 1 : 0);
}

export function inboxKey(config: Pick<Config, "redis">): string {
  return `${config.redis.prefix}:inbox`;
}

/**
 * Two memories keep a delivery from being stored twice, sized for what a repeat would cost (issue 10):
 *
 * - every delivery id, for `webhook.dedup_ttl_seconds` (an hour): what arrives twice on its own does so within
 *   minutes (a relay's retry; `WebHookWorker`'s `sidekiq_options retry: 4`, whose backoff adds up to a few minutes);
 * - every command note, by project, note id and action, for `webhook.command_dedup_ttl_seconds` (7 days, as long as
 *   GitLab lists a hook's events for a "Resend": `WebHookLog::MAX_RECENT_DAYS`), whatever delivery id brought it.
 *
 * GitLab never re-sends a delivery by itself after that; only a person's "Resend" does. Of what it can resend, only
 * a command has an effect tied to the delivery; every other event is a hint that makes the worker read GitLab
 * again (STYLE.md 3), so a late resend of one costs a reconcile that changes nothing. Memory at 10 deliveries/s, 5 %
 * of them commands: 36 000 delivery ids and 302 400 command notes, about 43 MiB instead of about 760 MiB for a
 * week of every delivery id (`npx tsx bench/dedup-memory.ts`: `INFO memory` over 100 000 deliveries).
 */

/**
 * Where a delivery id is remembered: a 16-byte digest of it (22 base64url characters) rather than the id itself, so
 * a key has the same small size whatever the id (a UUID is 36 characters): about 112 bytes of Redis memory per id
 * with its expiry instead of 149 (`used_memory` over 100 000 keys, Redis 7.0). 128 bits make a collision (a new
 * delivery refused as a duplicate) as unlikely as a UUID clash. A resend of a delivery stored under the full id before this changed is
 * stored again: harmless, jobs are idempotent.
 */
export function deliveryKey(config: { redis: Pick<Config["redis"], "prefix"> }, deliveryId: string): string {
  // `hash` is the one-shot form of `createHash(...).digest()`: a third of its cost on the receiver's hot path.
  const digest = hash("sha256", deliveryId, "buffer").subarray(0, 16).toString("base64url");
  return `${config.redis.prefix}:delivery:${digest}`;
}

/**
 * Where a command note is remembered: the same identity as its job's id (`command-<project>-<note>-<action>`,
 * queue.ts), so a resend of the note under any delivery id is the same command. Note ids are GitLab's, numbers.
 */
export function commandKey(
  config: { redis: Pick<Config["redis"], "prefix"> },
  job: Pick<CommandJob, "projectId" | "noteId" | "action">,
): string {
  return `${config.redis.prefix}:command:${job.projectId}:${job.noteId}:${job.action}`;
}

/**
 * KEYS[1] delivery key, KEYS[2] inbox stream, KEYS[3..] the delivery's command keys; ARGV[1] delivery TTL ms,
 * ARGV[2] delivery id, ARGV[3] jobs JSON, ARGV[4] command TTL ms. A delivery is a duplicate when its id is
 * remembered, or when it carries commands and every one of them is. XADD before SET: if Redis refused the write
 * half-way (out of memory), a resend is stored again rather than refused as a duplicate of something never stored.
 */
const ACCEPT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local commands = #KEYS - 2
if commands > 0 and redis.call('EXISTS', unpack(KEYS, 3)) == commands then return 0 end
redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'jobs', ARGV[3])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
for i = 3, #KEYS do redis.call('SET', KEYS[i], '1', 'PX', ARGV[4]) end
return 1`;

interface AcceptCommand {
  tmrAccept(numberOfKeys: number, ...keysThenArgs: Array<string | number>): Promise<number>;
}

/** Where a verified, routed delivery goes. */
export interface DeliveryStore {
  /**
   * Store the jobs of delivery `deliveryId`, or answer "duplicate" when it was stored before. Rejects when the
   * jobs could not be stored; the caller answers 503 and GitLab may re-send.
   */
  accept(deliveryId: string, jobs: JobData[]): Promise<"queued" | "duplicate">;
}

/**
 * The receiver's side: one round trip per delivery, two with replicas to wait for. `redis` is a fail-fast
 * connection.
 */
export function createInboxStore(redis: Redis, config: Pick<Config, "redis" | "webhook">): DeliveryStore {
  // No fixed `numberOfKeys`: a delivery's command keys follow the two fixed ones, so each call passes the count.
  if (!("tmrAccept" in redis)) redis.defineCommand("tmrAccept", { lua: ACCEPT_SCRIPT });
  const client = redis as unknown as AcceptCommand;
  const inbox = inboxKey(config);
  const ttlMs = config.webhook.dedup_ttl_seconds * 1000;
  const commandTtlMs = config.webhook.command_dedup_ttl_seconds * 1000;
  const replicas = replicasToWait(config.redis);
  return {
    async accept(deliveryId, jobs) {
      const commandKeys: string[] = [];
      for (const job of jobs) if (job.kind === "command") commandKeys.push(commandKey(config, job));
      const stored = await client.tmrAccept(
        2 + commandKeys.length,
        deliveryKey(config, deliveryId),
        inbox,
        ...commandKeys,
        ttlMs,
        deliveryId,
        JSON.stringify(jobs),
        commandTtlMs,
      );
      // A duplicate waits too: the first copy may be one whose answer was a 503 because no replica confirmed it.
      // WAIT covers this connection's writes so far; concurrent deliveries share one WAIT's round trip.
      if (replicas > 0) {
        const confirmed = await redis.wait(replicas, REPLICA_WAIT_MS);
        if (confirmed < replicas) {
          throw new Error(
            `stored on the primary, but ${confirmed} of ${replicas} replicas confirmed it within ${REPLICA_WAIT_MS} ms`,
          );
        }
      }
      return stored === 1 ? "queued" : "duplicate";
    },
  };
}

/** One stored delivery, as the pump sees it. */
export interface InboxEntry {
  /** Stream entry id. */
  entryId: string;
  deliveryId: string;
  jobs: JobData[];
}

type StreamEntries = Array<[string, string[]]>;

function parseEntries(raw: StreamEntries): { entries: InboxEntry[]; malformed: string[] } {
  const entries: InboxEntry[] = [];
  const malformed: string[] = [];
  for (const [entryId, fields] of raw) {
    const get = (name: string) => fields[fields.indexOf(name) + 1];
    try {
      const jobs = JSON.parse(get("jobs") ?? "") as JobData[];
      if (!Array.isArray(jobs)) throw new Error("not a list");
      entries.push({ entryId, deliveryId: get("id") ?? "", jobs });
    } catch {
      malformed.push(entryId);
    }
  }
  return { entries, malformed };
}

/** Entries waiting in the inbox (not yet moved into the queue), oldest first. For tests and diagnostics. */
export async function readInbox(redis: Redis, config: Pick<Config, "redis">): Promise<InboxEntry[]> {
  return parseEntries((await redis.xrange(inboxKey(config), "-", "+")) as StreamEntries).entries;
}

export interface InboxPump {
  /** Move every entry stored so far into the queue, then resolve (tests, `sweep`). */
  drain(): Promise<number>;
  /** Stop reading; an entry being moved is finished first. */
  stop(): Promise<void>;
}

export interface InboxPumpOptions {
  /** A durable connection; the pump makes its own duplicate for blocking reads. */
  redis: Redis;
  queue: BotQueue;
  config: Pick<Config, "redis" | "worker">;
  logger: Logger;
  /** Start the background loop (default true); `false` gives a pump that only moves entries on `drain()`. */
  run?: boolean;
  /** Take over another pump's unacknowledged entries after this long (default {@link CLAIM_IDLE_MS}). */
  claimIdleMs?: number;
}

export async function startInboxPump(options: InboxPumpOptions): Promise<InboxPump> {
  const { redis, queue, config, logger } = options;
  const stream = inboxKey(config);
  const consumer = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const claimIdleMs = options.claimIdleMs ?? CLAIM_IDLE_MS;
  try {
    // "0": entries stored before the first pump ever started are moved too.
    await redis.xgroup("CREATE", stream, GROUP, "0", "MKSTREAM");
  } catch (error) {
    if (!/BUSYGROUP/.test(String(error))) throw error;
  }

  /** Enqueue, then acknowledge and delete. Entries whose enqueue failed stay pending and are retried. */
  async function move(raw: StreamEntries): Promise<number> {
    const { entries, malformed } = parseEntries(raw);
    for (const id of malformed) logger.error({ entryId: id }, "inbox entry is not valid; dropped");
    const done: string[] = [...malformed];
    for (const entry of entries) {
      await enqueueJobs(queue, config, entry.jobs);
      done.push(entry.entryId);
    }
    if (done.length)
      await redis
        .multi()
        .xack(stream, GROUP, ...done)
        .xdel(stream, ...done)
        .exec();
    return entries.length;
  }

  async function readOnce(reader: Redis, id: ">" | "0", blockMs?: number): Promise<StreamEntries> {
    const args: Array<string | number> = ["GROUP", GROUP, consumer, "COUNT", BATCH];
    if (blockMs !== undefined) args.push("BLOCK", blockMs);
    const result = (await reader.call("XREADGROUP", ...args, "STREAMS", stream, id)) as unknown[] | null;
    if (!result) return [];
    // RESP3 (ioredis 6's default) answers a map, flattened to [stream, entries]; RESP2 a list of [stream, entries].
    const entries = typeof result[0] === "string" ? result[1] : (result[0] as unknown[] | undefined)?.[1];
    return (entries as StreamEntries | undefined) ?? [];
  }

  /** Entries another pump took but never acknowledged (it crashed): take them over. */
  async function claimAbandoned(): Promise<StreamEntries> {
    const result = (await redis.call("XAUTOCLAIM", stream, GROUP, consumer, claimIdleMs, "0-0", "COUNT", BATCH)) as [
      string,
      StreamEntries,
    ];
    return (result[1] ?? []).filter((e) => e !== null && Array.isArray(e[1]));
  }

  async function drain(): Promise<number> {
    let moved = 0;
    moved += await move(await readOnce(redis, "0"));
    for (let batch = await readOnce(redis, ">"); batch.length; batch = await readOnce(redis, ">")) {
      moved += await move(batch);
    }
    return moved;
  }

  let running = options.run ?? true;
  const blocking = running ? redis.duplicate() : undefined;
  // Its failures reach the loop as rejected reads; without a listener ioredis would also print each reconnect error.
  blocking?.on("error", () => undefined);
  const loop = (async () => {
    if (!blocking) return;
    let lastClaim = 0;
    let failures = 0;
    while (running) {
      try {
        if (Date.now() - lastClaim > claimIdleMs / 2) {
          lastClaim = Date.now();
          await move(await claimAbandoned());
          // This pump's own pending entries (an enqueue that failed before) come back with id "0".
          await move(await readOnce(redis, "0"));
        }
        const batch = await readOnce(blocking, ">", BLOCK_MS);
        if (batch.length) await move(batch);
        failures = 0;
      } catch (error) {
        if (!running) break;
        failures += 1;
        lastClaim = 0;
        logger.warn({ err: { message: (error as Error).message }, failures }, "inbox pump: moving entries failed");
        await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** failures, 5000)));
      }
    }
  })();

  return {
    drain,
    async stop() {
      running = false;
      // Interrupts a blocking read at once; the loop then ends.
      blocking?.disconnect();
      await loop;
      // Forget this consumer only if it holds nothing unacknowledged: DELCONSUMER drops its pending entries.
      const pending = (await redis.xpending(stream, GROUP, "-", "+", 1, consumer).catch(() => [1])) as unknown[];
      if (pending.length === 0) await redis.xgroup("DELCONSUMER", stream, GROUP, consumer).catch(() => undefined);
    },
  };
}
