/**
 * Level-triggered in practice: webhooks repeated and shuffled, webhooks lost with only the sweep to heal, and a
 * GitLab that answers 5xx and 429 part of the time. In every case each MR ends where GitLab's state says it should.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { runSweepOnce } from "../../src/runtime.js";
import type { Delivery } from "../../src/simulator/gitlab-simulator.js";
import { decodeState } from "../../src/trust/state.js";
import { postWebhook } from "../support/webhook-client.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { waitFor } from "../support/wait.js";

const start = worldPerTest();

/** Deterministic shuffle (a fixed seed keeps failures reproducible). */
function shuffle<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Each held delivery three times, in shuffled order: once as GitLab's "Resend" (same Idempotency-Key, which the
 * receiver deduplicates) and twice with a fresh key, as if GitLab had fired the event again, so the workflow
 * itself sees the repeats.
 */
async function deliverEachThriceShuffled(w: TrustWorld, deliveries: Delivery[], seed: number): Promise<void> {
  const sends = deliveries.flatMap((d) => [
    () => w.sim.redeliver(d),
    () => postWebhook(w.service.receiverUrl!, d.body, { event: d.event, idempotencyKey: randomUUID() }),
    () => postWebhook(w.service.receiverUrl!, d.body, { event: d.event, idempotencyKey: randomUUID() }),
  ]);
  for (const send of shuffle(sends, seed)) {
    const answer = await send();
    assert.ok(answer.status >= 200 && answer.status < 300, `delivery answered ${answer.status}`);
  }
}

function apiPipelines(w: TrustWorld, ref: string) {
  return w.pipelinesOn(ref).filter((p) => p.source === "api");
}

describe("resilience", () => {
  it("every webhook delivered three times in shuffled order: one pipeline per SHA, one sticky comment", async () => {
    const w = await start();
    w.sim.webhookMode = "hold";
    const mr = w.openForkMr();
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.sim.idle();
    const phase1 = w.sim.takeHeldDeliveries();
    assert.deepEqual([...new Set(phase1.map((d) => d.event))].sort(), ["Merge Request Hook", "Note Hook"]);
    w.sim.webhookMode = "deliver";
    await deliverEachThriceShuffled(w, phase1, 1);
    await w.settle();

    assert.equal(w.stickyNotes(mr.iid).length, 1);
    const [first] = apiPipelines(w, w.trustedBranch(mr));
    assert.ok(first);
    assert.equal(apiPipelines(w, w.trustedBranch(mr)).length, 1);
    assert.equal(w.sim.awardEmoji(w.app.id, mr.iid, command.id).length, 1);

    // Phase 2: the pipeline runs and passes, Dave pushes, Maya trusts the new head; all of it held, then replayed.
    w.sim.webhookMode = "hold";
    w.sim.setPipelineStatus(w.app.id, first.id, "running");
    w.sim.setPipelineStatus(w.app.id, first.id, "success");
    const { after: newHead } = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.sim.idle();
    const phase2 = w.sim.takeHeldDeliveries();
    w.sim.webhookMode = "deliver";
    await deliverEachThriceShuffled(w, phase2, 2);
    await w.settle();

    const pipelines = apiPipelines(w, w.trustedBranch(mr));
    assert.deepEqual(
      pipelines.map((p) => p.sha),
      [mr.sha, newHead],
      "exactly one trusted pipeline per SHA",
    );
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, newHead);
    assert.equal(w.stickyNotes(mr.iid).length, 1);
    assert.equal(w.status(newHead)?.status, "running");
    assert.equal(w.replies(mr.iid).length, 0);
    const grants = (await w.audit()).filter((e) => e.event === "grant");
    assert.deepEqual(
      grants.map((e) => e.sha),
      [mr.sha, newHead],
    );
  });

  it("webhooks lost for a while: the periodic sweep alone converges every MR and removes orphaned trusted branches", async () => {
    const w = await start({ scheduler: true, config: { sweep: { interval_seconds: 1 } } });
    w.sim.webhookMode = "drop";
    const mr = w.openForkMr();
    await waitFor("the sweep to write the sticky note", () => w.stickyNotes(mr.iid).length === 1, 15_000);
    await waitFor("the awaiting status", () => w.status(mr.sha)?.status === "pending", 15_000);

    // A command is the one thing only its webhook carries.
    w.sim.webhookMode = "deliver";
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    const pipeline = await waitFor("the trusted pipeline", () => apiPipelines(w, w.trustedBranch(mr))[0], 15_000);

    w.sim.webhookMode = "drop";
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await waitFor("success mirrored by the sweep", () => w.status(mr.sha)?.status === "success", 15_000);
    await waitFor("success in the note", () => /\*\*success\*\*/.test(w.stickyNotes(mr.iid)[0]?.body ?? ""), 15_000);

    await w.as(w.maya).Branches.create(w.app.id, "trusted-ghost", mr.sha);
    w.sim.mergeMergeRequest(w.app.id, mr.iid, w.maya.id);
    await waitFor("the merged MR's trusted branch deleted", () => !w.sim.branch(w.app.id, w.trustedBranch(mr)), 15_000);
    await waitFor("the orphan deleted", () => !w.sim.branch(w.app.id, "trusted-ghost"), 15_000);
    await waitFor(
      "the note to say merged",
      () => decodeState(w.stickyNotes(mr.iid)[0]?.body).closed?.state === "merged",
      15_000,
    );
    // The audit entry is a deferred action, completed right after the note that records the transition.
    const cleanups = async () => (await w.audit()).filter((e) => e.event === "cleanup").map((e) => e.branch);
    await waitFor("both clean-ups audited", async () => (await cleanups()).length >= 2, 15_000);
    // Two more sweep passes: none of them cleans up (or audits) a branch again.
    await new Promise((r) => setTimeout(r, 2_500));
    assert.deepEqual((await cleanups()).sort(), [w.trustedBranch(mr), "trusted-ghost"].sort());
    assert.equal(w.stickyNotes(mr.iid).length, 1);
  });

  it("the `sweep` subcommand converges lost events too, and leaves orphans alone during the grace period", async () => {
    const w = await start();
    w.sim.webhookMode = "drop";
    const mr = w.openForkMr();
    await w.as(w.maya).Branches.create(w.app.id, "trusted-ghost", mr.sha);
    const once = (grace: number) =>
      runSweepOnce({ config: { ...w.config, sweep: { ...w.config.sweep, grace_seconds: grace } }, logger: w.logger });

    const first = await once(3600);
    assert.equal(first.failed, 0);
    assert.equal(w.stickyNotes(mr.iid).length, 1);
    assert.equal(w.status(mr.sha)?.status, "pending");
    assert.ok(w.sim.branch(w.app.id, "trusted-ghost"), "kept within the grace period");

    await once(0);
    assert.equal(w.sim.branch(w.app.id, "trusted-ghost"), undefined);
    assert.equal(w.stickyNotes(mr.iid).length, 1);
    assert.deepEqual(
      (await w.audit()).map((e) => [e.event, e.branch, e.reason]),
      [["cleanup", "trusted-ghost", "its name names no merge request"]],
    );
  });

  it("GitLab answering 5xx and 429 part of the time: every MR still converges", async () => {
    const w = await start({
      scheduler: true,
      config: { worker: { attempts: 30, backoff_base_ms: 20, backoff_max_ms: 200 }, sweep: { interval_seconds: 3 } },
    });
    w.sim.setFaults({
      errorRate: 0.1,
      errorStatus: 502,
      rateLimitRate: 0.05,
      retryAfterSeconds: 1,
      rateLimitHeaders: true,
    });
    const mrs = [w.openForkMr("a"), w.openForkMr("b"), w.openForkMr("c", w.erin, w.erinFork)];
    w.sim.push(w.app.id, "d", { userId: w.dev.id });
    mrs.push(w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: "d", authorId: w.dev.id }));
    for (const mr of mrs) w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");

    const branches = mrs.map((mr) => w.trustedBranch(mr));
    const pipelines = await waitFor(
      "a trusted pipeline for every MR",
      () => {
        const found = branches.map((b) => apiPipelines(w, b)[0]);
        return found.every(Boolean) ? found.map((p) => p!) : undefined;
      },
      60_000,
    );
    for (const p of pipelines) w.sim.setPipelineStatus(w.app.id, p.id, "success");
    await waitFor("every status success", () => mrs.every((mr) => w.status(mr.sha)?.status === "success"), 60_000);
    await waitFor(
      "every note says success",
      () => mrs.every((mr) => decodeState(w.stickyNotes(mr.iid)[0]?.body).pipeline?.status === "success"),
      60_000,
    );
    w.sim.clearFaults();
    const faulted = w.sim.requestLog.filter((r) => r.status === 429 || r.status >= 500).length;
    assert.ok(faulted > 0, "faults were injected");
    for (const [i, mr] of mrs.entries()) {
      assert.equal(w.stickyNotes(mr.iid).length, 1, `one sticky note on !${mr.iid}`);
      assert.equal(apiPipelines(w, branches[i]!).length, 1, `one pipeline for !${mr.iid}`);
      assert.equal(w.replies(mr.iid).length, 0);
    }
  });
});
