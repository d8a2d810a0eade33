/**
 * Dedupe and enqueue one delivery, never acknowledging what was not stored.
 *
 * GitLab re-sends an event with the same `Idempotency-Key` (FACTS.md, "Webhook delivery"). The delivery key is
 * claimed first with a short lifetime, the jobs are added, and only then is the key given its full lifetime. If the
 * add fails the claim is deleted; if even that fails (Redis went away between the two), the claim expires within
 * {@link CLAIM_MS}, so a resend after that is accepted rather than refused as a duplicate forever.
 */
import type { Config } from "../config/config.js";
import type { JobData } from "../queue/jobs.js";
import { type BotQueue, enqueueJobs } from "../queue/queue.js";
import type { Redis } from "../redis.js";

/** Where a verified, routed delivery goes. */
export interface DeliveryStore {
  /**
   * Store the jobs of delivery `deliveryId`, or answer "duplicate" when it was stored before. Rejects when the
   * jobs could not be stored; the caller answers 503 and GitLab may re-send.
   */
  accept(deliveryId: string, jobs: JobData[]): Promise<"queued" | "duplicate">;
}

/** Lifetime of a claim whose jobs are not yet stored: far longer than one request, far shorter than a resend. */
const CLAIM_MS = 60_000;

export interface RedisDeliveryStoreOptions {
  /** A `fail-fast` connection. */
  redis: Redis;
  queue: BotQueue;
  config: Pick<Config, "redis" | "webhook" | "worker">;
}

export function createRedisDeliveryStore(options: RedisDeliveryStoreOptions): DeliveryStore {
  const { redis, queue, config } = options;
  const ttlMs = config.webhook.dedup_ttl_seconds * 1000;
  const keyPrefix = `${config.redis.prefix}:delivery:`;
  return {
    async accept(deliveryId, jobs) {
      const key = keyPrefix + deliveryId;
      try {
        const claimed = await redis.set(key, "claimed", "PX", CLAIM_MS, "NX");
        if (claimed !== "OK") return "duplicate";
        await enqueueJobs(queue, config, jobs);
        // If this fails the caller answers 503 although the jobs are stored: a resend then queues them again,
        // which is harmless (commands keep their jobId, reconciles coalesce), while a 2xx here could not be undone.
        await redis.set(key, "stored", "PX", ttlMs);
      } catch (error) {
        // Also after a timed-out claim: a frozen Redis may still run the claim when it wakes; this DEL queues
        // behind it on the same connection. Not awaited: the 503 must not wait for a second timeout. Deleting a
        // concurrent duplicate's claim is harmless: its final SET re-creates the key.
        redis.del(key).catch(() => undefined);
        throw error;
      }
      return "queued";
    },
  };
}
