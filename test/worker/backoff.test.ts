/** Retry delays: a rate limit waits as told (≤ 10% jitter); everything else backs off exponentially, full jitter. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RateLimitedError, TransientError } from "../../src/errors.js";
import { retryDelayMs } from "../../src/queue/backoff.js";

const worker = { backoff_base_ms: 1000, backoff_max_ms: 30_000 };

describe("retryDelayMs", () => {
  it("waits exactly the rate-limit wait, plus at most 10%", () => {
    const limited = new RateLimitedError("429", 2000);
    assert.equal(
      retryDelayMs(1, limited, worker, () => 0),
      2000,
    );
    assert.equal(
      retryDelayMs(1, limited, worker, () => 0.999999),
      2200,
    );
    assert.equal(
      retryDelayMs(9, limited, worker, () => 0),
      2000,
      "not multiplied by the attempt number",
    );
  });

  it("backs off exponentially from backoff_base_ms, capped at backoff_max_ms, with full jitter", () => {
    const transient = new TransientError("503");
    const top = () => 0.999999;
    assert.equal(retryDelayMs(1, transient, worker, top), 999);
    assert.equal(retryDelayMs(2, transient, worker, top), 1999);
    assert.equal(retryDelayMs(3, transient, worker, top), 3999);
    assert.equal(retryDelayMs(10, transient, worker, top), 29_999);
    assert.equal(retryDelayMs(200, transient, worker, top), 29_999);
    assert.equal(
      retryDelayMs(3, transient, worker, () => 0),
      0,
    );
    assert.equal(
      retryDelayMs(3, transient, worker, () => 0.5),
      2000,
    );
  });
});
