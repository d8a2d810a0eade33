/**
 * Failure classes shared by the GitLab adapter and the worker.
 *
 * The worker decides retry policy from these alone: a {@link RateLimitedError} waits for the time GitLab named,
 * a {@link PermanentError} is not retried (BullMQ `UnrecoverableError`), anything else is transient and retried
 * with exponential backoff and jitter.
 */

/** GitLab answered 429: wait `retryAfterMs` (from `Retry-After` or `RateLimit-Reset`) before the next attempt. */
export class RateLimitedError extends Error {
  override readonly name = "RateLimitedError";
  constructor(
    message: string,
    readonly retryAfterMs: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Retrying cannot help (403, 404, bad config). `hint` says what a person must fix. */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
  constructor(
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Network error, 5xx or 409: worth another attempt after a backoff. */
export class TransientError extends Error {
  override readonly name = "TransientError";
}

/** A configuration problem found at start: names the key, the source and what is expected. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}
