/** The MR record in Redis (store.ts): cache, intent, hints and pass markers, against a real Redis under a fresh prefix. */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type CommandIntent, type MrCache, TrustStore } from "../../src/trust/store.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";

const redis = testRedis();
const prefix = uniquePrefix();
const store = new TrustStore(redis, prefix);
let nextIid = 1;
const freshMr = () => ({ projectId: 1, mrIid: nextIid++ });

after(async () => {
  await deletePrefix(redis, prefix);
  await redis.quit();
});

describe("TrustStore hints", () => {
  it("keeps one pipeline hint per (pipeline, status): a later event does not overwrite an earlier status", async () => {
    const mr = freshMr();
    await store.hintPipeline(mr, 5, "failed");
    await store.hintPipeline(mr, 5, "running");
    await store.hintPipeline(mr, 5, "failed");
    const hints = (await store.record(mr)).hints;
    assert.deepEqual(hints.pipelines.map((h) => `${h.id}:${h.status}`).sort(), ["5:failed", "5:running"]);
    assert.equal(hints.full, false);
  });

  it("a withdrawn hint is gone, unless the same status was reported again since", async () => {
    const mr = freshMr();
    const { hint: first } = await store.hintPipeline(mr, 5, "running");
    await store.withdrawHint(mr, first);
    assert.deepEqual((await store.record(mr)).hints.pipelines, []);
    const { hint: second } = await store.hintPipeline(mr, 5, "running");
    await store.hintPipeline(mr, 5, "running");
    await store.withdrawHint(mr, second);
    assert.deepEqual((await store.record(mr)).hints.pipelines, [{ id: 5, status: "running" }]);
  });

  it("reads the older one-field-per-pipeline hints, and takes an unreadable hint as a reason to read everything", async () => {
    const mr = freshMr();
    const key = `${prefix}:trust:record:${mr.projectId}:${mr.mrIid}`;
    await redis.hset(key, "pipeline:7", JSON.stringify({ status: "success", n: "x" }));
    assert.deepEqual((await store.record(mr)).hints.pipelines, [{ id: 7, status: "success" }]);
    await redis.hset(key, "pipeline:8:failed", "not json");
    assert.equal((await store.record(mr)).hints.full, true);
  });
});

describe("TrustStore pass markers", () => {
  it("a pass clears what it read, returns what came meanwhile, and keeps its marker until nothing is left", async () => {
    const mr = freshMr();
    const { token } = await store.beginPass(mr, 30_000);
    assert.equal(await store.passRunning(mr), true);
    await store.hintPipeline(mr, 5, "running");
    const read = (await store.record(mr)).hints;

    // Written while the pass ran: a new status, and the same status again (a new value in the same field).
    await store.hintPipeline(mr, 5, "failed");
    await store.hintPipeline(mr, 5, "running");
    const late = await store.endPass(mr, read, token);
    assert.deepEqual(late.pipelines.map((h) => h.status).sort(), ["failed", "running"]);
    assert.equal(await store.passRunning(mr), true, "the marker stays while hints are left");

    assert.deepEqual(Object.keys((await store.endPass(mr, late, token)).raw), []);
    assert.equal(await store.passRunning(mr), false, "the marker goes with the last hint");
  });

  it("a pass that read nothing new ends at once; another job's token never removes the marker", async () => {
    const mr = freshMr();
    const { token } = await store.beginPass(mr, 30_000);
    const { token: other } = await store.beginPass(mr, 30_000);
    assert.deepEqual(Object.keys((await store.endPass(mr, (await store.record(mr)).hints, token)).raw), []);
    assert.equal(await store.passRunning(mr), true, "the marker is the other job's now");
    await store.endPass(mr, (await store.record(mr)).hints, other);
    assert.equal(await store.passRunning(mr), false);
  });

  it("the next pass of a job renews its marker, but never takes over another job's", async () => {
    const mr = freshMr();
    const { token } = await store.beginPass(mr, 30_000);
    await store.abandonPass(mr, token);
    await store.renewPass(mr, 30_000, token);
    assert.equal(await store.passRunning(mr), true, "set again after it was gone");
    const { token: other } = await store.beginPass(mr, 30_000);
    await store.renewPass(mr, 30_000, token);
    await store.abandonPass(mr, token);
    assert.equal(await store.passRunning(mr), true, "the other job's marker stays");
    await store.abandonPass(mr, other);
    assert.equal(await store.passRunning(mr), false);
  });

  it("abandoning a pass removes its marker and clears nothing", async () => {
    const mr = freshMr();
    const { token } = await store.beginPass(mr, 30_000);
    await store.hintPipeline(mr, 9, "canceled");
    const left = await store.abandonPass(mr, token);
    assert.deepEqual(left.pipelines, [{ id: 9, status: "canceled" }]);
    assert.equal(await store.passRunning(mr), false);
    assert.deepEqual((await store.record(mr)).hints.pipelines, [{ id: 9, status: "canceled" }]);
  });

  it("the marker expires on its own when its process is gone", async () => {
    const mr = freshMr();
    await store.beginPass(mr, 50);
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(await store.passRunning(mr), false);
  });
});

describe("TrustStore record", () => {
  const cache: MrCache = { noteId: 3, noteBody: "<!-- note -->", committerBranch: false, sourceBranch: "feature" };
  const intent = (noteId: number, at = new Date().toISOString()): CommandIntent => ({
    command: "trust",
    sha: "a".repeat(40),
    by: "maya",
    at,
    noteId,
  });

  it("a pass starts from the cache, the intent, the hints and whether actions are pending, read in one step", async () => {
    const mr = freshMr();
    await store.remember(mr, cache);
    await store.writeIntent(mr, intent(11));
    await store.hintFull(mr);
    await store.hintPipeline(mr, 4, "running");
    const { record } = await store.beginPass(mr, 30_000);
    assert.deepEqual(record.cache, cache);
    assert.equal(record.intent?.noteId, 11);
    assert.equal(record.hints.full, true);
    assert.deepEqual(record.hints.pipelines, [{ id: 4, status: "running" }]);
    assert.deepEqual(Object.keys(record.hints.raw).sort(), ["full", "pipeline:4:running"], "only hints are hints");
    assert.equal(record.pending, false);
    await store.putPending(mr, [{ key: "award:1", action: { type: "award" } }]);
    assert.equal((await store.beginPass(mr, 30_000)).record.pending, true);
  });

  it("a pipeline hint answers, in the same step, whether a pass is running and what the cache says", async () => {
    const mr = freshMr();
    const before = await store.hintPipeline(mr, 5, "running");
    assert.equal(before.passRunning, false);
    assert.equal(before.cache, undefined);
    await store.remember(mr, cache);
    const { token } = await store.beginPass(mr, 30_000);
    const during = await store.hintPipeline(mr, 5, "success");
    assert.equal(during.passRunning, true);
    assert.deepEqual(during.cache, cache);
    await store.abandonPass(mr, token);
    assert.equal((await store.hintPipeline(mr, 5, "failed")).passRunning, false);
  });

  it("remembering forgets the intent the note now records, never a newer one written since", async () => {
    const mr = freshMr();
    const first = intent(11);
    await store.writeIntent(mr, first);
    await store.writeIntent(mr, intent(12));
    await store.remember(mr, cache, first);
    assert.equal((await store.record(mr)).intent?.noteId, 12, "a newer intent stays");
    const second = (await store.record(mr)).intent;
    assert.ok(second);
    await store.remember(mr, cache, second);
    assert.equal((await store.record(mr)).intent, undefined);
    assert.deepEqual(await store.getMrCache(mr), cache);
  });

  it("an intent stops counting a day after its command (no grant by a long-gone command)", async () => {
    const mr = freshMr();
    await store.writeIntent(mr, intent(13, new Date(Date.now() - 25 * 3600_000).toISOString()));
    assert.equal((await store.record(mr)).intent, undefined);
    await store.writeIntent(mr, intent(14, new Date(Date.now() - 23 * 3600_000).toISOString()));
    assert.equal((await store.record(mr)).intent?.noteId, 14);
  });

  it("a hint this version does not know (an older version's, say) asks for a full look", async () => {
    const mr = freshMr();
    await redis.hset(`${prefix}:trust:record:${mr.projectId}:${mr.mrIid}`, "listed", "{}");
    assert.equal((await store.record(mr)).hints.full, true);
  });

  it("the caches of many MRs come back in order, with holes where there is none", async () => {
    const a = freshMr();
    const b = freshMr();
    await store.remember(a, cache);
    await store.remember(b, { ...cache, noteId: 9 });
    const got = await store.getMrCaches([a, freshMr(), b]);
    assert.deepEqual(
      got.map((c) => c?.noteId ?? null),
      [3, null, 9],
    );
  });
});

describe("TrustStore scripts", () => {
  it("are sent by hash, and again in full when Redis lost them (a failover, SCRIPT FLUSH)", async () => {
    const mr = freshMr();
    await store.hintFull(mr);
    await redis.script("FLUSH");
    const { token, record } = await store.beginPass(mr, 30_000);
    assert.equal(record.hints.full, true);
    assert.deepEqual(Object.keys((await store.endPass(mr, record.hints, token)).raw), []);
  });
});

describe("TrustStore sweep claim", () => {
  it("a pass's claim lives as long as it is renewed, and only its own token renews it", async () => {
    const own = new TrustStore(redis, uniquePrefix());
    const token = await own.claimSweep(150);
    assert.ok(token);
    assert.equal(await own.renewSweep("someone-else", 60_000), false);
    assert.equal(await own.renewSweep(token, 400), true);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(await own.claimSweep(60_000), undefined, "still held after its first lifetime: renewed");
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.ok(await own.claimSweep(60_000), "gone once no longer renewed (its process died)");
  });
});
