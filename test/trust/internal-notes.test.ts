/**
 * Commands written as internal notes, end to end through the simulator. GitLab delivers an internal note as
 * `Confidential Note Hook`, only to hooks with `confidential_note_events` (FACTS.md; `Notes::PostProcessService`).
 * The bot carries the command out like any other, answers with internal notes (so the answer does not make a
 * confidential discussion public), and keeps its sticky note public: it is the MR's status.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { postWebhook } from "../support/webhook-client.js";
import { worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

describe("internal notes", () => {
  it("a committer's internal /trust <sha> is carried out; the sticky note stays public", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`, { internal: true });
    assert.equal(command.internal, true);
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha, "the trusted branch is at the head");
    const [sticky, ...more] = w.stickyNotes(mr.iid);
    assert.ok(sticky);
    assert.equal(more.length, 0);
    assert.equal(sticky.internal, false, "the MR's status is for everyone");
    assert.deepEqual(
      w.sim.awardEmoji(w.app.id, mr.iid, command.id).map((a) => a.name),
      ["thumbsup"],
      "the command is acknowledged",
    );
  });

  it("leak: answers to internal commands are internal notes: a refusal, /help and a malformed /trust", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    // Dev is a Developer: may write internal notes, is no committer.
    w.sim.comment(w.app.id, mr.iid, w.dev.id, "/trust", { internal: true });
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/help", { internal: true });
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust abc123", { internal: true });
    await w.settle();

    const replies = w.replies(mr.iid);
    assert.equal(replies.length, 3, replies.map((r) => r.body).join("\n---\n"));
    assert.ok(replies.some((r) => /^@dev has the Developer role here/.test(r.body)));
    assert.deepEqual(
      replies.map((r) => r.internal),
      [true, true, true],
      "no answer makes the confidential discussion public",
    );
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined, "nothing trusted");
  });

  it("a public command still gets a public answer", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/help");
    await w.settle();
    assert.deepEqual(
      w.replies(mr.iid).map((r) => r.internal),
      [false],
    );
  });

  it("attack: a Confidential Note Hook with a wrong token is refused, and a re-delivery runs nothing twice", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.webhookMode = "hold";
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/help", { internal: true });
    await w.sim.idle();
    const [delivery, ...others] = w.sim.takeHeldDeliveries();
    assert.equal(others.length, 0);
    assert.ok(delivery);
    assert.equal(delivery.event, "Confidential Note Hook");
    w.sim.webhookMode = "deliver";

    const forged = await postWebhook(w.service.receiverUrl!, JSON.parse(delivery.body), {
      event: "Confidential Note Hook",
      token: "not-the-secret",
    });
    assert.equal(forged.status, 401);

    const first = await w.sim.redeliver(delivery);
    const again = await w.sim.redeliver(delivery);
    assert.equal(first.status, 202, first.body);
    assert.deepEqual([again.status, JSON.parse(again.body)], [200, { status: "duplicate" }]);
    await w.settle();
    assert.equal(w.replies(mr.iid).length, 1, "one answer for one note, however often it is delivered");
  });
});
