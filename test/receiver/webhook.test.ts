/**
 * The receiver over real HTTP against a real Redis: verification, dedupe, routing answers, limits, and what is
 * (not) stored. Each test gets its own key prefix.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, afterEach, before, describe, it } from "node:test";
import { sign } from "@octokit/webhooks-methods";
import type { Config } from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";
import { deliveryKey } from "../../src/queue/inbox.js";
import type { JobData } from "../../src/queue/jobs.js";
import { signStandardWebhook } from "../../src/receiver/verify-signature.js";
import { type Service, startService } from "../../src/runtime.js";
import type { Redis } from "../../src/redis.js";
import { captureLogger } from "../support/capture-logger.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";
import { TEST_SECRET, testConfig } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";
import { commandNote, examplePayload, postWebhook } from "../support/webhook-client.js";

const SIGNING_TOKEN = `whsec_${Buffer.from("a-signing-key-of-32-bytes-length").toString("base64")}`;
const RELAY_SECRET = "relay-shared-secret";

let redis: Redis;
const started: Array<{ service: Service; prefix: string }> = [];

before(() => {
  redis = testRedis();
});
afterEach(async () => {
  for (const { service, prefix } of started.splice(0)) {
    await service.close();
    await deletePrefix(redis, prefix);
  }
});
after(async () => {
  await redis.quit();
});

async function receiver(overrides: Parameters<typeof testConfig>[1] = {}) {
  const prefix = uniquePrefix();
  const config = testConfig(prefix, overrides);
  const log = captureLogger();
  const service = await startService({ config, logger: log.logger, roles: { receiver: true } });
  started.push({ service, prefix });
  return { service, url: service.receiverUrl!, prefix, config, log };
}

/** What the receiver stored: the jobs in the inbox, which the worker's pump moves into the queue. */
async function storedJobs(service: Service): Promise<JobData[]> {
  return (await service.inbox.read()).flatMap((entry) => entry.jobs);
}

/** The jobs in the BullMQ queue once the inbox has been moved there. */
async function queuedJobs(service: Service) {
  await service.inbox.drain();
  return service.queue.getJobs(["waiting", "delayed", "active", "prioritized"]);
}

async function deliveryKeys(prefix: string): Promise<string[]> {
  return redis.keys(`${prefix}:delivery:*`);
}

describe("receiver: X-Gitlab-Token", () => {
  it("refuses a missing token with 401 and stores nothing", async () => {
    const { service, url, prefix } = await receiver();
    const res = await postWebhook(url, commandNote("/trust"), { event: "Note Hook", token: null });
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, {
      status: "unauthorized",
      reason: "X-Gitlab-Token is missing or wrong; check that the hook's secret token matches webhook.secret",
    });
    assert.deepEqual(await storedJobs(service), []);
    assert.deepEqual(await deliveryKeys(prefix), []);
  });

  it("refuses a wrong token with 401 and stores nothing, also before reading a large body", async () => {
    const { service, url, prefix } = await receiver({ webhook: { body_limit: 1024 } });
    const wrong = await postWebhook(url, commandNote("/trust"), { event: "Note Hook", token: `${TEST_SECRET}x` });
    assert.equal(wrong.status, 401);
    const big = await postWebhook(url, "x".repeat(64 * 1024), { event: "Note Hook", token: "nope" });
    assert.equal(big.status, 401, "an unauthenticated body over the limit is a 401, not a 413");
    assert.deepEqual(await storedJobs(service), []);
    assert.deepEqual(await deliveryKeys(prefix), []);
  });

  it("refuses to start without a secret unless webhook.insecure is set", async () => {
    const config = testConfig(uniquePrefix());
    const withoutSecret: Config = { ...config, webhook: { ...config.webhook, secret: undefined } };
    await assert.rejects(
      startService({ config: withoutSecret, logger: captureLogger().logger, roles: { receiver: true } }),
      (error: unknown) => error instanceof ConfigError && /webhook\.secret/.test(error.message),
    );
    const prefix = uniquePrefix();
    const insecure: Config = { ...withoutSecret, webhook: { ...withoutSecret.webhook, insecure: true } };
    const service = await startService({
      config: { ...insecure, redis: { ...insecure.redis, prefix } },
      logger: captureLogger().logger,
      roles: { receiver: true },
    });
    started.push({ service, prefix });
    const res = await postWebhook(service.receiverUrl!, commandNote("/trust"), { event: "Note Hook", token: null });
    assert.equal(res.status, 202);
  });
});

describe("receiver: queueing and dedupe", () => {
  it("queues a /trust note as one command job carrying the event id", async () => {
    const { service, url, config, log } = await receiver();
    const key = randomUUID();
    const t0 = performance.now();
    const res = await postWebhook(url, commandNote("/trust", 501), { event: "Note Hook", idempotencyKey: key });
    const elapsed = performance.now() - t0;
    assert.equal(res.status, 202);
    assert.deepEqual(res.body, { status: "queued", jobs: 1 });
    assert.ok(elapsed < 250, `answered in ${elapsed.toFixed(1)} ms`);
    assert.equal((await storedJobs(service)).length, 1, "stored in the inbox before the answer");
    const jobs = await queuedJobs(service);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0]?.id, "command-5-501-create");
    assert.deepEqual(jobs[0]?.data, {
      kind: "command",
      projectId: 5,
      mrIid: 1,
      noteId: 501,
      noteUrl: "http://example.com/gitlab-org/gitlab-test/merge_requests/1#note_1244",
      body: "/trust",
      action: "create",
      system: false,
      author: { id: 1, username: "root" },
      seenSha: "562e173be03b8ff2efb05345d12df18815438a4b",
      mrState: "opened",
      eventId: key,
    });
    const ttl = await redis.pttl(deliveryKey(config, key));
    assert.ok(ttl > (config.webhook.dedup_ttl_seconds - 60) * 1000, `delivery key kept for the dedup TTL (${ttl} ms)`);
    const line = log.lines.find((l) => l["msg"] === "webhook queued");
    assert.equal(line?.["eventId"], key);
    assert.equal(line?.["projectId"], 5);
    assert.equal(line?.["mrIid"], 1);
  });

  it("acknowledges a re-delivery with the same Idempotency-Key without queueing it again", async () => {
    const { service, url } = await receiver();
    const key = randomUUID();
    const first = await postWebhook(url, examplePayload("merge_request"), {
      event: "Merge Request Hook",
      idempotencyKey: key,
    });
    assert.equal(first.status, 202);
    assert.equal((await storedJobs(service)).length, 1);
    const again = await postWebhook(url, examplePayload("merge_request"), {
      event: "Merge Request Hook",
      idempotencyKey: key,
    });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { status: "duplicate" });
    assert.equal((await storedJobs(service)).length, 1, "the re-delivery stored nothing");
  });

  it("a resent command note is not stored twice: under another delivery id, or after the delivery window", async () => {
    const { service, url, config } = await receiver({ webhook: { dedup_ttl_seconds: 1 } });
    const key = randomUUID();
    const first = await postWebhook(url, commandNote("/trust", 601), { event: "Note Hook", idempotencyKey: key });
    assert.equal(first.status, 202);
    const otherId = await postWebhook(url, commandNote("/trust", 601), { event: "Note Hook" });
    assert.deepEqual([otherId.status, otherId.body], [200, { status: "duplicate" }], "another delivery id");
    await waitFor("the delivery id to be forgotten", async () => (await redis.exists(deliveryKey(config, key))) === 0);
    const resent = await postWebhook(url, commandNote("/trust", 601), { event: "Note Hook", idempotencyKey: key });
    assert.deepEqual([resent.status, resent.body], [200, { status: "duplicate" }], "GitLab's Resend, an hour on");
    assert.equal((await storedJobs(service)).length, 1, "stored once");
    const next = await postWebhook(url, commandNote("/trust", 602), { event: "Note Hook", idempotencyKey: key });
    assert.equal(next.status, 202, "a new note is stored, even under a forgotten delivery id");
  });

  it("without Idempotency-Key, dedupes on a digest of event and body", async () => {
    const { service, url } = await receiver();
    const body = JSON.stringify(commandNote("/trust", 777));
    const first = await postWebhook(url, body, { event: "Note Hook", idempotencyKey: null });
    const again = await postWebhook(url, body, { event: "Note Hook", idempotencyKey: null });
    assert.equal(first.status, 202);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { status: "duplicate" });
    const jobs = await storedJobs(service);
    assert.equal(jobs.length, 1);
    assert.match(String((jobs[0] as { eventId?: string }).eventId), /^sha256:[0-9a-f]{64}$/);
  });

  it("coalesces MR events into one pending reconcile, but keeps every command", async () => {
    const { service, url } = await receiver();
    for (const action of ["open", "update", "reopen"]) {
      const payload = examplePayload("merge_request");
      payload["object_attributes"]!["action"] = action;
      assert.equal((await postWebhook(url, payload, { event: "Merge Request Hook" })).status, 202);
    }
    for (const noteId of [1, 2]) {
      assert.equal((await postWebhook(url, commandNote("/trust", noteId), { event: "Note Hook" })).status, 202);
    }
    assert.equal((await storedJobs(service)).length, 5, "every delivery is stored");
    const jobs = (await queuedJobs(service)).map((j) => j.data);
    assert.equal(jobs.filter((j) => j.kind === "reconcile").length, 1);
    assert.equal(jobs.filter((j) => j.kind === "command").length, 2);
    assert.deepEqual(await storedJobs(service), [], "the inbox is empty once moved");
  });
});

describe("receiver: answers for what the bot does not act on", () => {
  it("answers 200 with the reason and stores nothing", async () => {
    const { service, url, prefix } = await receiver();
    const cases: Array<[string | undefined, unknown, string]> = [
      ["Job Hook", { object_kind: "build" }, "event Job Hook is not used"],
      ["Note Hook", examplePayload("note_merge_request"), "note carries no command"],
      ["Push Hook", { ...examplePayload("push"), ref: "refs/tags/v1" }, "push to refs/tags/v1, not to a branch"],
      [undefined, { hello: "world" }, "no X-Gitlab-Event header"],
    ];
    for (const [event, payload, reason] of cases) {
      const res = await postWebhook(url, payload, event === undefined ? {} : { event });
      assert.equal(res.status, 200, reason);
      assert.deepEqual(res.body, { status: "ignored", reason });
    }
    assert.deepEqual(await storedJobs(service), []);
    assert.deepEqual(await deliveryKeys(prefix), []);
  });

  it("answers 400 for a body that is not JSON (with a valid token) and keeps serving", async () => {
    const { url } = await receiver();
    const bad = await postWebhook(url, '{"object_kind": "note", ', { event: "Note Hook" });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { status: "bad_request", reason: "body is not JSON" });
    const empty = await postWebhook(url, "", { event: "Note Hook" });
    assert.equal(empty.status, 400);
    const next = await postWebhook(url, commandNote("/trust"), { event: "Note Hook" });
    assert.equal(next.status, 202);
  });

  it("answers 413 for a body over webhook.body_limit", async () => {
    const { service, url } = await receiver({ webhook: { body_limit: "8kb" } });
    const payload = commandNote(`/trust\n${"x".repeat(16 * 1024)}`);
    const res = await postWebhook(url, payload, { event: "Note Hook" });
    assert.equal(res.status, 413);
    assert.deepEqual(res.body, { status: "too_large", reason: "body exceeds webhook.body_limit (8192 bytes)" });
    assert.deepEqual(await storedJobs(service), []);
    const small = await postWebhook(url, commandNote("/trust"), { event: "Note Hook" });
    assert.equal(small.status, 202);
  });

  it("counts a chunked body (no Content-Length) against the limit too, and refuses compressed bodies", async () => {
    const { service, url } = await receiver({ webhook: { body_limit: "8kb" } });
    const chunk = Buffer.from(`{"pad":"${"x".repeat(4000)}",`);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const chunked = await fetch(`${url}/webhook`, {
      method: "POST",
      headers: { "x-gitlab-token": TEST_SECRET, "x-gitlab-event": "Note Hook", "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    assert.equal(chunked.status, 413);
    const gzip = await postWebhook(url, commandNote("/trust"), {
      event: "Note Hook",
      headers: { "content-encoding": "gzip" },
    });
    assert.equal(gzip.status, 415);
    assert.deepEqual(gzip.body, { status: "bad_request", reason: "Content-Encoding gzip is not supported" });
    assert.deepEqual(await storedJobs(service), []);
  });

  it("answers 404 in JSON for other paths", async () => {
    const { url } = await receiver();
    const res = await fetch(`${url}/nope`);
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { status: "not_found" });
  });
});

describe("receiver: Standard-Webhooks signature", () => {
  const signed = (body: string, opts: { id?: string; ts?: number; signature?: string } = {}) => {
    const id = opts.id ?? randomUUID();
    const ts = opts.ts ?? Math.floor(Date.now() / 1000);
    return {
      "webhook-id": id,
      "webhook-timestamp": String(ts),
      "webhook-signature": opts.signature ?? signStandardWebhook(SIGNING_TOKEN, id, ts, Buffer.from(body)),
    };
  };

  it("accepts a valid signature, also among several (key rotation)", async () => {
    const { url } = await receiver({ webhook: { signing_token: SIGNING_TOKEN } });
    const body = JSON.stringify(commandNote("/trust", 1));
    const ok = await postWebhook(url, body, { event: "Note Hook", headers: signed(body) });
    assert.equal(ok.status, 202);
    const id = randomUUID();
    const ts = Math.floor(Date.now() / 1000);
    const oldKey = `whsec_${Buffer.from("an-old-key-that-was-rotated-out!").toString("base64")}`;
    // Another note: the same one again would be a duplicate command, whatever its delivery id.
    const next = JSON.stringify(commandNote("/trust", 12));
    const both = `${signStandardWebhook(oldKey, id, ts, Buffer.from(next))} ${signStandardWebhook(SIGNING_TOKEN, id, ts, Buffer.from(next))}`;
    const rotated = await postWebhook(url, next, {
      event: "Note Hook",
      idempotencyKey: id,
      headers: signed(next, { id, ts, signature: both }),
    });
    assert.equal(rotated.status, 202);
  });

  it("refuses a bad signature, a stale timestamp and missing headers with 401, storing nothing", async () => {
    const { service, url, prefix } = await receiver({ webhook: { signing_token: SIGNING_TOKEN } });
    const body = JSON.stringify(commandNote("/trust", 2));
    const tampered = signed(body);
    const bad = await postWebhook(url, body.replace("/trust", "/untrust"), { event: "Note Hook", headers: tampered });
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body, {
      status: "unauthorized",
      reason: "no webhook-signature matches; check webhook.signing_token",
    });
    const staleTs = Math.floor(Date.now() / 1000) - 6 * 60;
    const stale = await postWebhook(url, body, { event: "Note Hook", headers: signed(body, { ts: staleTs }) });
    assert.equal(stale.status, 401);
    assert.deepEqual(stale.body, {
      status: "unauthorized",
      reason: "webhook-timestamp is outside the tolerance window; check webhook.signing_token",
    });
    const future = await postWebhook(url, body, {
      event: "Note Hook",
      headers: signed(body, { ts: Math.floor(Date.now() / 1000) + 6 * 60 }),
    });
    assert.equal(future.status, 401);
    const missing = await postWebhook(url, body, { event: "Note Hook" });
    assert.equal(missing.status, 401);
    assert.deepEqual(await storedJobs(service), []);
    assert.deepEqual(await deliveryKeys(prefix), []);
  });

  it("attack: a replayed signed delivery with a new Idempotency-Key is a duplicate", async () => {
    // Idempotency-Key is outside the signature: whoever can replay a signed request (inside the tolerance window)
    // can change it. The signed webhook-id must be what identifies the delivery.
    const { service, url, prefix } = await receiver({ webhook: { signing_token: SIGNING_TOKEN } });
    const body = JSON.stringify(commandNote("/trust", 11));
    const headers = signed(body);
    const first = await postWebhook(url, body, {
      event: "Note Hook",
      idempotencyKey: headers["webhook-id"],
      headers,
    });
    assert.equal(first.status, 202);
    const replay = await postWebhook(url, body, { event: "Note Hook", idempotencyKey: randomUUID(), headers });
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.body, { status: "duplicate" });
    const noKey = await postWebhook(url, body, { event: "Note Hook", idempotencyKey: null, headers });
    assert.deepEqual(noKey.body, { status: "duplicate" }, "dropping the Idempotency-Key does not help either");
    const jobs = await storedJobs(service);
    assert.equal(jobs.length, 1, "the replay stored nothing");
    assert.equal((jobs[0] as { eventId?: string }).eventId, headers["webhook-id"]);
    assert.deepEqual(await deliveryKeys(prefix), [deliveryKey({ redis: { prefix } }, headers["webhook-id"]!)]);
  });

  it("attack: a forged Idempotency-Key cannot suppress a signed delivery", async () => {
    // A sender who sets a real delivery's Idempotency-Key on its own request must not get that delivery dropped.
    const { service, url } = await receiver({ webhook: { signing_token: SIGNING_TOKEN } });
    const shared = randomUUID();
    for (const noteId of [21, 22]) {
      const body = JSON.stringify(commandNote("/trust", noteId));
      const res = await postWebhook(url, body, { event: "Note Hook", idempotencyKey: shared, headers: signed(body) });
      assert.equal(res.status, 202, `note ${noteId}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body, { status: "queued", jobs: 1 });
    }
    const noteIds = (await storedJobs(service)).map((job) => (job as { noteId?: number }).noteId);
    assert.deepEqual(noteIds.sort(), [21, 22], "both signed deliveries are stored");
  });

  it("verifies a relay's X-Hub-Signature-256 with @octokit/webhooks-methods", async () => {
    const { service, url } = await receiver({ webhook: { relay_signature_secret: RELAY_SECRET } });
    const body = JSON.stringify(commandNote("/trust", 3));
    const good = await postWebhook(url, body, {
      event: "Note Hook",
      headers: { "x-hub-signature-256": await sign(RELAY_SECRET, body) },
    });
    assert.equal(good.status, 202);
    const wrong = await postWebhook(url, body, {
      event: "Note Hook",
      headers: { "x-hub-signature-256": await sign("another-secret", body) },
    });
    assert.equal(wrong.status, 401);
    const missing = await postWebhook(url, body, { event: "Note Hook" });
    assert.equal(missing.status, 401);
    assert.deepEqual(missing.body, {
      status: "unauthorized",
      reason: "X-Hub-Signature-256 header is required; check webhook.relay_signature_secret",
    });
    assert.equal((await storedJobs(service)).length, 1);
  });
});

describe("receiver: probes, metrics and logs", () => {
  it("serves /healthz, /readyz and /metrics with webhook outcomes and queue depth", async () => {
    const { url } = await receiver();
    await postWebhook(url, commandNote("/trust", 9), { event: "Note Hook" });
    await postWebhook(url, commandNote("/trust", 9), { event: "Note Hook", token: "wrong" });
    await postWebhook(url, { object_kind: "build" }, { event: "Job Hook" });
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ready", redis: "ok" });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /tmr_webhooks_total\{event="Note Hook",outcome="queued"\} 1/);
    assert.match(metrics, /tmr_webhooks_total\{event="Note Hook",outcome="unauthorized"\} 1/);
    assert.match(metrics, /tmr_webhooks_total\{event="other",outcome="ignored"\} 1/);
    assert.match(metrics, /tmr_queue_jobs\{state="inbox"\} 1/);
    assert.match(metrics, /tmr_queue_jobs\{state="waiting"\} 0/);
    assert.match(metrics, /tmr_webhook_receive_seconds_count\{outcome="queued"\} 1/);
  });

  it("never writes a secret to the log", async () => {
    const { url, log } = await receiver({
      webhook: { signing_token: SIGNING_TOKEN, relay_signature_secret: RELAY_SECRET },
    });
    await postWebhook(url, commandNote("/trust"), { event: "Note Hook", token: "a-wrong-token-value" });
    await postWebhook(url, commandNote("/trust"), { event: "Note Hook" });
    const text = log.text();
    assert.ok(log.lines.length > 0);
    for (const secret of [TEST_SECRET, SIGNING_TOKEN, RELAY_SECRET, "a-wrong-token-value", "test-gitlab-token"]) {
      assert.ok(!text.includes(secret), `log contains ${secret}`);
    }
  });
});
