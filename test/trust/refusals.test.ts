/**
 * Commands the workflow must not carry out, end to end: it answers a person's mistake in one short reply and
 * ignores what is not a command at all, without touching branches, pipelines or emoji.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Delivery } from "../../src/simulator/gitlab-simulator.js";
import { postWebhook } from "../support/webhook-client.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

/** Nothing trusted, nothing run, no emoji anywhere. */
function assertNoSideEffects(w: TrustWorld, iid: number): void {
  assert.deepEqual(
    w.sim
      .pipelines(w.app.id)
      .filter((p) => p.ref.startsWith("trusted-"))
      .map((p) => p.ref),
    [],
  );
  assert.deepEqual(
    w.sim.branches(w.app.id).filter((b) => b.name.startsWith("trusted-")),
    [],
    "no trusted branch",
  );
  for (const note of w.sim.notes(w.app.id, iid)) assert.deepEqual(w.sim.awardEmoji(w.app.id, iid, note.id), []);
}

describe("refusals", () => {
  it("a non-committer's commands get one short reply each, naming the reason", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.dev.id, "/trust");
    w.sim.comment(w.app.id, mr.iid, w.dave.id, "/retest");
    await w.settle();
    const replies = w.replies(mr.iid).map((n) => n.body);
    assert.equal(replies.length, 2);
    assert.ok(
      replies.some((r) => /^@dev has the Developer role here; only committers \(Maintainer or higher\)/.test(r)),
    );
    assert.ok(replies.some((r) => /^@dave is not a member of this project/.test(r)));
    assertNoSideEffects(w, mr.iid);
  });

  it("notes by the bot, edited notes, system notes, code blocks and quotes are ignored", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const byBot = w.sim.comment(w.app.id, mr.iid, w.bot.id, "/trust");
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "To run it, a committer types:\n```\n/trust\n```");
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "> /trust\nDave asked for this; not yet.");
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "Just `/trust` it when ready");
    const edited = w.sim.comment(w.app.id, mr.iid, w.maya.id, "Looks fine");
    w.sim.editNote(w.app.id, mr.iid, edited.id, w.maya.id, "Looks fine\n/trust");
    await w.settle();

    // A system note fires no hook in GitLab; deliver one anyway, as an older or odd GitLab might.
    w.sim.webhookMode = "hold";
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.sim.idle();
    const [delivery] = w.sim.takeHeldDeliveries().filter((d: Delivery) => d.event === "Note Hook");
    assert.ok(delivery);
    const payload = JSON.parse(delivery.body) as { object_attributes: Record<string, unknown> };
    payload.object_attributes["system"] = true;
    const answer = await postWebhook(w.service.receiverUrl!, payload, { event: "Note Hook" });
    assert.equal(answer.status, 202, "accepted: the worker is the one that refuses it");
    await w.settle();

    assert.deepEqual(
      w.replies(mr.iid).map((n) => n.id),
      [byBot.id],
      "no reply besides the bot's own /trust note",
    );
    assertNoSideEffects(w, mr.iid);
    assert.equal(w.stickyNotes(mr.iid).length, 1);
  });

  it("a malformed /trust gets a reply saying what it expects", async () => {
    const w = await start();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust nothex");
    await w.settle();
    const [reply] = w.replies(mr.iid);
    assert.match(reply?.body ?? "", /the SHA of the commit you reviewed, in full \(40 hex characters\) or at least its first 12/);
    assert.doesNotMatch(reply?.body ?? "", /nothex/, "no reply echoes what the commenter wrote");
    assertNoSideEffects(w, mr.iid);
  });

  it("commands on closed or merged MRs are refused without side effects", async () => {
    const w = await start();
    const closed = w.openForkMr("feature");
    const merged = w.openForkMr("other");
    await w.settle();
    w.sim.closeMergeRequest(w.app.id, closed.iid, w.maya.id);
    w.sim.mergeMergeRequest(w.app.id, merged.iid, w.maya.id);
    await w.settle();
    w.sim.comment(w.app.id, closed.iid, w.maya.id, "/trust");
    w.sim.comment(w.app.id, merged.iid, w.maya.id, "/retest");
    await w.settle();
    assert.match(w.replies(closed.iid)[0]?.body ?? "", /is closed; commands apply to open merge requests only/);
    assert.match(w.replies(merged.iid)[0]?.body ?? "", /is merged; commands apply to open merge requests only/);
    assertNoSideEffects(w, closed.iid);
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(merged)), undefined);
  });

  it("a push that races the comment: the grant is refused and the reply names the SHA to review", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.webhookMode = "hold";
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    const { after: newHead } = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.sim.idle();
    w.sim.webhookMode = "deliver";
    for (const d of w.sim.takeHeldDeliveries()) await w.sim.redeliver(d);
    await w.settle();

    const [reply] = w.replies(mr.iid);
    assert.match(
      reply?.body ?? "",
      new RegExp(`moved to \`${newHead}\` after you commented \\(you saw \`${mr.sha}\`\\)`),
    );
    assertNoSideEffects(w, mr.iid);
    assert.equal(w.status(newHead)?.status, "pending");
  });
});
