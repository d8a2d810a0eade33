/**
 * A note flood from a non-committer, end to end (the simulator over HTTP, the real service and Redis): one reply,
 * a bounded number of GitLab calls, and a committer's command on another MR is not held up behind it.
 *
 * Before the fix, 200 `/trust` notes from a Developer got 200 replies for about 600 API calls, and a Maintainer's
 * `/trust` on another MR waited behind all of them. The notes arrive as a burst (GitLab's Sidekiq sends webhooks
 * concurrently), so all of them are queued ahead of the Maintainer's. Wall-clock figures are printed, not asserted
 * beyond a very generous bound (machines are noisy): the assertions are on counts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RequestLogEntry, SimMergeRequest } from "../../src/simulator/gitlab-simulator.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { waitFor } from "../support/wait.js";

const start = worldPerTest();

const FLOOD = 200;
/** GitLab calls the whole flood may cost: one pass over MR A with its refusal reply, and Dev's access level. */
const FLOOD_CALL_BUDGET = 10;

interface Timing {
  /** From sending the webhooks to the trusted pipeline's creation. */
  fromBurstMs: number;
  /** From the receiver's answer to the Maintainer's note to the pipeline's creation: the bot's own share. */
  fromDeliveryMs: number;
}

/**
 * Dev posts `flood` `/trust` notes on `a`, then Maya `/trust` on `mr`; the webhooks are held and then sent all at
 * once. Resolves when the trusted pipeline of `mr` exists.
 */
async function burst(w: TrustWorld, flood: number, a: SimMergeRequest, mr: SimMergeRequest): Promise<Timing> {
  const head = w.mr(mr.iid).sha;
  w.sim.webhookMode = "hold";
  for (let i = 0; i < flood; i++) w.sim.comment(w.app.id, a.iid, w.dev.id, "/trust");
  w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
  await w.sim.idle();
  const held = w.sim.takeHeldDeliveries();
  const mayas = held.at(-1);
  assert.ok(mayas && held.length === flood + 1);
  w.sim.webhookMode = "deliver";
  const sent = Date.now();
  await Promise.all(held.map((d) => w.sim.redeliver(d)));
  const pipeline = await waitFor(
    `the trusted pipeline of !${mr.iid}`,
    () => w.sim.pipelines(w.app.id).find((p) => p.ref.startsWith("trusted-") && p.sha === head),
    60_000,
    5,
  );
  const created = w.sim.requestLog.find((e) => e.route === "POST /projects/:id/pipeline" && e.status === 201);
  const delivered = w.sim.deliveryLog.find((d) => d.idempotencyKey === mayas.idempotencyKey && d.status === 202);
  assert.ok(created && delivered, `pipeline ${pipeline.id} created by the bot after the note was accepted`);
  return { fromBurstMs: created.at - sent, fromDeliveryMs: created.at - delivered.at };
}

/** The calls that concern MR A or the flooding user: A's MR routes, A's head commit, Dev's membership. */
function floodCalls(entries: readonly RequestLogEntry[], w: TrustWorld, a: SimMergeRequest): RequestLogEntry[] {
  const head = w.mr(a.iid).sha;
  const aRoute = new RegExp(`/merge_requests/${a.iid}(/|\\?|$)`);
  return entries.filter(
    (e) => aRoute.test(e.path) || e.path.includes(head) || e.path.includes(`/members/all/${w.dev.id}`),
  );
}

async function deferredJobs(w: TrustWorld): Promise<number> {
  const { values } = await w.service.metrics.jobs.get();
  return values.filter((v) => v.labels.outcome === "deferred").reduce((sum, v) => sum + v.value, 0);
}

describe("note flood", () => {
  it("abuse: 200 /trust notes from a non-committer", async (t) => {
    const w = await start({ logLevel: "info" });
    const a = w.openForkMr("flood-a");
    const b = w.openForkMr("feature-b");
    const c = w.openForkMr("feature-c");
    await w.settle();

    // Without a flood: Maya trusts C.
    w.sim.clearRequestLog();
    const quiet = await burst(w, 0, a, c);
    await w.settle();
    const quietCalls = w.sim.requestLog.length;

    // Dev (a Developer, not a committer) posts 200 `/trust` notes on A; Maya trusts B.
    w.sim.clearRequestLog();
    const deferredBefore = await deferredJobs(w);
    const flooded = await burst(w, FLOOD, a, b);
    await w.settle(120_000);
    const all = [...w.sim.requestLog];
    const flood = floodCalls(all, w, a);
    const replies = w.replies(a.iid);
    const ignored = w.logLines.filter((l) => String(l["msg"]).includes("answered on this merge request already"));

    const figures = {
      notes: FLOOD,
      repliesOnA: replies.length,
      floodCalls: flood.length,
      floodRoutes: [...new Set(flood.map((e) => e.route))],
      commandsIgnoredWithoutCalls: ignored.length,
      jobsDeferredForTheMrLock: (await deferredJobs(w)) - deferredBefore,
      callsForBWithFlood: all.length - flood.length,
      callsForCWithoutFlood: quietCalls,
      mayasTrustToPipelineMs: {
        withoutFlood: quiet,
        withFlood: flooded,
      },
    };
    t.diagnostic(JSON.stringify(figures));
    console.log("note flood:", JSON.stringify(figures, null, 2));

    assert.equal(replies.length, 1, "one refusal reply on A, not one per note");
    assert.match(replies[0]?.body ?? "", /^@dev has the Developer role here; only committers/);
    assert.ok(flood.length <= FLOOD_CALL_BUDGET, `the flood cost ${flood.length} GitLab calls`);
    assert.ok(ignored.length >= FLOOD - 10, `queued commands collapse: ${ignored.length} ignored without a call`);
    // Everything else in the log is B's /trust, which costs what C's did.
    assert.ok(all.length - flood.length <= quietCalls + 2, `${all.length - flood.length} calls for B`);
    assert.ok(!w.sim.pipelines(w.app.id).some((p) => p.ref.startsWith("trusted-") && p.sha === w.mr(a.iid).sha));
    // Very generous: the point is that B is not queued behind 200 full passes over A.
    assert.ok(flooded.fromDeliveryMs < 20_000, `B waited ${flooded.fromDeliveryMs} ms after its note was accepted`);
    assert.equal((await w.service.queue.getJobCounts("failed"))["failed"], 0);
  });

  it("abuse: malformed commands and /help from a non-member get one reply per merge request too", async () => {
    const w = await start();
    const a = w.openForkMr("flood-a");
    await w.settle();
    w.sim.clearRequestLog();
    const notes = ["/trust 1234567", "/trust not-a-sha", "/help", "/trust\n/untrust", "/retest now"];
    for (let i = 0; i < 30; i++) w.sim.comment(w.app.id, a.iid, w.dave.id, notes[i % notes.length]!);
    await w.settle(60_000);
    assert.equal(w.replies(a.iid).length, 1, "one reply, whatever the notes say");
    assert.ok(w.sim.requestLog.length <= FLOOD_CALL_BUDGET, `${w.sim.requestLog.length} GitLab calls for 30 notes`);
  });
});
