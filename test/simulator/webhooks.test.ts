/**
 * Webhook deliveries: headers, Standard-Webhooks signatures, re-delivery, hold/drop, and the payload shapes
 * compared with GitLab's documented examples in test/fixtures/gitlab/payloads/.
 */
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { BLANK_SHA } from "../../src/simulator/gitlab-simulator.js";
import { standardWebhookSignature } from "../../src/simulator/webhooks.js";
import { client, type Received, rejectsWith, seedWorld, startReceiver } from "./helpers.js";

const SIGNING_SECRET = `whsec_${Buffer.from("a-32-byte-signing-key-for-tests!").toString("base64")}`;

/** An independent Standard-Webhooks verifier (what the bot must do). */
function verifySignature(r: Received, secret: string): boolean {
  const id = String(r.headers["webhook-id"]);
  const ts = String(r.headers["webhook-timestamp"]);
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${ts}.${r.body}`).digest();
  return String(r.headers["webhook-signature"])
    .split(" ")
    .some((sig) => {
      const given = Buffer.from(sig.replace(/^v1,/, ""), "base64");
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}

function json(r: Received | undefined): Record<string, unknown> {
  assert.ok(r, "expected a delivery");
  return JSON.parse(r.body) as Record<string, unknown>;
}

function ofEvent(received: Received[], event: string): Received[] {
  return received.filter((r) => r.headers["x-gitlab-event"] === event);
}

describe("webhook delivery (WebHookService)", () => {
  test("GitLab's headers, a valid Standard-Webhooks signature, and one Event-UUID per triggering action", async (t) => {
    const { sim, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    const other = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
      await other.close();
    });
    sim.addHook(app.id, {
      url: receiver.url,
      token: "s3cret",
      signingToken: SIGNING_SECRET,
      mergeRequestsEvents: true,
    });
    sim.addHook(app.id, { url: other.url, pushEvents: false, mergeRequestsEvents: true });
    sim.push(fork.id, "feature", { userId: contributor.id });
    sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    await sim.idle();

    assert.equal(receiver.received.length, 1, "the fork's push fires on the fork, not on the target");
    const [r] = receiver.received;
    assert.ok(r);
    assert.equal(r.headers["content-type"], "application/json");
    assert.equal(r.headers["x-gitlab-event"], "Merge Request Hook");
    assert.equal(r.headers["x-gitlab-token"], "s3cret");
    assert.equal(r.headers["x-gitlab-instance"], sim.url);
    assert.match(String(r.headers["user-agent"]), /^GitLab\/\d+\.\d+/);
    assert.match(String(r.headers["idempotency-key"]), /^[0-9a-f-]{36}$/);
    assert.equal(r.headers["webhook-id"], r.headers["idempotency-key"]);
    assert.ok(Math.abs(Number(r.headers["webhook-timestamp"]) - Date.now() / 1000) < 5);
    assert.ok(verifySignature(r, SIGNING_SECRET), "signature verifies");

    const [o] = other.received;
    assert.ok(o);
    assert.equal(o.headers["x-gitlab-token"], undefined, "no token configured, no header");
    assert.equal(o.headers["webhook-signature"], undefined);
    assert.equal(o.headers["x-gitlab-event-uuid"], r.headers["x-gitlab-event-uuid"], "one action, one Event-UUID");
    assert.notEqual(o.headers["idempotency-key"], r.headers["idempotency-key"], "one Idempotency-Key per delivery");
    assert.notEqual(o.headers["x-gitlab-webhook-uuid"], r.headers["x-gitlab-webhook-uuid"]);
    assert.deepEqual(
      sim.deliveryLog.map((d) => [d.event, d.status]),
      [
        ["Merge Request Hook", 200],
        ["Merge Request Hook", 200],
      ],
    );
  });

  test("the signature matches the Standard Webhooks reference vector", () => {
    assert.equal(
      standardWebhookSignature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        '{"test": 2432232314}',
      ),
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
  });

  test("hold keeps deliveries; redelivery reuses the Idempotency-Key with a new Webhook-UUID and fresh signature", async (t) => {
    const { sim, committer, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, {
      url: receiver.url,
      signingToken: SIGNING_SECRET,
      noteEvents: true,
      mergeRequestsEvents: true,
    });
    sim.webhookMode = "hold";
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    sim.comment(app.id, mr.iid, committer.id, "/trust");
    await sim.idle();
    assert.equal(receiver.received.length, 0);
    assert.deepEqual(
      sim.heldDeliveries().map((d) => d.event),
      ["Merge Request Hook", "Note Hook"],
    );

    const held = sim.takeHeldDeliveries();
    assert.equal(sim.heldDeliveries().length, 0);
    const note = held[1];
    assert.ok(note);
    const first = await sim.redeliver(note);
    const second = await sim.redeliver(note);
    assert.deepEqual([first.status, second.status], [200, 200]);
    const [a, b] = receiver.received;
    assert.ok(a && b);
    assert.equal(a.headers["idempotency-key"], note.idempotencyKey);
    assert.equal(b.headers["idempotency-key"], note.idempotencyKey);
    assert.notEqual(a.headers["x-gitlab-webhook-uuid"], b.headers["x-gitlab-webhook-uuid"]);
    assert.equal(a.body, b.body);
    assert.ok(verifySignature(a, SIGNING_SECRET) && verifySignature(b, SIGNING_SECRET));
    assert.equal(json(a)["object_kind"], "note");
  });

  test("drop loses deliveries (missed webhooks); so does dropWebhookRate", async (t) => {
    const { sim, bot, app } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, { url: receiver.url });
    sim.webhookMode = "drop";
    sim.push(app.id, "topic", { userId: bot.id });
    sim.webhookMode = "deliver";
    sim.setFaults({ dropWebhookRate: 1 });
    sim.push(app.id, "topic", { userId: bot.id });
    sim.clearFaults();
    await sim.idle();
    assert.equal(receiver.received.length, 0);
    assert.equal(sim.heldDeliveries().length, 0);
    sim.push(app.id, "topic", { userId: bot.id });
    await sim.idle();
    assert.equal(receiver.received.length, 1);
  });

  test("receiver failures are logged, not retried", async (t) => {
    const { sim, bot, app } = await seedWorld();
    const failing = await startReceiver({ status: 500 });
    t.after(async () => {
      await sim.stop();
      await failing.close();
    });
    sim.addHook(app.id, { url: failing.url });
    sim.addHook(app.id, { url: "http://127.0.0.1:9/unreachable" });
    sim.push(app.id, "topic", { userId: bot.id });
    await sim.idle();
    assert.deepEqual(
      sim.deliveryLog.map((d) => d.status),
      [500, "error"],
    );
    assert.equal(failing.received.length, 1);
  });
});

describe("webhook events", () => {
  test("push: new branch has before = zeros, deletion after = zeros and checkout_sha null; ref_protected is set", async (t) => {
    const { sim, bot, app } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, { url: receiver.url });
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    const created = await client(sim, bot).Branches.create(app.id, "trusted-x", "main");
    const moved = sim.push(app.id, "trusted-x", { userId: bot.id, message: "Second\n\nbody" });
    sim.deleteBranch(app.id, "trusted-x", { userId: bot.id });
    await sim.idle();
    const [c, m, d] = ofEvent(receiver.received, "Push Hook").map(json);
    assert.ok(c && m && d);
    assert.deepEqual(
      [c["before"], c["after"], c["ref"], c["ref_protected"]],
      [BLANK_SHA, created.commit.id, "refs/heads/trusted-x", true],
    );
    assert.deepEqual([m["before"], m["after"], m["total_commits_count"]], [created.commit.id, moved.after, 1]);
    assert.equal((m["commits"] as Array<{ title: string }>)[0]?.title, "Second");
    assert.deepEqual([d["after"], d["checkout_sha"], d["user_id"]], [BLANK_SHA, null, bot.id]);
  });

  test("a push to a fork reaches the target only as MR update with oldrev", async (t) => {
    const { sim, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, { url: receiver.url, mergeRequestsEvents: true });
    const first = sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    const second = sim.push(fork.id, "feature", { userId: contributor.id });
    await sim.idle();
    const [open, update] = receiver.received.map(json);
    const attrs = (p: Record<string, unknown> | undefined) => p?.["object_attributes"] as Record<string, unknown>;
    assert.equal(attrs(open)["action"], "open");
    assert.equal("oldrev" in attrs(open), false);
    assert.equal(attrs(update)["action"], "update");
    assert.equal(attrs(update)["oldrev"], first.after);
    assert.equal((attrs(update)["last_commit"] as { id: string }).id, second.after);
    assert.deepEqual([attrs(update)["source_project_id"], attrs(update)["target_project_id"]], [fork.id, app.id]);
    assert.equal(attrs(update)["iid"], mr.iid);
  });

  test("notes fire create and update; system notes fire nothing", async (t) => {
    const { sim, committer, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, { url: receiver.url, noteEvents: true });
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    const note = sim.comment(app.id, mr.iid, committer.id, "/trust");
    sim.editNote(app.id, mr.iid, note.id, committer.id, "/trust please");
    sim.comment(app.id, mr.iid, committer.id, "added 1 commit", { system: true });
    await sim.idle();
    const events = receiver.received.map(json);
    assert.deepEqual(
      events.map((e) => (e["object_attributes"] as { action: string; note: string }).action),
      ["create", "update"],
    );
    const mrAttrs = events[0]?.["merge_request"] as Record<string, unknown>;
    assert.deepEqual([mrAttrs["iid"], mrAttrs["source_project_id"]], [mr.iid, fork.id]);
  });

  test("pipeline hooks fire on every status change with builds[]", async (t) => {
    const { sim, bot, app } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, { url: receiver.url, pushEvents: false, pipelineEvents: true });
    const p = await client(sim, bot).Pipelines.create(app.id, "main", { variables: [{ key: "K", value: "v" }] });
    sim.setJobStatus(app.id, p.id, "build", "running");
    sim.setJobStatus(app.id, p.id, "build", "success");
    sim.setJobStatus(app.id, p.id, "test", "success");
    await sim.idle();
    const events = receiver.received.map(json);
    const statuses = events.map((e) => (e["object_attributes"] as { status: string }).status);
    assert.deepEqual(statuses, ["created", "running", "success"]);
    const last = events[2];
    assert.ok(last);
    assert.deepEqual(
      (last["builds"] as Array<{ name: string; status: string }>).map((b) => [b.name, b.status]),
      [
        ["build", "success"],
        ["test", "success"],
      ],
    );
    const attrs = last["object_attributes"] as Record<string, unknown>;
    assert.deepEqual(attrs["variables"], [{ key: "K", value: "v" }]);
    assert.equal(attrs["source"], "api");
    assert.equal(attrs["protected_ref"], true);
    assert.equal(last["merge_request"], null);
  });

  test("hooks registered through the API (Maintainer only) get their events, signed via signing_token (inferred)", async (t) => {
    const { sim, bot, committer, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    const api = client(sim, bot);
    const hook = await api.ProjectHooks.add(app.id, receiver.url, {
      token: "tok",
      pushEvents: false,
      noteEvents: true,
      signingToken: SIGNING_SECRET,
    } as never);
    assert.equal(hook.note_events, true);
    assert.equal("token" in hook, false, "the token is never returned");
    await rejectsWith(client(sim, committer).ProjectHooks.all(app.id), 403);
    assert.equal((await api.ProjectHooks.all(app.id)).length, 1);

    sim.push(app.id, "topic", { userId: bot.id });
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    sim.comment(app.id, mr.iid, committer.id, "/trust");
    await sim.idle();
    assert.deepEqual(
      receiver.received.map((r) => r.headers["x-gitlab-event"]),
      ["Note Hook"],
      "push_events: false; MR events not subscribed",
    );
    const [note] = receiver.received;
    assert.ok(note && verifySignature(note, SIGNING_SECRET));
    assert.equal(note.headers["x-gitlab-token"], "tok");

    await api.ProjectHooks.remove(app.id, hook.id);
    assert.equal(sim.hooks(app.id).length, 0);
  });
});

/**
 * Key shapes against GitLab's documented examples. `extra` are keys GitLab's data builders send that the
 * (older) documented example lacks; `conditional` are example keys GitLab sends only in some cases.
 */
describe("payload shapes match GitLab's documented examples", () => {
  const fixture = (name: string) =>
    JSON.parse(readFileSync(new URL(`../fixtures/gitlab/payloads/${name}.json`, import.meta.url), "utf8")) as Record<
      string,
      unknown
    >;

  function sameKeys(
    where: string,
    emitted: unknown,
    documented: unknown,
    o: { extra?: string[]; conditional?: string[] } = {},
  ): void {
    assert.ok(emitted && typeof emitted === "object", `${where}: emitted object missing`);
    assert.ok(documented && typeof documented === "object", `${where}: fixture object missing`);
    const mine = new Set(Object.keys(emitted));
    const theirs = new Set(Object.keys(documented));
    const missing = [...theirs].filter((k) => !mine.has(k) && !(o.conditional ?? []).includes(k));
    const invented = [...mine].filter((k) => !theirs.has(k) && !(o.extra ?? []).includes(k));
    assert.deepEqual({ missing, invented }, { missing: [], invented: [] }, where);
  }

  const at = (o: unknown, ...path: Array<string | number>): unknown =>
    path.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k], o);

  /** `Project#hook_attrs` always has `id` and `ci_config_path`; some documented examples predate them. */
  const projectExtras = { extra: ["id", "ci_config_path"] };

  test("Push, Merge Request, Note and Pipeline Hook payloads", async (t) => {
    const { sim, bot, committer, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, { url: receiver.url, mergeRequestsEvents: true, noteEvents: true, pipelineEvents: true });
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({
      sourceProjectId: fork.id,
      sourceBranch: "feature",
      authorId: contributor.id,
      labels: ["API"],
    });
    sim.push(fork.id, "feature", { userId: contributor.id });
    sim.comment(app.id, mr.iid, committer.id, "/trust");
    sim.push(app.id, "topic", { userId: bot.id });
    const pipeline = sim.pipelines(app.id).find((p) => p.ref === "topic");
    assert.ok(pipeline);
    sim.setPipelineStatus(app.id, pipeline.id, "success");
    await sim.idle();

    const push = json(ofEvent(receiver.received, "Push Hook")[0]);
    const pushDoc = fixture("push");
    sameKeys("push", push, pushDoc);
    sameKeys("push.project", push["project"], pushDoc["project"], { extra: ["ci_config_path"] });
    sameKeys("push.repository", push["repository"], pushDoc["repository"]);
    sameKeys("push.commits[0]", at(push, "commits", 0), at(pushDoc, "commits", 0));
    sameKeys("push.commits[0].author", at(push, "commits", 0, "author"), at(pushDoc, "commits", 0, "author"));

    const [open, update] = ofEvent(receiver.received, "Merge Request Hook").map(json);
    const mrDoc = fixture("merge_request");
    for (const [name, event] of [
      ["open", open],
      ["update", update],
    ] as const) {
      sameKeys(`mr(${name})`, event, mrDoc);
      sameKeys(`mr(${name}).object_attributes`, event?.["object_attributes"], mrDoc["object_attributes"], {
        extra: ["oldrev"],
      });
      sameKeys(`mr(${name}).user`, event?.["user"], mrDoc["user"]);
      sameKeys(`mr(${name}).project`, event?.["project"], mrDoc["project"]);
      sameKeys(`mr(${name}).repository`, event?.["repository"], mrDoc["repository"]);
      for (const side of ["source", "target", "last_commit"]) {
        sameKeys(
          `mr(${name}).${side}`,
          at(event, "object_attributes", side),
          at(mrDoc, "object_attributes", side),
          projectExtras,
        );
      }
      sameKeys(`mr(${name}).labels[0]`, at(event, "labels", 0), at(mrDoc, "labels", 0));
    }

    const note = json(ofEvent(receiver.received, "Note Hook")[0]);
    const noteDoc = fixture("note_merge_request");
    sameKeys("note", note, noteDoc);
    // `internal` is in `NoteBuilder::SAFE_HOOK_ATTRIBUTES` since 15.x; the documented example predates it.
    sameKeys("note.object_attributes", note["object_attributes"], noteDoc["object_attributes"], {
      extra: ["internal"],
    });
    sameKeys("note.project", note["project"], noteDoc["project"], projectExtras);
    // `assignee` is present only when the MR has one.
    sameKeys("note.merge_request", note["merge_request"], noteDoc["merge_request"], { conditional: ["assignee"] });
    sameKeys(
      "note.merge_request.last_commit",
      at(note, "merge_request", "last_commit"),
      at(noteDoc, "merge_request", "last_commit"),
      {
        extra: ["title"],
      },
    );
    sameKeys(
      "note.merge_request.source",
      at(note, "merge_request", "source"),
      at(noteDoc, "merge_request", "source"),
      projectExtras,
    );

    const pipe = json(ofEvent(receiver.received, "Pipeline Hook").at(-1));
    const pipeDoc = fixture("pipeline");
    // `source_pipeline` only for child pipelines; `merge_request` is null unless an MR pipeline.
    sameKeys("pipeline", pipe, pipeDoc, { conditional: ["source_pipeline"] });
    sameKeys("pipeline.object_attributes", pipe["object_attributes"], pipeDoc["object_attributes"], {
      extra: ["detailed_status", "protected_ref", "queued_duration"],
    });
    sameKeys("pipeline.project", pipe["project"], pipeDoc["project"], { extra: ["ci_config_path"] });
    sameKeys("pipeline.user", pipe["user"], pipeDoc["user"]);
    sameKeys("pipeline.commit", pipe["commit"], pipeDoc["commit"], { extra: ["title"] });
    sameKeys("pipeline.builds[0]", at(pipe, "builds", 0), at(pipeDoc, "builds", 0));
    sameKeys("pipeline.builds[0].user", at(pipe, "builds", 0, "user"), at(pipeDoc, "builds", 0, "user"));
    sameKeys(
      "pipeline.builds[0].artifacts_file",
      at(pipe, "builds", 0, "artifacts_file"),
      at(pipeDoc, "builds", 0, "artifacts_file"),
    );
  });

  test("every key the bot reads (FACTS.md) is present", async (t) => {
    const { sim, bot, committer, contributor, app, fork } = await seedWorld();
    const receiver = await startReceiver();
    t.after(async () => {
      await sim.stop();
      await receiver.close();
    });
    sim.addHook(app.id, { url: receiver.url, mergeRequestsEvents: true, noteEvents: true, pipelineEvents: true });
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    sim.push(fork.id, "feature", { userId: contributor.id });
    sim.comment(app.id, mr.iid, committer.id, "/trust");
    sim.push(app.id, "topic", { userId: bot.id });
    await sim.idle();

    const has = (payload: unknown, paths: string[]) => {
      for (const p of paths) assert.notEqual(at(payload, ...p.split(".")), undefined, p);
    };
    has(json(ofEvent(receiver.received, "Push Hook")[0]), [
      "ref",
      "before",
      "after",
      "checkout_sha",
      "ref_protected",
      "user_id",
      "project_id",
      "commits",
      "total_commits_count",
    ]);
    has(json(ofEvent(receiver.received, "Merge Request Hook")[1]), [
      "object_attributes.iid",
      "object_attributes.state",
      "object_attributes.action",
      "object_attributes.source_branch",
      "object_attributes.source_project_id",
      "object_attributes.target_branch",
      "object_attributes.target_project_id",
      "object_attributes.last_commit.id",
      "object_attributes.labels",
      "object_attributes.draft",
      "object_attributes.url",
      "object_attributes.oldrev",
    ]);
    has(json(ofEvent(receiver.received, "Note Hook")[0]), [
      "object_attributes.note",
      "object_attributes.noteable_type",
      "object_attributes.system",
      "object_attributes.action",
      "object_attributes.id",
      "object_attributes.url",
      "merge_request.iid",
      "merge_request.state",
      "merge_request.source_branch",
      "merge_request.source_project_id",
      "merge_request.target_project_id",
      "merge_request.last_commit.id",
      "merge_request.labels",
      "user.id",
      "user.username",
      "project_id",
    ]);
    has(json(ofEvent(receiver.received, "Pipeline Hook")[0]), [
      "object_attributes.id",
      "object_attributes.ref",
      "object_attributes.sha",
      "object_attributes.source",
      "object_attributes.status",
      "object_attributes.detailed_status",
      "object_attributes.variables",
      "object_attributes.url",
      "object_attributes.protected_ref",
      "merge_request",
      "builds",
    ]);
  });
});
