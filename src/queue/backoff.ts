/**
 * Retry delays. A 429 names its own wait (`Retry-After` / `RateLimit-Reset`, turned into
 * `RateLimitedError.retryAfterMs` by `classifyGitLabError`), and retrying sooner only earns another 429, so that
 * wait is used as is, plus a little jitter so several workers do not return in the same millisecond. Everything
 * else backs off exponentially with "full jitter"
 * (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), which spreads retries of many jobs
 * that failed together (a GitLab outage) instead of sending them back in waves.
 */
import type { Config } from "../config/config.js";
import { RateLimitedError } from "../errors.js";

/** At most this fraction of a rate-limit wait is added as jitter. */
const RATE_LIMIT_JITTER = 0.1;

/**
 * Delay before the next attempt, in ms.
 * @param attemptsMade attempts so far including the one that just failed (BullMQ passes `attemptsMade + 1`).
 */
export function retryDelayMs(
  attemptsMade: number,
  error: unknown,
  config: Pick<Config["worker"], "backoff_base_ms" | "backoff_max_ms">,
  random: () => number = Math.random,
): number {
  if (error instanceof RateLimitedError) {
    return Math.ceil(error.retryAfterMs * (1 + RATE_LIMIT_JITTER * random()));
  }
  const exponent = Math.max(0, attemptsMade - 1);
  const ceiling = Math.min(config.backoff_max_ms, config.backoff_base_ms * 2 ** Math.min(exponent, 30));
  return Math.floor(ceiling * random());
}
