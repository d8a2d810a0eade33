/**
 * Real Redis for tests: `REDIS_URL` (the suite exports it; default `redis://127.0.0.1:6379`) and a fresh key
 * prefix per test, so tests never see each other's queues, locks or delivery keys (BullMQ's own suite does this).
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

export const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379";

/** `tmr-test-<random>`. */
export function uniquePrefix(): string {
  return `tmr-test-${randomBytes(6).toString("hex")}`;
}

/** A plain client for assertions; `maxRetriesPerRequest: null` so a test never races a reconnect. */
export function testRedis(url = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}

/** Deletes every key under `prefix`. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}
