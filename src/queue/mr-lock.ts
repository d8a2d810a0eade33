/**
 * Per-MR mutual exclusion across worker processes: at most one job touches an MR at a time, whichever process
 * runs it. BullMQ's own job lock only covers one job; a reconcile and a command of the same MR are two jobs.
 *
 * The single-instance Redis lock pattern (https://redis.io/docs/latest/develop/use/patterns/distributed-locks/):
 * `SET key token NX PX ttl` to take it, renewed while the job runs, released by compare-and-delete so a process
 * whose lock expired (a long GC pause, a partition) cannot release the lock another process took since.
 */
import { randomUUID } from "node:crypto";
import type { MrKey } from "./jobs.js";
import { mrKeyString } from "./jobs.js";
import { DELETE_IF_EQUAL, type Redis, RENEW_IF_EQUAL, runScript } from "../redis.js";

/** A held MR lock. Renewed in the background until released. */
export interface MrLock {
  readonly key: string;
  /** Stop renewing and release, if still ours. Never throws (an unreleased lock expires after the TTL). */
  release(): Promise<void>;
}

export interface MrLocksOptions {
  redis: Redis;
  /** Redis key prefix (`redis.prefix`). */
  prefix: string;
  /** Lock lifetime; renewed every third of it while held. */
  ttlMs: number;
  /** Called when a renewal finds the lock gone or fails: the job may now overlap another. */
  onLost?: (key: string, error?: unknown) => void;
}

export interface MrLocks {
  /** Take the MR's lock, or `undefined` when another job holds it. */
  tryAcquire(mr: MrKey): Promise<MrLock | undefined>;
  /** The lock's key for `mr` (tests and diagnostics). */
  keyFor(mr: MrKey): string;
}

export function createMrLocks(options: MrLocksOptions): MrLocks {
  const { redis, prefix, ttlMs, onLost } = options;
  const keyFor = (mr: MrKey) => `${prefix}:lock:mr:${mrKeyString(mr)}`;
  return {
    keyFor,
    async tryAcquire(mr) {
      const key = keyFor(mr);
      const token = randomUUID();
      const taken = await redis.set(key, token, "PX", ttlMs, "NX");
      if (taken !== "OK") return undefined;
      let renewing: Promise<unknown> = Promise.resolve();
      const timer = setInterval(
        () => {
          renewing = runScript(redis, RENEW_IF_EQUAL, 1, key, token, ttlMs).then(
            (renewed) => {
              if (renewed !== 1) {
                clearInterval(timer);
                onLost?.(key);
              }
            },
            (error: unknown) => onLost?.(key, error),
          );
        },
        Math.max(1, Math.floor(ttlMs / 3)),
      );
      // A lock must not keep a process alive on its own.
      timer.unref();
      return {
        key,
        async release() {
          clearInterval(timer);
          await renewing;
          await runScript(redis, DELETE_IF_EQUAL, 1, key, token).catch(() => undefined);
        },
      };
    },
  };
}
