/**
 * Redis unavailable: the receiver answers 503 within a second (fail fast, no offline queue), acknowledges nothing
 * it did not store, and recovers when Redis is back. Uses a private redis-server so it can be killed and frozen.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type Service, startService } from "../../src/runtime.js";
import { captureLogger } from "../support/capture-logger.js";
import { uniquePrefix } from "../support/redis.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { testConfig } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";
import { commandNote, postWebhook } from "../support/webhook-client.js";

let redisServer: RedisServer;
let service: Service;
let url: string;

before(async () => {
  redisServer = await startRedisServer();
  const config = testConfig(uniquePrefix(), { redis: { url: redisServer.url } });
  service = await startService({ config, logger: captureLogger("warn").logger, roles: { receiver: true } });
  url = service.receiverUrl!;
});

after(async () => {
  await service.close();
  redisServer.thaw();
  await redisServer.kill();
});

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

describe("receiver with Redis down", () => {
  it("answers 503 within a second when Redis is gone, and 202 again once it is back", async () => {
    assert.equal((await postWebhook(url, commandNote("/trust", 1), { event: "Note Hook" })).status, 202);

    await redisServer.kill();
    const key = randomUUID();
    const down = await timed(() =>
      postWebhook(url, commandNote("/trust", 2), { event: "Note Hook", idempotencyKey: key }),
    );
    assert.equal(down.value.status, 503);
    assert.deepEqual(down.value.body, { status: "unavailable", reason: "the event could not be stored; retry later" });
    assert.ok(down.ms < 1000, `503 after ${down.ms.toFixed(0)} ms`);
    const ready = await timed(() => fetch(`${url}/readyz`));
    assert.equal(ready.value.status, 503);
    assert.ok(ready.ms < 1500, `/readyz answered after ${ready.ms.toFixed(0)} ms`);
    // Ignored events need no storage, so they are still acknowledged.
    const ignored = await postWebhook(url, { object_kind: "build" }, { event: "Job Hook" });
    assert.equal(ignored.status, 200);

    await redisServer.start();
    await waitFor("/readyz after Redis is back", async () => (await fetch(`${url}/readyz`)).status === 200);
    // The refused delivery was not remembered: its resend is queued, not called a duplicate.
    const resent = await postWebhook(url, commandNote("/trust", 2), { event: "Note Hook", idempotencyKey: key });
    assert.equal(resent.status, 202);
    assert.equal(
      (await service.inbox.read()).length,
      1,
      "the job queued before the outage died with Redis",
    );
  });

  it("answers 503 within a second when Redis hangs; the delivery is then stored exactly once", async () => {
    const key = randomUUID();
    redisServer.freeze();
    try {
      const hung = await timed(() =>
        postWebhook(url, commandNote("/trust", 3), { event: "Note Hook", idempotencyKey: key }),
      );
      assert.equal(hung.value.status, 503);
      assert.ok(hung.ms < 1000, `503 after ${hung.ms.toFixed(0)} ms`);
    } finally {
      redisServer.thaw();
    }
    await waitFor("/readyz after Redis is back", async () => (await fetch(`${url}/readyz`)).status === 200);
    // The script sent while Redis was frozen runs when it thaws (the 503 only meant "not known to be stored"):
    // GitLab's manual resend must then be a duplicate, not a second copy. Either way the event is stored once.
    const resent = await postWebhook(url, commandNote("/trust", 3), { event: "Note Hook", idempotencyKey: key });
    const copies = (await service.inbox.read()).filter((entry) => entry.deliveryId === key);
    assert.equal(copies.length, 1, "stored exactly once");
    assert.equal(resent.status, 200);
    assert.deepEqual(resent.body, { status: "duplicate" });
  });
});
