/**
 * The shared GitLab call budget (src/gitlab/call-budget.ts) against real Redis: two budgets on two connections stand
 * for two processes. The window is shortened so that "wait for the next window" takes a second, not a minute.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { type CallBudget, createCallBudget, LEASE_SLOTS, LEASE_TTL_MS } from "../../src/gitlab/call-budget.js";
import { RateLimitedError } from "../../src/errors.js";
import type { Redis } from "../../src/redis.js";
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from "../support/redis.js";

const GITLAB = "http://gitlab.example.com";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("call budget", () => {
  let a: Redis;
  let b: Redis;
  const prefixes: string[] = [];
  const budgets: CallBudget[] = [];

  before(() => {
    a = testRedis();
    b = testRedis();
  });
  afterEach(async () => {
    for (const budget of budgets.splice(0)) await budget.close();
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
    const made = [createCallBudget({ ...options, redis: a }), createCallBudget({ ...options, redis: b })] as const;
    budgets.push(...made);
    return made;
  }

  /** The slots counted in the current window of `prefix` (the budget's key, read as an operator would). */
  async function counted(prefix: string): Promise<number> {
    const keys = await a.keys(`${prefix}:gitlab-budget:*:window:*`);
    const values = keys.length ? await a.mget(keys) : [];
    return values.reduce((sum, v) => sum + Number(v ?? 0), 0);
  }

  /** Resolves once `count` processes' budgets of `prefix` listen for pauses (a lease needs that). */
  async function listening(prefix: string, count: number): Promise<void> {
    const channel = `${prefix}:gitlab-budget:${GITLAB}:paused`;
    for (let i = 0; i < 200; i++) {
      const [, subscribers] = (await a.pubsub("NUMSUB", channel)) as [string, number];
      if (Number(subscribers) >= count) return;
      await sleep(10);
    }
    throw new Error(`no ${count} subscribers on ${channel}`);
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

  /**
   * Two processes' budgets of `limit` per minute, in a window with room, the second one listening for pauses: it has
   * made one call (one slot, as it did not listen yet), so its next call may take a lease.
   */
  async function listeningPair(limit: number) {
    const [first, second] = pair(limit, 60_000);
    await windowWithRoom(60_000, 5000);
    const prefix = prefixes.at(-1) ?? "";
    await second.acquire("reconcile");
    assert.equal(await counted(prefix), 1, "not listening for pauses yet: one slot, no lease");
    await listening(prefix, 1);
    return { first, second, prefix };
  }

  /**
   * Makes calls on `budget` until one takes a whole lease (the count grows by {@link LEASE_SLOTS}: a busy process),
   * then spends that lease: the process holds no slot and has made at least LEASE_SLOTS calls within the last second.
   */
  async function busyWithoutLease(budget: CallBudget, prefix: string): Promise<void> {
    for (let i = 0; i < 4 * LEASE_SLOTS; i++) {
      const before = await counted(prefix);
      await budget.acquire("reconcile");
      if ((await counted(prefix)) - before === LEASE_SLOTS) {
        for (let j = 1; j < LEASE_SLOTS; j++) await budget.acquire("reconcile");
        return;
      }
    }
    throw new Error("no whole lease was taken");
  }

  /** A {@link listeningPair} of 1000 per minute whose second process holds a lease of LEASE_SLOTS - 1 slots. */
  async function secondHoldsLease() {
    const pair = await listeningPair(1000);
    await busyWithoutLease(pair.second, pair.prefix);
    const before = await counted(pair.prefix);
    await pair.second.acquire("reconcile");
    assert.equal(await counted(pair.prefix), before + LEASE_SLOTS, "the second process holds a lease");
    return pair;
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

  it("far from the limit, a busy process leases slots and spends them without asking Redis", async () => {
    const { second, prefix } = await listeningPair(1000);
    await busyWithoutLease(second, prefix);
    const before = await counted(prefix);
    await second.acquire("reconcile");
    assert.equal(await counted(prefix), before + LEASE_SLOTS, "one request took a lease");
    for (let i = 1; i < LEASE_SLOTS; i++) await second.acquire("reconcile");
    assert.equal(await counted(prefix), before + LEASE_SLOTS, "the lease's slots were spent without counting again");
    await second.acquire("reconcile");
    assert.equal(await counted(prefix), before + 2 * LEASE_SLOTS, "a spent lease: the next call asks for another");
  });

  it("a process that calls less than once a second takes one slot per call: no lease to leave unspent", async () => {
    const { second, prefix } = await listeningPair(1000);
    for (let i = 0; i < 3; i++) {
      await sleep(LEASE_TTL_MS + 50);
      const before = await counted(prefix);
      await second.acquire("reconcile");
      assert.equal(await counted(prefix), before + 1, `call ${i + 1}, a second after the one before`);
    }
  });

  it("leases granted to concurrent calls add up: their slots are spent before Redis is asked again", async () => {
    const { second, prefix } = await listeningPair(1000);
    await busyWithoutLease(second, prefix);
    const before = await counted(prefix);
    await Promise.all(Array.from({ length: 4 }, () => second.acquire("reconcile")));
    assert.equal(await counted(prefix), before + 4 * LEASE_SLOTS, "four requests in flight at once, a lease each");
    for (let i = 0; i < 4 * (LEASE_SLOTS - 1); i++) await second.acquire("reconcile");
    assert.equal(await counted(prefix), before + 4 * LEASE_SLOTS, "all their leased slots were spent, none counted");
  });

  it("past half of the window no lease is granted: every call counts one slot", async () => {
    const { second, prefix } = await listeningPair(40);
    await busyWithoutLease(second, prefix);
    const before = await counted(prefix);
    assert.ok(before + LEASE_SLOTS > 20, `a lease would pass half of 40 (${before} counted)`);
    for (let i = 1; i <= 3; i++) {
      await second.acquire("command");
      assert.equal(await counted(prefix), before + i, "one slot per call");
    }
  });

  it("a pause set by one process drops the other's lease: its next call waits out the pause", async () => {
    const { first, second } = await secondHoldsLease();
    await first.pause(700);
    // The pause reaches the other process as a pub/sub message, a few ms after the pause is set.
    await sleep(50);
    const started = Date.now();
    await second.acquire("command");
    assert.ok(Date.now() - started >= 600, `waited out the pause (${Date.now() - started} ms)`);
  });

  it("a lease ends with its process's subscription: a pause missed meanwhile still holds the next call", async () => {
    const { first, second, prefix } = await secondHoldsLease();
    const clients = String(await a.call("CLIENT", "LIST", "TYPE", "pubsub"));
    const listener = clients.split("\n").find((line) => line.includes(`name=trusted-mr-bot:budget:${prefix} `));
    const id = listener?.match(/\bid=(\d+)/)?.[1];
    assert.ok(id, "the budget's listening connection is named after its prefix");
    await a.client("KILL", "ID", id);
    await sleep(30);
    // Published while the second process is not subscribed: it never hears of this pause.
    await first.pause(700);
    const started = Date.now();
    await second.acquire("command");
    assert.ok(Date.now() - started >= 600, `waited out the pause (${Date.now() - started} ms)`);
  });

  it("a Redis user without channel permissions still pauses every process and takes no lease", async () => {
    const user = `tmr-budget-${process.pid}`;
    await a.acl("SETUSER", user, "reset", "on", ">budget-test", "~*", "+@all", "resetchannels");
    const url = new URL(REDIS_URL);
    url.username = user;
    url.password = "budget-test";
    const restricted = [testRedis(url.toString()), testRedis(url.toString())];
    try {
      const prefix = uniquePrefix();
      prefixes.push(prefix);
      const options = { prefix, gitlabUrl: GITLAB, limit: 1000, windowMs: 60_000, maxWaitMs: 5000 };
      const told: unknown[] = [];
      const [first, second] = restricted.map((redis) =>
        createCallBudget({ ...options, redis, onNoLeases: (error) => told.push(error) }),
      );
      budgets.push(first as CallBudget, second as CallBudget);
      await windowWithRoom(60_000, 5000);
      await second?.acquire("reconcile");
      await sleep(100);
      await second?.acquire("reconcile");
      assert.equal(await counted(prefix), 2, "no subscription, so no lease: one slot per call");
      assert.match(String(told[0]), /NOPERM/, "the refusal is told (the workflow logs it)");
      assert.equal(told.length, 1, "once: only the process that tried to listen");
      await first?.pause(700);
      const started = Date.now();
      await second?.acquire("command");
      assert.ok(Date.now() - started >= 600, `waited out the pause (${Date.now() - started} ms)`);
    } finally {
      for (const budget of budgets.splice(0)) await budget.close();
      for (const redis of restricted) await redis.quit();
      await a.acl("DELUSER", user);
    }
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
