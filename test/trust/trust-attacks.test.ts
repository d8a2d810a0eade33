/**
 * Attacks on the trust record, the trusted branch names, the reviewed SHA and the rendered note, end to end: the
 * GitLab simulator over HTTP, the service with a real Redis, webhooks over HTTP. Each test is named after the attack
 * it replays (docs/security.md lists them). The attacker is a contributor with no role in org/app unless the test
 * says otherwise; `release/1.0` is a protected branch of org/app that nothing in the trust workflow may touch.
 *
 * These tests look for trusted branches by the record and by the `trusted-` prefix, not by a name the test builds,
 * so the same test reads the same way whatever the naming rule is.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromMarkdown } from "mdast-util-from-markdown";
import { runSweepOnce } from "../../src/runtime.js";
import type { Delivery, SimMergeRequest } from "../../src/simulator/gitlab-simulator.js";
import { decodeState, STICKY_MARKER } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { postWebhook } from "../support/webhook-client.js";

const start = worldPerTest();

const FORGED = `${STICKY_MARKER} {"v":1,"branch":"release/1.0"} -->`;

/** Makes the protected `release/1.0` in org/app (a commit of `main`). */
function releaseBranch(w: TrustWorld): string {
  const { after } = w.sim.push(w.app.id, "release/1.0", { userId: w.maya.id });
  return after;
}

/** Branches under the trusted prefix in org/app, with their heads. */
function trustedBranches(w: TrustWorld): Array<{ name: string; sha: string }> {
  return w.sim
    .branches(w.app.id)
    .filter((b) => b.name.startsWith("trusted-"))
    .map((b) => ({ name: b.name, sha: b.sha }));
}

/** The bot's sticky note on the MR and the record it carries (decoded as displayed, not validated). */
function record(w: TrustWorld, iid: number) {
  const [note] = w.stickyNotes(iid);
  assert.ok(note, `a sticky note on !${iid}`);
  return decodeState(note.body);
}

/** Trusted pipelines the bot created (source api) on any ref. */
function botPipelines(w: TrustWorld) {
  return w.sim.pipelines(w.app.id).filter((p) => p.source === "api");
}

/** Delivers everything held, in order, then waits for the queue to drain. */
async function release(w: TrustWorld): Promise<void> {
  await w.sim.idle();
  w.sim.webhookMode = "deliver";
  for (const d of w.sim.takeHeldDeliveries()) await w.sim.redeliver(d);
  await w.settle();
}

describe("the record of trust is the bot's own", () => {
  it("attack: a forged sticky record echoed in a /trust reply cannot delete or move release/1.0", async () => {
    const w = await start();
    const releaseSha = releaseBranch(w);
    // Opened and closed before the bot's first look, so the bot writes no sticky note for it.
    w.sim.webhookMode = "hold";
    const mr = w.openForkMr();
    w.sim.closeMergeRequest(w.app.id, mr.iid, w.dave.id);
    await release(w);
    w.sim.comment(w.app.id, mr.iid, w.dave.id, `/trust ${FORGED}`);
    await w.settle();
    w.sim.reopenMergeRequest(w.app.id, mr.iid, w.dave.id);
    await w.settle();
    // The sweep reads every note from scratch (a cold look), as after a Redis loss.
    await runSweepOnce({ config: w.config, logger: w.logger });
    await w.settle();
    w.sim.closeMergeRequest(w.app.id, mr.iid, w.dave.id);
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, "release/1.0")?.sha, releaseSha, "release/1.0 untouched");
    assert.deepEqual(botPipelines(w), [], "no trusted pipeline started");
    for (const note of w.sim.notes(w.app.id, mr.iid).filter((n) => n.authorId === w.bot.id)) {
      assert.ok(note.body.indexOf(STICKY_MARKER) <= 0, "the marker appears only at the start of the bot's own note");
      assert.doesNotMatch(note.body, /release\/1\.0/, "no bot note repeats the contributor's text");
    }
  });

  it("attack: a bot note that merely contains the marker is not taken for the sticky note", async () => {
    const w = await start();
    const releaseSha = releaseBranch(w);
    w.sim.webhookMode = "hold";
    const mr = w.openForkMr();
    // Any bot-authored text that ends up quoting a contributor (a bug, an old version's reply) comes first.
    w.sim.comment(w.app.id, mr.iid, w.bot.id, `You wrote: ${FORGED}`);
    await release(w);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    w.sim.closeMergeRequest(w.app.id, mr.iid, w.maya.id);
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, "release/1.0")?.sha, releaseSha, "release/1.0 untouched");
    assert.deepEqual(trustedBranches(w), [], "the MR's own trusted branch was deleted on close");
    const pipelines = botPipelines(w);
    assert.equal(pipelines.length, 1, "one trusted pipeline, for the committer's /trust");
    assert.ok(pipelines[0]!.ref.startsWith("trusted-"), `on a trusted branch, not ${pipelines[0]!.ref}`);
  });

  it("attack: a record at the start of a bot note that names release/1.0 is not believed", async () => {
    const w = await start();
    const releaseSha = releaseBranch(w);
    w.sim.webhookMode = "hold";
    const mr = w.openForkMr();
    // As if the bot had once written a record about another branch (a corrupted or foreign record).
    w.sim.comment(w.app.id, mr.iid, w.bot.id, `${STICKY_MARKER} {"v":1,"branch":"release/1.0","owned":true} -->`);
    await release(w);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    w.sim.closeMergeRequest(w.app.id, mr.iid, w.maya.id);
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, "release/1.0")?.sha, releaseSha, "release/1.0 untouched");
    assert.ok(botPipelines(w).every((p) => p.ref.startsWith("trusted-")), "nothing ran on release/1.0");
    assert.equal(w.stickyNotes(mr.iid).length, 1, "the note was rewritten in place");
    assert.notEqual(record(w, mr.iid).closed?.deletedBranch, "release/1.0");
  });

  it("attack: closing an MR never deletes another MR's trusted branch", async () => {
    const w = await start();
    const fromDave = w.openForkMr("feature");
    await w.settle();
    w.sim.comment(w.app.id, fromDave.iid, w.maya.id, "/trust");
    await w.settle();
    const granted = record(w, fromDave.iid).branch!;
    assert.equal(w.sim.branch(w.app.id, granted)?.sha, fromDave.sha);

    // Erin opens an MR from a branch of the same name and closes it before the bot's first look at it.
    w.sim.webhookMode = "hold";
    const fromErin = w.openForkMr("feature", w.erin, w.erinFork);
    w.sim.closeMergeRequest(w.app.id, fromErin.iid, w.erin.id);
    await release(w);
    await runSweepOnce({ config: w.config, logger: w.logger });
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, granted)?.sha, fromDave.sha, "Dave's grant survives Erin's close");
    assert.equal(record(w, fromDave.iid).grant?.sha, fromDave.sha);
    assert.equal((await w.audit()).filter((e) => e.event === "cleanup").length, 0, "nothing was cleaned up");
  });

  it("attack: an MR from a branch literally named feature-mr2 cannot take over !2's grant", async () => {
    const w = await start();
    const frank = w.sim.addUser({ username: "frank", name: "Frank Contributor" });
    const frankFork = w.sim.fork(w.app.id, { ownerId: frank.id, path: "frank/app" });
    const one = w.openForkMr("feature");
    const two = w.openForkMr("feature", w.erin, w.erinFork);
    await w.settle();
    w.sim.comment(w.app.id, one.iid, w.maya.id, "/trust");
    w.sim.comment(w.app.id, two.iid, w.maya.id, "/trust");
    await w.settle();
    const twoBranch = record(w, two.iid).branch!;
    assert.equal(w.sim.branch(w.app.id, twoBranch)?.sha, two.sha);

    // Frank's fork branch is named after !2's trusted branch, without the prefix.
    const three = w.openForkMr(twoBranch.slice("trusted-".length), frank, frankFork);
    await w.settle();
    w.sim.comment(w.app.id, three.iid, w.maya.id, "/trust");
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, twoBranch)?.sha, two.sha, "!2's grant still points at !2's commit");
    const threeBranch = record(w, three.iid).branch!;
    assert.notEqual(threeBranch, twoBranch);
    assert.equal(w.sim.branch(w.app.id, threeBranch)?.sha, three.sha);
    const grants = (await w.audit()).filter((e) => e.event === "grant");
    assert.deepEqual(grants.map((e) => e.branch).sort(), [record(w, one.iid).branch, twoBranch, threeBranch].sort());
    assert.equal((await w.audit()).filter((e) => e.event === "revoke").length, 0, "no grant was revoked");
  });
});

describe("who may make a grant", () => {
  it("attack: a Developer's hand-pushed trusted branch at the head is not adopted", async () => {
    const w = await start();
    // A rule that lets Developers push trusted branches (setup refuses this, but a project may have it).
    w.sim.protectBranch(w.app.id, { name: "trusted-feature*", pushAccessLevel: 30, mergeAccessLevel: 30 });
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.dev.id, "/trust");
    await w.settle();
    assert.match(w.replies(mr.iid)[0]?.body ?? "", /only committers/);

    const name = record(w, mr.iid).branch!;
    await w.as(w.dev).Branches.create(w.app.id, name, mr.sha);
    await w.settle();

    assert.deepEqual(botPipelines(w), [], "no trusted pipeline started");
    const state = record(w, mr.iid);
    assert.equal(state.grant, undefined, "not a grant");
    assert.match(w.stickyNotes(mr.iid)[0]!.body, /pushed to the head by @dev, who is not a committer/);
    assert.equal(w.status(mr.sha)?.status, "pending");
    assert.equal((await w.audit()).filter((e) => e.event === "grant").length, 0);
  });

  it("a committer's hand-pushed trusted branch at the head is a grant by them", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const name = record(w, mr.iid).branch!;
    await w.as(w.maya).Branches.create(w.app.id, name, mr.sha);
    await w.settle();
    assert.equal(record(w, mr.iid).grant?.by, "maya");
    assert.equal(botPipelines(w).length, 1);
  });
});

describe("the SHA is the reviewed one", () => {
  it("attack: /trust with an 8-hex prefix is refused even when it is the head's", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha.slice(0, 8)}`);
    await w.settle();
    assert.deepEqual(trustedBranches(w), []);
    assert.deepEqual(botPipelines(w), []);
    assert.match(w.replies(mr.iid)[0]?.body ?? "", /Short commit SHAs are not accepted/);
  });

  it("attack: a bare /trust whose hook was built after a later push does not trust that push", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    // GitLab builds a note's hook data in a background job: a push that lands between the comment and that job
    // shows up as the payload's `last_commit`, the head the committer supposedly saw.
    w.sim.webhookMode = "hold";
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.sim.idle();
    const [noteHook] = w.sim.takeHeldDeliveries().filter((d: Delivery) => d.event === "Note Hook");
    assert.ok(noteHook);
    await new Promise((r) => setTimeout(r, 5));
    const { after: pushed } = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.sim.idle();
    const held = w.sim.takeHeldDeliveries();
    const payload = JSON.parse(noteHook.body) as { merge_request: { last_commit: { id: string } } };
    payload.merge_request.last_commit.id = pushed;
    w.sim.webhookMode = "deliver";
    for (const d of held) await w.sim.redeliver(d);
    const answer = await postWebhook(w.service.receiverUrl!, payload, { event: "Note Hook" });
    assert.equal(answer.status, 202);
    await w.settle();

    assert.deepEqual(trustedBranches(w), [], "the pushed commit was not trusted");
    assert.deepEqual(botPipelines(w), []);
    const [reply] = w.replies(mr.iid);
    assert.match(reply?.body ?? "", new RegExp(`may not be the commit you reviewed.*\`/trust ${pushed}\``));
  });

  it("a bare /trust of a head that predates the comment is granted; the note invites the full SHA", async () => {
    const w = await start();
    const mr: SimMergeRequest = w.openForkMr();
    await w.settle();
    assert.ok(w.stickyNotes(mr.iid)[0]!.body.includes(`/trust ${mr.sha}`), "a ready-to-copy /trust <full sha>");
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.equal(botPipelines(w).length, 1);
  });

  it("trust.require_sha: a bare /trust is refused, /trust <full sha> is granted", async () => {
    const w = await start({ config: { trust: { require_sha: true } } });
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.deepEqual(botPipelines(w), []);
    assert.match(w.replies(mr.iid)[0]?.body ?? "", new RegExp(`name the commit they reviewed.*/trust ${mr.sha}`));
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    assert.equal(botPipelines(w).length, 1);
  });
});

describe("what the bot renders", () => {
  /** Text GitLab would render as Markdown text (not code) in the note: where a mention or link would live. */
  function renderedText(body: string): string {
    const texts: string[] = [];
    const walk = (node: { type: string; value?: string; children?: unknown[] }) => {
      // An HTML comment (the hidden record) is not rendered at all; any other HTML would be.
      if (node.type === "text" || (node.type === "html" && !node.value?.startsWith("<!--"))) texts.push(node.value ?? "");
      if (node.type === "inlineCode" || node.type === "code") return;
      for (const child of node.children ?? []) walk(child as typeof node);
    };
    walk(fromMarkdown(body) as never);
    return texts.join("\n");
  }

  it("attack: backticks in a branch name cannot break out of the note's code spans (a live @all)", async () => {
    const w = await start();
    // Git allows backticks, `@`, `<`, `>` and `]` in branch names (not `[`, `:`, spaces).
    const evil = "x`@all`<img>`";
    w.sim.push(w.app.id, evil, { userId: w.dev.id });
    const mr = w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: evil, authorId: w.dev.id });
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const [pipeline] = botPipelines(w);
    assert.ok(pipeline);
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    w.sim.mergeMergeRequest(w.app.id, mr.iid, w.maya.id);
    await w.settle();

    for (const note of w.sim.notes(w.app.id, mr.iid).filter((n) => n.authorId === w.bot.id)) {
      const text = renderedText(note.body);
      assert.doesNotMatch(text, /@all/, `no live mention in: ${note.body}`);
      assert.doesNotMatch(text, /<img>/, `no raw HTML in: ${note.body}`);
    }
  });
});
