/**
 * The inbox between receiver and queue, against a real Redis: stored once per delivery, moved into BullMQ by the
 * pump, acknowledged only after the enqueue, and taken over from a pump that died holding entries.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import type { Redis } from "ioredis";
import { measureDedupMemory } from "../../bench/dedup-memory.js";
import {
  commandKey,
  createInboxStore,
  deliveryKey,
  inboxKey,
  readInbox,
  startInboxPump,
} from "../../src/queue/inbox.js";
import type { JobData } from "../../src/queue/jobs.js";
import { type BotQueue, createQueue } from "../../src/queue/queue.js";
import { captureLogger } from "../support/capture-logger.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";
import { testConfig } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";

let redis: Redis;
const cleanups: Array<() => Promise<unknown>> = [];

before(() => {
  redis = testRedis();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  await redis.quit();
});

function setup() {
  const prefix = uniquePrefix();
  const config = testConfig(prefix);
  const queue: BotQueue = createQueue(redis, config);
  cleanups.push(() => deletePrefix(redis, prefix), () => queue.close());
  return { config, queue, store: createInboxStore(redis, config), log: captureLogger() };
}

const command = (noteId: number, action: "create" | "update" = "create"): JobData => ({
  kind: "command",
  projectId: 1,
  mrIid: 2,
  noteId,
  body: "/trust",
  action,
  system: false,
  author: { id: 3, username: "maria" },
});
const reconcile: JobData = { kind: "reconcile", projectId: 1, mrIid: 2, reason: "Merge Request Hook:update" };

describe("inbox", () => {
  it("stores a delivery once; a second accept of the same id is a duplicate", async () => {
    const { config, store } = setup();
    assert.equal(await store.accept("d1", [command(10)]), "queued");
    assert.equal(await store.accept("d1", [command(10)]), "duplicate");
    const entries = await readInbox(redis, config);
    assert.equal(entries.length, 1);
    assert.deepEqual(entries[0]?.jobs, [command(10)]);
    assert.ok((await redis.pttl(deliveryKey(config, "d1"))) > 0, "the delivery id expires");
  });

  it("remembers a delivery id as a 16-byte digest for the dedup TTL: a resend within it is a duplicate", async () => {
    const { config, store } = setup();
    const id = "0b7a3c1e-8d2f-4e5a-9c6b-1f2e3d4c5b6a"; // an Idempotency-Key is a UUID
    assert.equal(await store.accept(id, [command(11)]), "queued");
    const keys = await redis.keys(`${config.redis.prefix}:delivery:*`);
    assert.deepEqual(keys, [deliveryKey(config, id)], "one key, named by the digest, not the id");
    assert.equal(keys[0]!.length - `${config.redis.prefix}:delivery:`.length, 22, "16 bytes, base64url");
    const ttl = await redis.pttl(keys[0]!);
    assert.ok(ttl > (config.webhook.dedup_ttl_seconds - 60) * 1000, `kept for the dedup TTL (${ttl} ms)`);
    // A manual "Resend" later in the window (GitLab sends the same Idempotency-Key again).
    await redis.pexpire(keys[0]!, 1000);
    assert.equal(await store.accept(id, [command(11)]), "duplicate");
    assert.equal((await readInbox(redis, config)).length, 1, "stored once");
  });

  it("remembers a command note for the command TTL: the same note under another delivery id is a duplicate", async () => {
    const { config, store } = setup();
    assert.equal(await store.accept("d1", [command(31)]), "queued");
    assert.equal(await store.accept("d2", [command(31)]), "duplicate", "another delivery id, the same note");
    assert.equal(await store.accept("d3", [command(31, "update")]), "queued", "its edit is another job");
    assert.equal(await store.accept("d4", [command(32)]), "queued", "another note");
    assert.deepEqual(
      (await readInbox(redis, config)).map((e) => e.deliveryId),
      ["d1", "d3", "d4"],
      "the duplicate stored nothing",
    );
    const commandTtl = await redis.pttl(commandKey(config, { projectId: 1, noteId: 31, action: "create" }));
    assert.ok(commandTtl > (config.webhook.command_dedup_ttl_seconds - 60) * 1000, `note kept ${commandTtl} ms`);
    const deliveryTtl = await redis.pttl(deliveryKey(config, "d1"));
    assert.ok(deliveryTtl <= config.webhook.dedup_ttl_seconds * 1000, `delivery id kept ${deliveryTtl} ms`);
  });

  it("after the delivery window a resent command is still a duplicate, a resent hint is stored again", async () => {
    const prefix = uniquePrefix();
    const config = testConfig(prefix, { webhook: { dedup_ttl_seconds: 1 } });
    cleanups.push(() => deletePrefix(redis, prefix));
    const store = createInboxStore(redis, config);
    assert.equal(await store.accept("note-delivery", [command(41)]), "queued");
    assert.equal(await store.accept("mr-delivery", [reconcile]), "queued");
    await waitFor("the delivery ids to expire", async () => (await redis.exists(deliveryKey(config, "mr-delivery"))) === 0);
    // GitLab's "Resend" of both, days later: the same Idempotency-Keys.
    assert.equal(await store.accept("note-delivery", [command(41)]), "duplicate", "the command is not stored twice");
    assert.equal(await store.accept("mr-delivery", [reconcile]), "queued", "the hint is: it only asks for a look");
    assert.deepEqual(
      (await readInbox(redis, config)).map((e) => e.deliveryId),
      ["note-delivery", "mr-delivery", "mr-delivery"],
    );
  });

  it("dedupe memory at 10 webhooks/s with 5 % commands stays under 64 MiB (INFO memory, private redis-server)", async (t) => {
    const m = await measureDedupMemory({ deliveries: 20_000, rate: 10, commandShare: 0.05 });
    const mib = m.steadyBytes / (1024 * 1024);
    t.diagnostic(
      `${mib.toFixed(1)} MiB: ${m.bytesPerKey.toFixed(0)} B per key, delivery ids kept ${m.deliveryTtlSeconds.toFixed(0)} s, ` +
        `command notes ${m.commandTtlSeconds.toFixed(0)} s`,
    );
    assert.ok(mib <= 64, `${mib.toFixed(1)} MiB`);
  });

  it("the running pump moves entries into the queue, coalescing reconciles, and then deletes them", async () => {
    const { config, queue, store, log } = setup();
    const pump = await startInboxPump({ redis, queue, config, logger: log.logger });
    cleanups.push(() => pump.stop());
    await store.accept("a", [reconcile]);
    await store.accept("b", [reconcile]);
    await store.accept("c", [command(11)]);
    await store.accept("d", [command(12)]);
    await waitFor("the inbox to be empty", async () => (await redis.xlen(inboxKey(config))) === 0);
    const jobs = (await queue.getJobs(["waiting", "prioritized"])).map((j) => j.data);
    assert.equal(jobs.filter((j) => j.kind === "reconcile").length, 1, "reconciles of one MR coalesce");
    assert.deepEqual(jobs.filter((j) => j.kind === "command").map((j) => (j.kind === "command" ? j.noteId : 0)).sort(), [
      11, 12,
    ]);
    const pending = (await redis.xpending(inboxKey(config), "pump")) as unknown[];
    assert.equal(pending[0], 0, "nothing left unacknowledged");
  });

  it("entries a dead pump took but never acknowledged are moved by another pump", async () => {
    const { config, queue, store, log } = setup();
    await store.accept("e", [command(13)]);
    // A pump that read the entry and died before the enqueue: the group exists, the entry is pending for it.
    const first = await startInboxPump({ redis, queue, config, logger: log.logger, run: false });
    await redis.call("XREADGROUP", "GROUP", "pump", "dead-consumer", "COUNT", 10, "STREAMS", inboxKey(config), ">");
    await first.stop();
    assert.equal((await queue.getJobs(["waiting", "prioritized"])).length, 0);

    const pump = await startInboxPump({ redis, queue, config, logger: log.logger, claimIdleMs: 200 });
    cleanups.push(() => pump.stop());
    await waitFor("the abandoned entry to be queued", async () => (await queue.getJobs(["waiting", "prioritized"])).length === 1);
    await waitFor("the inbox to be empty", async () => (await redis.xlen(inboxKey(config))) === 0);
    assert.equal((await queue.getJobs(["waiting", "prioritized"]))[0]?.id, "command-1-13-create");
  });

  it("drops an entry that is not valid JSON with an error line, and moves the rest", async () => {
    const { config, queue, store, log } = setup();
    await redis.xadd(inboxKey(config), "*", "id", "bad", "jobs", "{not json");
    await store.accept("f", [command(14)]);
    const pump = await startInboxPump({ redis, queue, config, logger: log.logger, run: false });
    assert.equal(await pump.drain(), 1);
    assert.equal(await redis.xlen(inboxKey(config)), 0);
    assert.ok(log.lines.some((l) => l["msg"] === "inbox entry is not valid; dropped"));
    assert.equal((await queue.getJobs(["waiting", "prioritized"])).length, 1);
  });
});
