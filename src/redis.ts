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
 */
import { Redis, type RedisOptions } from "ioredis";

export type { Redis } from "ioredis";

/** Connection profile; see the module comment. */
export type RedisProfile = "fail-fast" | "durable";

/** Answer within this long or fail: the receiver's budget for one Redis round trip. */
const FAIL_FAST_TIMEOUT_MS = 500;

export function createRedis(url: string, profile: RedisProfile, options: { name?: string } = {}): Redis {
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
  return new Redis(url, { ...common, ...profileOptions });
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

/** `host:port` for messages; never the password. */
export function describeRedis(redis: Redis): string {
  const { host, port, path } = redis.options;
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
