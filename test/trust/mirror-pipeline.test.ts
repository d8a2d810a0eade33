/**
 * Mirroring a trusted pipeline's status reads the pipeline, not the MR (workflow.ts `mirrorsOnly`, queue.ts: mirror
 * reconciles coalesce only with each other), while an MR event that arrives with it still gets a pass of its own.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeState } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

async function trustedRunning(w: TrustWorld) {
  const mr = w.openForkMr();
  w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
  await w.settle();
  const pipeline = w.pipelinesOn(w.trustedBranch(mr))[0];
  assert.ok(pipeline, "the trusted pipeline");
  w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
  await w.settle();
  return { mr, pipeline };
}

describe("pipeline mirroring", () => {
  it("a trusted pipeline's success is mirrored without reading the MR again: 3 calls", async () => {
    const w = await start();
    const { mr, pipeline } = await trustedRunning(w);
    w.sim.clearRequestLog();
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    const routes = w.sim.requestLog.map((e) => e.route).sort();
    assert.deepEqual(routes, [
      "GET /projects/:id/pipelines/:pipeline_id/jobs",
      "POST /projects/:id/statuses/:sha",
      "PUT /projects/:id/merge_requests/:iid/notes/:note_id",
    ]);
    assert.equal(w.status(mr.sha)?.status, "success");
  });

  it("a push delivered together with the pipeline's end still makes the trust stale (never absorbed by the mirror)", async () => {
    const w = await start();
    const { mr, pipeline } = await trustedRunning(w);
    w.sim.webhookMode = "hold";
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    w.sim.push(w.daveFork.id, mr.sourceBranch, { userId: w.dave.id });
    await w.sim.idle();
    const held = w.sim.takeHeldDeliveries();
    w.sim.webhookMode = "deliver";
    // Both queued before either runs, in both orders (one MR per order would need two worlds: the MR update
    // first, whose waiting reconcile a mirror reconcile enqueued after it must not replace).
    const ordered = [
      ...held.filter((d) => d.event !== "Pipeline Hook"),
      ...held.filter((d) => d.event === "Pipeline Hook"),
    ];
    for (const d of ordered) assert.ok((await w.sim.redeliver(d)).status < 300);
    await w.settle();
    const state = decodeState(w.stickyNotes(mr.iid)[0]?.body);
    assert.equal(state.grant?.sha, mr.sha, "the grant is still the reviewed SHA");
    assert.equal(state.staleHead, w.mr(mr.iid).sha, "the new head is recorded as stale");
    assert.notEqual(w.mr(mr.iid).sha, mr.sha);
  });
});
