/**
 * Free events (issue "Scale"): an event that cannot change what the bot shows is dropped from the payload alone, so
 * it costs no GitLab call and no reconcile. End to end: the simulator's webhooks, the receiver, the worker.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

describe("free events", () => {
  it("a title edit on an MR costs the bot no GitLab call and no reconcile", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const reconcilesBefore = (await w.service.queue.getJobCounts("completed")).completed ?? 0;
    const from = w.sim.requestLog.length;
    await w.as(w.maya).MergeRequests.edit(w.app.id, mr.iid, { title: "A better title", description: "Now described" });
    await w.settle();
    const botCalls = w.sim.requestLog.slice(from).filter((r) => r.userId === w.bot.id);
    assert.deepEqual(
      botCalls.map((r) => r.route),
      [],
      "no GitLab call for an edit of what the bot does not read",
    );
    const reconcilesAfter = (await w.service.queue.getJobCounts("completed")).completed ?? 0;
    assert.equal(reconcilesAfter, reconcilesBefore, "no job either");
  });
});
