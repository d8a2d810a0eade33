/**
 * The shared GitLab call budget (src/gitlab/call-budget.ts) against real Redis: two budgets on two connections stand
 * for two processes. The window is shortened so that "wait for the next window" takes a second, not a minute.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { createCallBudget } from "../../src/gitlab/call-budget.js";
import { RateLimitedError } from "../../src/errors.js";
import type { Redis } from "../../src/redis.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";

const GITLAB = "http://gitlab.example.com";

describe("call budget", () => {
  let a: Redis;
  let b: Redis;
  const prefixes: string[] = [];

  before(() => {
    a = testRedis();
    b = testRedis();
  });
  afterEach(async () => {
    for (const prefix of prefixes.splice(0)) await deletePrefix(a, prefix);
  });
  after(async () => {
    await a.quit();
    await b.quit();
  });

  function pair(limit: number, windowMs: number, maxWaitMs = 5000) {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const options = { prefix, gitlabUrl: GITLAB, limit, windowMs, maxWaitMs };
    return [createCallBudget({ ...options, redis: a }), createCallBudget({ ...options, redis: b })] as const;
  }

  /**
   * Waits, if need be, for the next window of `windowMs` (by Redis's clock, as the budget counts), so that at least
   * `roomMs` of the current one is left for the test's calls.
   */
  async function windowWithRoom(windowMs: number, roomMs = windowMs): Promise<void> {
    const [seconds, micros] = await a.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const left = windowMs - (now % windowMs);
    if (left < roomMs) await new Promise((resolve) => setTimeout(resolve, left + 5));
  }

  it("the N+1-th call in a window, from either process, waits for the next window", async () => {
    const [first, second] = pair(3, 1000);
    await windowWithRoom(1000);
    const started = Date.now();
    await first.acquire("command");
    await second.acquire("command");
    await first.acquire("command");
    assert.ok(Date.now() - started < 300, "the first three calls did not wait");
    await second.acquire("command");
    const waited = Date.now() - started;
    assert.ok(waited >= 900, `the fourth call waited for the next window (${waited} ms)`);
  });

  it("when the budget is tight, a sweep waits first, then a reconcile; a command still goes", async () => {
    const [first, second] = pair(10, 60_000, 0);
    await windowWithRoom(60_000, 2000);
    for (let i = 0; i < 8; i++) await first.acquire("command");
    await assert.rejects(second.acquire("sweep"), RateLimitedError, "the sweep yields the last 20 %");
    await second.acquire("reconcile");
    await assert.rejects(first.acquire("reconcile"), RateLimitedError, "reconciles yield the last 10 %");
    await second.acquire("command");
    await assert.rejects(first.acquire("command"), RateLimitedError, "the window is spent");
  });

  it("a pause set by one process holds the other's next call", async () => {
    const [first, second] = pair(0, 60_000);
    await first.pause(700);
    const started = Date.now();
    await second.acquire("command");
    assert.ok(Date.now() - started >= 650, `waited out the pause (${Date.now() - started} ms)`);
  });

  it("a wait longer than the bound throws RateLimitedError with the wait, for the worker to delay the job", async () => {
    const [first, second] = pair(0, 60_000, 1000);
    await first.pause(20_000);
    const started = Date.now();
    const error = await second.acquire("command").then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof RateLimitedError);
    assert.ok(error.retryAfterMs > 19_000 && error.retryAfterMs <= 20_000, String(error.retryAfterMs));
    assert.ok(Date.now() - started < 500, "did not sit on the wait first");
  });
});
