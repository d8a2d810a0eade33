/**
 * Redis connections. Two profiles, because the receiver and the worker want opposite things from a connection:
 *
 * - `fail-fast` (receiver, /readyz): a webhook must be stored or refused within a second, so commands never wait
 *   in ioredis's offline queue and time out quickly. GitLab waits 10 s for an answer
 *   (`webhook_timeout`, FACTS.md); a 503 in under a second is better than a hung request that GitLab counts as a
 *   failure anyway, and it guarantees nothing is acknowledged that was not stored.
 * - `durable` (worker, locks, workflow): commands wait through a reconnect. BullMQ requires
 *   `maxRetriesPerRequest: null` on the connection a Worker blocks on
 *   (https://docs.bullmq.io/guide/going-to-production#maxretriesperrequest).
 *
 * Either profile connects to one Redis at `redis.url`, or, with `redis.sentinels`, to whichever node the Sentinels
 * name as the primary of `redis.sentinel_name` (https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/).
 * ioredis asks the Sentinels again on every reconnect, so a failover costs a reconnect; BullMQ takes such a
 * connection as it is, and its `duplicate()`s (the Worker's blocking connection, the inbox pump's) are Sentinel
 * connections too (https://docs.bullmq.io/guide/connections).
 */
import { createHash } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { Config } from "./config/config.js";

export type { Redis } from "ioredis";

/** Connection profile; see the module comment. */
export type RedisProfile = "fail-fast" | "durable";

/** Answer within this long or fail: the receiver's budget for one Redis round trip. */
const FAIL_FAST_TIMEOUT_MS = 500;

/** Where the data is: a `redis://` URL, or the `redis` config section (with or without Sentinels). */
export type RedisTarget = string | Pick<Config["redis"], "url" | "sentinels" | "sentinel_name" | "sentinel_password">;

export function createRedis(target: RedisTarget, profile: RedisProfile, options: { name?: string } = {}): Redis {
  const common: RedisOptions = {
    connectionName: options.name,
    // Reconnect quickly: a Redis restart should cost seconds of 503s, not the default's growing pauses.
    retryStrategy: (times) => Math.min(times * 100, 2000),
  };
  const profileOptions: RedisOptions =
    profile === "fail-fast"
      ? {
          enableOfflineQueue: false,
          connectTimeout: FAIL_FAST_TIMEOUT_MS,
          commandTimeout: FAIL_FAST_TIMEOUT_MS,
          maxRetriesPerRequest: 0,
          // Concurrent webhook requests share one socket write per tick instead of one per command.
          enableAutoPipelining: true,
        }
      : { maxRetriesPerRequest: null };
  if (typeof target === "string" || !target.sentinels?.length) {
    return new Redis(typeof target === "string" ? target : target.url, { ...common, ...profileOptions });
  }
  return new Redis({ ...sentinelOptions(target, profile), ...common, ...profileOptions });
}

/**
 * ioredis options for the primary of a Sentinel group. `redis.url` still gives the data nodes' user name, password
 * and database; its host and port are not used (config.ts refuses `rediss://` here).
 */
function sentinelOptions(target: Exclude<RedisTarget, string>, profile: RedisProfile): RedisOptions {
  const url = new URL(target.url);
  const db = Number(url.pathname.slice(1) || "0");
  return {
    sentinels: target.sentinels,
    name: target.sentinel_name,
    sentinelPassword: target.sentinel_password,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number.isInteger(db) ? db : 0,
    // A Sentinel that accepts the connection but never answers must not hold up the reconnect.
    sentinelCommandTimeout: profile === "fail-fast" ? FAIL_FAST_TIMEOUT_MS : 5000,
    // A node that was demoted while we stayed connected answers writes with READONLY: reconnect, which asks the
    // Sentinels for the new primary (https://github.com/redis/ioredis#reconnect-on-error).
    reconnectOnError: (error) => error.message.startsWith("READONLY"),
  };
}

/** Resolves once the connection is ready, rejects after `timeoutMs` (used at start so a bad URL fails loudly). */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis at ${describeRedis(redis)} not reachable within ${timeoutMs} ms (${lastError})`));
    }, timeoutMs);
    let lastError = "no answer";
    const onReady = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      lastError = err.message;
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("error", onError);
    };
    redis.on("ready", onReady);
    redis.on("error", onError);
  });
}

/** `host:port`, or `sentinel <name> (host:port,...)`, for messages; never the password. */
export function describeRedis(redis: Redis): string {
  const { host, port, path, sentinels, name } = redis.options;
  if (sentinels?.length) {
    return `sentinel ${name} (${sentinels.map((s) => `${s.host ?? "localhost"}:${s.port ?? 26379}`).join(",")})`;
  }
  return path ?? `${host}:${port}`;
}

/** Close gracefully (QUIT), falling back to a hard disconnect when Redis does not answer. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === "end") return;
  try {
    await Promise.race([
      redis.quit(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("quit timed out")), 1000).unref()),
    ]);
  } catch {
    redis.disconnect();
  }
}

/** A Lua script with its SHA1: sent by hash (`EVALSHA`), its text only when Redis does not have it yet. */
export interface Script {
  lua: string;
  sha: string;
}

export function script(lua: string): Script {
  return { lua, sha: createHash("sha1").update(lua).digest("hex") };
}

/** Runs `s` by its hash; once per Redis server (and after a failover or `SCRIPT FLUSH`), with its text. */
export async function runScript(
  redis: Redis,
  s: Script,
  numKeys: number,
  ...args: Array<string | number>
): Promise<unknown> {
  try {
    return await redis.evalsha(s.sha, numKeys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
    return await redis.eval(s.lua, numKeys, ...args);
  }
}

/** KEYS[1]; ARGV[1] value. Deletes the key if it still holds that value (a lock or claim released by its holder). */
export const DELETE_IF_EQUAL = script(
  `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`,
);

/** KEYS[1]; ARGV[1] value, ARGV[2] ttl ms. Extends the key's life if it still holds that value (renewed by its holder). */
export const RENEW_IF_EQUAL = script(
  `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`,
);
