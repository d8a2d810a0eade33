/**
 * Pipeline events of the trusted pipeline, end to end (simulator, receiver, worker, Redis), in the situations where
 * the MR's reconciles coalesce: events that pile up while the MR is busy, events out of order, the same status twice
 * for one pipeline (a retry), and the echoes of the bot's own writes. Every status an event reports must reach
 * observe although only one reconcile runs for them all: it travels as a durable hint, never as a job's data.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMrLocks, type MrLock } from "../../src/queue/mr-lock.js";
import type { Delivery } from "../../src/simulator/gitlab-simulator.js";
import { decodeState } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { waitFor } from "../support/wait.js";

const start = worldPerTest();

/** Takes the MR's lock as a long-running job of that MR would: its reconciles are deferred until release. */
async function holdMr(w: TrustWorld, iid: number): Promise<MrLock> {
  const locks = createMrLocks({ redis: w.redis, prefix: w.config.redis.prefix, ttlMs: 30_000 });
  const lock = await locks.tryAcquire({ projectId: w.app.id, mrIid: iid });
  assert.ok(lock, "the MR is not locked by anyone else");
  return lock;
}

/**
 * Waits until every delivered webhook has been handled as far as it can be while the MR is locked: nothing but
 * the MR's deferred reconciles is left in the queue.
 */
async function quietBehindLock(w: TrustWorld): Promise<void> {
  let quiet = 0;
  await waitFor(
    "every job except the MR's deferred reconcile done",
    async () => {
      await w.sim.idle();
      const busy = await w.service.queue.getJobs(["waiting", "active", "prioritized"]);
      quiet = busy.every((j) => j.data.kind === "reconcile") ? quiet + 1 : 0;
      return quiet >= 6;
    },
    20_000,
    50,
  );
}

/** Pipeline Hook deliveries held by the simulator, in the order GitLab fired them. */
function heldPipelineEvents(w: TrustWorld): Delivery[] {
  const held = w.sim.takeHeldDeliveries();
  const others = held.filter((d) => d.event !== "Pipeline Hook");
  assert.deepEqual(
    others.map((d) => d.event),
    [],
    "only pipeline events were held",
  );
  return held;
}

function statusOf(d: Delivery): string {
  return (JSON.parse(d.body) as { object_attributes: { status: string } }).object_attributes.status;
}

async function completed(w: TrustWorld, kind: string): Promise<number> {
  const metric = await w.service.metrics.jobs.get();
  return metric.values
    .filter((v) => v.labels.kind === kind && v.labels.outcome === "completed")
    .reduce((sum, v) => sum + v.value, 0);
}

/** A fork MR trusted by Maya, its pipeline created and mirrored as running. */
async function trustedMr(w: TrustWorld) {
  const mr = w.openForkMr();
  w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
  await w.settle();
  const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
  assert.ok(pipeline, "the trusted pipeline was created");
  assert.equal(w.status(mr.sha)?.status, "running");
  return { mr, pipeline };
}

function assertFailureMirrored(w: TrustWorld, iid: number, sha: string): void {
  assert.equal(w.status(sha)?.status, "failed");
  assert.match(w.status(sha)?.description ?? "", /1 failed job \(test\)/);
  const [note] = w.stickyNotes(iid);
  assert.ok(note);
  assert.match(note.body, /Failed jobs: \[`test`\]\(<.*\/-\/jobs\/\d+>\)\./);
  assert.equal(decodeState(note.body).pipeline?.status, "failed");
}

describe("pipeline events", () => {
  it("pending, running and failed arriving while the MR is busy coalesce into one reconcile that still mirrors the failure", async () => {
    const w = await start();
    const { mr, pipeline } = await trustedMr(w);
    w.sim.setTestReportSummary(w.app.id, pipeline.id, {
      total: 3,
      success: 2,
      failed: 1,
      skipped: 0,
      error: 0,
      suites: [{ name: "unit", total: 3, failed: 1 }],
    });

    w.sim.webhookMode = "hold";
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "pending");
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.sim.idle();
    const events = heldPipelineEvents(w);
    w.sim.webhookMode = "deliver";
    assert.deepEqual(events.map(statusOf), ["pending", "running", "failed"]);

    const lock = await holdMr(w, mr.iid);
    try {
      // The first event alone, until its work is parked behind the lock; then the rest, which coalesce with it.
      await w.sim.redeliver(events[0]!);
      await quietBehindLock(w);
      for (const d of events.slice(1)) await w.sim.redeliver(d);
      await quietBehindLock(w);
      const waiting = await w.service.queue.getJobs(["delayed", "waiting", "active", "prioritized"]);
      assert.ok(
        waiting.filter((j) => j.data.kind === "reconcile").length <= 1,
        "the MR's reconciles coalesced into one",
      );
      assert.equal(w.status(mr.sha)?.status, "running", "nothing mirrored while the MR is busy");
    } finally {
      await lock.release();
    }
    await w.settle();

    assertFailureMirrored(w, mr.iid, mr.sha);
    assert.match(w.stickyNotes(mr.iid)[0]!.body, /Tests: 3 total, 2 passed, 1 failed/);
  });

  it("failed delivered before running, behind a busy MR: the late running event does not hide the failure", async () => {
    const w = await start();
    const { mr, pipeline } = await trustedMr(w);
    w.sim.webhookMode = "hold";
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.sim.idle();
    const events = heldPipelineEvents(w);
    w.sim.webhookMode = "deliver";
    assert.deepEqual(events.map(statusOf), ["running", "failed"]);

    const lock = await holdMr(w, mr.iid);
    try {
      for (const d of [...events].reverse()) await w.sim.redeliver(d);
      await quietBehindLock(w);
    } finally {
      await lock.release();
    }
    await w.settle();

    assertFailureMirrored(w, mr.iid, mr.sha);
  });

  it("a retried pipeline that fails again is mirrored again: the same pipeline and status twice are two events", async () => {
    const w = await start();
    const { mr, pipeline } = await trustedMr(w);
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assertFailureMirrored(w, mr.iid, mr.sha);
    const firstFailure = w.stickyNotes(mr.iid)[0]!.body;

    // Retried by hand (the pipeline page's "Retry"), not through the bot: only the events say it ran again.
    await w.as(w.maya).Pipelines.retry(w.app.id, pipeline.id);
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "running");

    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assertFailureMirrored(w, mr.iid, mr.sha);
    assert.notEqual(w.stickyNotes(mr.iid)[0]!.body, firstFailure, "links the retried job, not the first one");

    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/retest");
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "running");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assertFailureMirrored(w, mr.iid, mr.sha);
  });

  it("an event with news that arrives while a job reconciles the MR gets another pass in that same job", async () => {
    const w = await start({ logLevel: "debug" });
    const { mr, pipeline } = await trustedMr(w);
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assertFailureMirrored(w, mr.iid, mr.sha);

    // Retried by hand; its events wait until a reconcile of the MR is half-way through its GET of the MR.
    w.sim.webhookMode = "hold";
    await w.as(w.maya).Pipelines.retry(w.app.id, pipeline.id);
    await w.sim.idle();
    const events = heldPipelineEvents(w);
    w.sim.webhookMode = "deliver";
    assert.ok(events.length > 0);
    const reconciles = await completed(w, "reconcile");
    const pipelineJobs = await completed(w, "pipeline");
    w.sim.setFaults({ latencyMs: 1500 });
    // The pass marker: the `pass` field of the MR's record (store.ts).
    const record = `${w.prefix}:trust:record:${w.app.id}:${mr.iid}`;
    const marked = async () => (await w.redis.hexists(record, "pass")) === 1;
    await w.service.enqueueReconcile({ projectId: w.app.id, mrIid: mr.iid }, "test");
    await waitFor("the reconcile's pass to start", marked);
    for (const d of events) await w.sim.redeliver(d);
    await waitFor("the pipeline jobs", async () => (await completed(w, "pipeline")) >= pipelineJobs + events.length);
    assert.equal(await marked(), true, "the events were handled while the pass ran");
    w.sim.clearFaults();
    await w.settle();

    assert.equal(w.status(mr.sha)?.status, "running", "the retry is mirrored");
    assert.equal(await completed(w, "reconcile"), reconciles + 1, "by the one reconcile that was running");
    assert.ok(w.logLines.some((l) => l["msg"] === "hints arrived during the pass; another pass"));
    assert.equal(await marked(), false, "the marker is gone");
  });

  it("the echoes of the bot's own writes (the pipeline it created, the one it cancelled) cost no further reconcile", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const reconciles = await completed(w, "reconcile");
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(pipeline);
    assert.ok((await completed(w, "pipeline")) >= 1, "the created pipeline's event was handled");
    assert.equal(await completed(w, "reconcile"), reconciles, "no reconcile after the command's own pass");

    w.sim.setPipelineStatus(w.app.id, pipeline.id, "pending");
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    await w.settle();
    assert.equal(await completed(w, "reconcile"), reconciles, "pending and running are mirrored as running already");

    const { after: newHead } = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.settle();
    assert.equal(w.sim.pipeline(w.app.id, pipeline.id).status, "canceled");
    assert.equal(w.status(newHead)?.status, "pending");
    assert.equal(await completed(w, "reconcile"), reconciles + 1, "one reconcile for the push, none for its cancel");
    const record = await w.redis.hgetall(`${w.prefix}:trust:record:${w.app.id}:${mr.iid}`);
    assert.deepEqual(Object.keys(record).sort(), ["cache"], "no hint left (nor a marker or an intent)");
  });
});
