/**
 * A grant is never half-applied: whatever point a `/trust` job dies at, the retry or the next look finishes it with
 * the right granter, one pipeline, its award and its audit entry. End to end: the simulator over HTTP, the service
 * with a real Redis.
 *
 * A job that dies in the middle leaves GitLab in a state these tests build directly, as the bot's own user, through
 * GitLab's API (the branch written, the pipeline created, the note not yet updated), plus whatever the bot wrote to
 * Redis before the write (the grant written ahead). Then they let the bot carry on as it would after a crash.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runSweepOnce } from "../../src/runtime.js";
import { decodeState } from "../../src/trust/state.js";
import { TrustStore } from "../../src/trust/store.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { waitFor } from "../support/wait.js";

const start = worldPerTest();

function record(w: TrustWorld, iid: number) {
  const [note] = w.stickyNotes(iid);
  assert.ok(note, `a sticky note on !${iid}`);
  return decodeState(note.body);
}

/** Pipelines the bot created through the API on `ref`. */
function botPipelines(w: TrustWorld, ref: string) {
  return w.pipelinesOn(ref).filter((p) => p.source === "api");
}

describe("durable grants", () => {
  it("a /trust that died after its branch and pipeline is a grant by its committer, not one 'pushed by hand'", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const name = w.trustedBranch(mr);
    // Maya comments /trust; the job writes the grant ahead, the branch and the pipeline, then dies.
    w.sim.webhookMode = "drop";
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    const store = new TrustStore(w.redis, w.config.redis.prefix);
    const key = { projectId: w.app.id, mrIid: mr.iid };
    await store.writeIntent(key, {
      command: "trust",
      sha: mr.sha,
      by: "maya",
      at: new Date().toISOString(),
      noteId: command.id,
      noteUrl: `${mr.webUrl}#note_${command.id}`,
    });
    const asBot = w.as(w.bot);
    await asBot.Branches.create(w.app.id, name, mr.sha);
    await asBot.Pipelines.create(w.app.id, name);
    w.sim.webhookMode = "deliver";

    // The next full look (a sweep) finds the branch at the head.
    await runSweepOnce({ config: w.config, logger: w.logger });
    await w.settle();

    const state = record(w, mr.iid);
    assert.equal(state.grant?.by, "maya", "granted by the committer who commented");
    assert.equal(state.grant?.manual, undefined, "not a hand-made branch");
    assert.ok(state.handled?.includes(command.id), "the command counts as carried out");
    assert.equal(botPipelines(w, name).length, 1, "the pipeline the job created is the trusted one; no second");
    assert.deepEqual(
      w.sim.awardEmoji(w.app.id, mr.iid, command.id).map((e) => e.name),
      ["thumbsup"],
    );
    const grants = (await w.audit()).filter((e) => e.event === "grant");
    assert.deepEqual(
      grants.map((e) => [e.by, e.reason]),
      [["maya", "/trust"]],
    );
  });

  it("a retried /trust finds its branch already moved and its pipeline created: no delete, no second pipeline", async () => {
    const w = await start();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const name = w.trustedBranch(mr);
    const { after: newHead } = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.settle();
    assert.match(w.stickyNotes(mr.iid)[0]!.body, /Trust is stale/);

    // The first attempt of Maya's second /trust moved the branch and created the pipeline, then died: webhooks of
    // those writes were lost with it, and the note still records the old grant.
    w.sim.webhookMode = "drop";
    const asBot = w.as(w.bot);
    await asBot.Branches.remove(w.app.id, name);
    await asBot.Branches.create(w.app.id, name, newHead);
    await asBot.Pipelines.create(w.app.id, name);
    w.sim.webhookMode = "deliver";
    const deletesBefore = w.sim.requestLog.filter((r) => r.method === "DELETE").length;

    // The retry of that job is the same command.
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${newHead}`);
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, name)?.sha, newHead);
    assert.equal(botPipelines(w, name).filter((p) => p.sha === newHead).length, 1, "one pipeline for the new head");
    assert.equal(
      w.sim.requestLog.filter((r) => r.method === "DELETE").length,
      deletesBefore,
      "a branch already at its target is not deleted",
    );
    assert.equal(record(w, mr.iid).grant?.sha, newHead);
  });

  it("the award and the audit entry are not lost when the award call fails after the note was written", async () => {
    // The command's retry waits long enough for a full look (a sweep) to read the note first.
    const w = await start({ config: { worker: { attempts: 10, backoff_base_ms: 3000, backoff_max_ms: 3000 } } });
    const mr = w.openForkMr();
    await w.settle();
    w.sim.failNext(3, 502, { route: /award_emoji/ });
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await waitFor(
      "the award to fail after the note recorded the grant",
      () =>
        w.sim.requestLog.some((r) => /award_emoji/.test(r.route) && r.status === 502) &&
        record(w, mr.iid).handled?.includes(command.id),
      15_000,
    );
    // A full look reads the note (the command handled) before the command's retry.
    await runSweepOnce({ config: w.config, logger: w.logger });
    await w.settle(30_000);

    assert.deepEqual(
      w.sim.awardEmoji(w.app.id, mr.iid, command.id).map((e) => e.name),
      ["thumbsup"],
      "the award is given once GitLab takes it",
    );
    const grants = (await w.audit()).filter((e) => e.event === "grant");
    assert.deepEqual(
      grants.map((e) => e.by),
      ["maya"],
      "exactly one audit entry for the grant",
    );
    assert.equal(botPipelines(w, w.trustedBranch(mr)).length, 1);
  });

  it("after a merge, the note and status show how the cancelled trusted pipeline ended (inferred: graceful cancel)", async () => {
    const w = await start();
    w.sim.gracefulCancel = true;
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const [pipeline] = botPipelines(w, w.trustedBranch(mr));
    assert.ok(pipeline);
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    await w.settle();

    w.sim.mergeMergeRequest(w.app.id, mr.iid, w.maya.id);
    await w.settle();
    assert.equal(w.sim.pipeline(w.app.id, pipeline.id).status, "canceling", "the merge asked GitLab to cancel it");
    w.sim.finishCanceling(w.app.id, pipeline.id);
    await w.settle();

    const state = record(w, mr.iid);
    assert.equal(state.closed?.state, "merged");
    assert.equal(state.pipeline?.status, "canceled", "the note shows the final state");
    assert.match(w.stickyNotes(mr.iid)[0]!.body, /\*\*canceled\*\*/);
    assert.equal(w.status(mr.sha)?.status, "canceled", "so does the commit status");
  });
});
