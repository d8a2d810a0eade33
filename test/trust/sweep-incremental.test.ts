/**
 * The incremental sweep (sweep.ts): a pass costs list pages, and reconciles only the MRs where GitLab's list
 * answer disagrees with the bot's cache of its last answer, whose pipeline is recorded as running, or whose turn in
 * the verification rota has come. Every case here is an event GitLab sent while the bot was not listening.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runSweepOnce } from "../../src/runtime.js";
import { TrustStore } from "../../src/trust/store.js";
import { decodeState } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

/** One `sweep` subcommand pass; the GitLab calls it made, by route. */
async function sweepOnce(w: TrustWorld, sweep: Partial<TrustWorld["config"]["sweep"]> = {}) {
  await w.settle();
  w.sim.clearRequestLog();
  const result = await runSweepOnce({
    config: { ...w.config, sweep: { ...w.config.sweep, ...sweep } },
    logger: w.logger,
  });
  // The project's policy file is read again once per project per pass (policy.ts): the project and its default
  // branch, whatever the number of MRs. Not a per-MR cost; left out here.
  const routes = w.sim.requestLog
    .filter(
      (e) => !(e.route === "GET /projects/:id/repository/branches/:branch" && /\/branches\/main(\?|$)/.test(e.path)),
    )
    .map((e) => e.route);
  return { result, routes };
}

/** Runs passes until one reconciles nothing (the rota has verified every MR once); the passes it took. */
async function sweepUntilQuiet(w: TrustWorld, sweep: Partial<TrustWorld["config"]["sweep"]> = {}): Promise<number> {
  for (let passes = 1; passes <= 20; passes++) {
    if ((await sweepOnce(w, sweep)).result.reconciled === 0) return passes;
  }
  throw new Error("the sweep never went quiet");
}

const LIST_ROUTES = new Set([
  "GET /projects",
  "GET /projects/:id",
  "GET /projects/:id/merge_requests",
  "GET /projects/:id/repository/branches",
]);

/** A fork MR trusted by a committer with its pipeline passed, and a second MR nobody trusted. */
async function trustedWorld(w: TrustWorld) {
  const trusted = w.openForkMr("feature");
  const waiting = w.openForkMr("other", w.erin, w.erinFork);
  w.sim.comment(w.app.id, trusted.iid, w.maya.id, "/trust");
  await w.settle();
  const pipeline = w.pipelinesOn(w.trustedBranch(trusted))[0];
  assert.ok(pipeline, "the trusted pipeline");
  w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
  await w.settle();
  return { trusted, waiting };
}

describe("incremental sweep", () => {
  it("a pass over MRs where nothing changed reads list pages only, and reconciles nothing", async () => {
    const w = await start();
    await trustedWorld(w);
    await sweepUntilQuiet(w);
    const { result, routes } = await sweepOnce(w);
    assert.equal(result.reconciled, 0);
    assert.deepEqual(
      routes.filter((r) => !LIST_ROUTES.has(r)),
      [],
      `only list pages, got ${routes.join(", ")}`,
    );
    // The bot's projects, the policy file's project read, and one page each of open MRs, trusted branches, and
    // MRs closed and merged since the previous pass.
    assert.equal(routes.length, 6, `6 calls for one project, got ${routes.join(", ")}`);
  });

  it("the rota verifies each open MR once per verify interval, a share per pass, not all at once", async () => {
    const w = await start();
    for (const branch of ["a", "b", "c", "d"]) w.openForkMr(branch);
    await w.settle();
    // 4 MRs, interval 900 s, verify every 1800 s: 2 per pass.
    const sweep = { interval_seconds: 900, verify_interval_seconds: 1800 };
    const first = await sweepOnce(w, sweep);
    const second = await sweepOnce(w, sweep);
    const third = await sweepOnce(w, sweep);
    assert.deepEqual(
      [first.result.reconciled, second.result.reconciled, third.result.reconciled],
      [2, 2, 0],
      "two MRs per pass until each was verified once",
    );
  });

  it("a push to a trusted MR lost while webhooks were down: the next pass marks the trust stale", async () => {
    const w = await start();
    const { trusted } = await trustedWorld(w);
    await sweepUntilQuiet(w);
    w.sim.webhookMode = "drop";
    const pushed = w.sim.push(w.daveFork.id, trusted.sourceBranch, { userId: w.dave.id });
    w.sim.webhookMode = "deliver";
    const { result } = await sweepOnce(w);
    assert.equal(result.reconciled, 1, "only the MR whose head moved");
    const state = decodeState(w.stickyNotes(trusted.iid)[0]?.body);
    assert.equal(state.grant?.sha, trusted.sha);
    assert.notEqual(w.mr(trusted.iid).sha, trusted.sha);
    assert.ok(pushed);
    assert.match(w.stickyNotes(trusted.iid)[0]?.body ?? "", /stale|new commits|since/i);
  });

  it("a trust-state label taken off with its webhook lost: the next pass puts it back", async () => {
    const w = await start();
    const { waiting } = await trustedWorld(w);
    await sweepUntilQuiet(w);
    const label = w.config.trust.state_labels.waiting;
    assert.ok(w.mr(waiting.iid).labels.includes(label));
    w.sim.webhookMode = "drop";
    await w.as(w.maya).MergeRequests.edit(w.app.id, waiting.iid, { removeLabels: label });
    w.sim.webhookMode = "deliver";
    const { result } = await sweepOnce(w);
    assert.equal(result.reconciled, 1);
    assert.ok(w.mr(waiting.iid).labels.includes(label));
  });

  it("a trusted branch moved by hand with its push hook lost: the next pass gives the MR a full look", async () => {
    const w = await start();
    const { trusted } = await trustedWorld(w);
    await sweepUntilQuiet(w);
    w.sim.webhookMode = "drop";
    // Someone with push rights moves the trusted branch to a commit nobody trusted.
    const other = w.sim.push(w.app.id, "main", { userId: w.maya.id }).after;
    await w.as(w.maya).Branches.remove(w.app.id, w.trustedBranch(trusted));
    await w.as(w.maya).Branches.create(w.app.id, w.trustedBranch(trusted), other);
    w.sim.webhookMode = "deliver";
    const { result, routes } = await sweepOnce(w);
    assert.equal(result.reconciled, 1, "only the MR whose trusted branch disagrees with the record");
    assert.ok(routes.includes("GET /projects/:id/repository/branches/:branch"), "the branch is read again");
    // Never a grant: the grant is revoked and the record names the commit the branch was moved to.
    const state = decodeState(w.stickyNotes(trusted.iid)[0]?.body);
    assert.equal(state.grant, undefined);
    assert.equal(state.mismatch?.sha, other);
    // Recorded now: the next pass finds nothing to look at again.
    assert.equal((await sweepOnce(w)).result.reconciled, 0);
  });

  it("a trusted branch made by hand for an MR nobody trusted: one full look, then nothing until it changes", async () => {
    const w = await start();
    const { waiting } = await trustedWorld(w);
    await sweepUntilQuiet(w);
    w.sim.webhookMode = "drop";
    await w.as(w.maya).Branches.create(w.app.id, w.trustedBranch(waiting), "main");
    w.sim.webhookMode = "deliver";
    assert.equal((await sweepOnce(w)).result.reconciled, 1);
    assert.equal(decodeState(w.stickyNotes(waiting.iid)[0]?.body).grant, undefined, "never a grant");
    assert.equal((await sweepOnce(w)).result.reconciled, 0);
  });

  it("a trusted pipeline's end lost: the pass re-reads the MR whose record says running, and only it", async () => {
    const w = await start({ logLevel: "info" });
    const mr = w.openForkMr("feature");
    w.openForkMr("other", w.erin, w.erinFork);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const pipeline = w.pipelinesOn(w.trustedBranch(mr))[0];
    assert.ok(pipeline);
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    await w.settle();
    // The rota's share (1 MR per pass here) goes to the other MR; the running one is reconciled every pass.
    for (let i = 0; i < 3; i++) await sweepOnce(w);
    w.sim.webhookMode = "drop";
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    w.sim.webhookMode = "deliver";
    const { result } = await sweepOnce(w);
    assert.equal(result.reconciled, 1);
    assert.equal(w.status(mr.sha)?.status, "success");
    assert.equal(decodeState(w.stickyNotes(mr.iid)[0]?.body).pipeline?.status, "success");
    await sweepOnce(w);
    const done = w.logLines.filter((l) => l["msg"] === "sweep done").at(-1);
    assert.deepEqual(
      done?.["reconciles"],
      { rota: 1 },
      "finished: no longer reconciled as running (only its rota turn)",
    );
  });

  it("a branch under a committer-branch MR's trusted name is not looked at again every pass", async () => {
    const w = await start();
    w.sim.protectBranch(w.app.id, { name: "release-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    w.sim.push(w.app.id, "release-1", { userId: w.maya.id });
    const mr = w.sim.openMergeRequest({
      sourceProjectId: w.app.id,
      sourceBranch: "release-1",
      authorId: w.maya.id,
      targetProjectId: w.app.id,
    });
    await w.settle();
    w.sim.webhookMode = "drop";
    await w.as(w.maya).Branches.create(w.app.id, w.trustedBranch(mr), "main");
    w.sim.webhookMode = "deliver";
    // Quiet once the rota has verified the MR: the branch is no reason for a reconcile in every pass.
    assert.ok((await sweepUntilQuiet(w)) <= 2);
  });

  it("an MR closed with its webhook lost: the next pass finds it among the recently updated and cleans up", async () => {
    const w = await start();
    const { trusted } = await trustedWorld(w);
    await sweepUntilQuiet(w);
    w.sim.webhookMode = "drop";
    w.sim.closeMergeRequest(w.app.id, trusted.iid, w.maya.id);
    w.sim.webhookMode = "deliver";
    // A long grace: the orphan clean-up may not delete the branch; the MR's own reconcile does.
    const { result } = await sweepOnce(w, { grace_seconds: 86_400 });
    assert.equal(result.reconciled, 1);
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(trusted)), undefined);
    assert.equal(decodeState(w.stickyNotes(trusted.iid)[0]?.body).closed?.state, "closed");
  });

  it("a cold cache: a fork MR costs its notes only (the list gave the MR); the branch list confirms the record", async () => {
    const w = await start();
    const { trusted } = await trustedWorld(w);
    await sweepUntilQuiet(w);
    for (const key of await w.redis.keys(`${w.prefix}:trust:record:*`)) await w.redis.del(key);
    const { result, routes } = await sweepOnce(w);
    assert.equal(result.reconciled, 2);
    const perMr = routes.filter((r) => !LIST_ROUTES.has(r));
    assert.deepEqual(
      perMr,
      ["GET /projects/:id/merge_requests/:iid/notes", "GET /projects/:id/merge_requests/:iid/notes"],
      `1 call per MR, got ${perMr.join(", ")}`,
    );
    assert.equal(decodeState(w.stickyNotes(trusted.iid)[0]?.body).grant?.sha, trusted.sha, "the grant stands");
  });

  it("a cold cache: an open same-project MR is read on its own (the list leaves out its head pipeline)", async () => {
    const w = await start();
    w.sim.push(w.app.id, "topic", { userId: w.dev.id });
    const mr = w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: "topic", authorId: w.dev.id });
    await w.settle();
    await sweepUntilQuiet(w);
    for (const key of await w.redis.keys(`${w.prefix}:trust:record:*`)) await w.redis.del(key);
    const { result, routes } = await sweepOnce(w);
    assert.equal(result.reconciled, 1);
    const perMr = routes.filter((r) => !LIST_ROUTES.has(r)).sort();
    assert.deepEqual(
      perMr,
      [
        "GET /projects/:id/merge_requests/:iid",
        "GET /projects/:id/merge_requests/:iid/notes",
        "GET /projects/:id/repository/branches/:branch",
      ].sort(),
      `the MR, its notes and its source branch's protection, got ${perMr.join(", ")}`,
    );
    assert.equal(w.mr(mr.iid).labels.includes("trust::waiting"), true);
  });

  it("an orphaned trusted branch on a cold start: the MR read, the delete and the note, nothing read twice", async () => {
    const w = await start();
    const { trusted } = await trustedWorld(w);
    w.sim.webhookMode = "drop";
    w.sim.closeMergeRequest(w.app.id, trusted.iid, w.maya.id);
    w.sim.webhookMode = "deliver";
    // A cold start: no records and no previous pass, so the close is found through the orphaned branch.
    for (const pattern of ["record", "sweep"]) {
      for (const key of await w.redis.keys(`${w.prefix}:trust:${pattern}:*`)) await w.redis.del(key);
    }
    const { result, routes } = await sweepOnce(w, { grace_seconds: 0 });
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(trusted)), undefined, "deleted");
    assert.equal(decodeState(w.stickyNotes(trusted.iid)[0]?.body).closed?.state, "closed", "and the note says so");
    assert.equal(result.reconciled, 2, "the waiting MR's cold look and the closed MR's");
    const calls = routes.filter((r) => !LIST_ROUTES.has(r)).sort();
    assert.deepEqual(
      calls,
      [
        "GET /projects/:id/merge_requests/:iid",
        "DELETE /projects/:id/repository/branches/:branch",
        "GET /projects/:id/merge_requests/:iid/notes",
        "PUT /projects/:id/merge_requests/:iid/notes/:note_id",
        "GET /projects/:id/merge_requests/:iid/notes",
      ].sort(),
      `4 calls for the orphan, 1 for the waiting MR; got ${calls.join(", ")}`,
    );
  });

  it("a clean-up look that runs late, after the MR was reopened and trusted again, leaves the new grant alone", async () => {
    const w = await start();
    const { trusted } = await trustedWorld(w);
    // The sweep's clean-up reconcile as it was queued when the MR was closed: the MR then, its branch deleted.
    const closed = { ...w.mr(trusted.iid), state: "closed" as const, updatedAt: "2000-01-01T00:00:00.000Z" };
    await w.service.enqueue([
      {
        kind: "reconcile",
        projectId: w.app.id,
        mrIid: trusted.iid,
        reason: "sweep:cleanup",
        listed: { mr: closed as never, cleanedUp: true },
      },
    ]);
    await w.settle();
    const state = decodeState(w.stickyNotes(trusted.iid)[0]?.body);
    assert.equal(state.grant?.sha, trusted.sha, "the grant stands");
    assert.equal(state.closed, undefined, "the open MR is not recorded as closed");
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(trusted))?.sha, trusted.sha);
  });

  it("a cold start over many same-project MRs reads the project's branch list, not each source branch", async () => {
    const w = await start();
    // Committer branches (protected) and contributor branches, all in org/app.
    w.sim.protectBranch(w.app.id, { name: "release-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    const mrs = [];
    for (let i = 0; i < 60; i++) {
      const branch = i % 6 === 0 ? `release-${i}` : `topic-${i}`;
      w.sim.push(w.app.id, branch, { userId: w.maya.id });
      mrs.push(
        w.sim.openMergeRequest({
          sourceProjectId: w.app.id,
          sourceBranch: branch,
          authorId: w.maya.id,
          targetProjectId: w.app.id,
        }),
      );
    }
    await w.settle();
    const labelsBefore = mrs.map((mr) => w.mr(mr.iid).labels.join(","));
    for (const key of await w.redis.keys(`${w.prefix}:trust:record:*`)) await w.redis.del(key);
    const { result, routes } = await sweepOnce(w);
    assert.equal(result.reconciled, 60);
    const singleReads = w.sim.requestLog.filter(
      (e) => e.route === "GET /projects/:id/repository/branches/:branch" && /\/branches\/(release|topic)-/.test(e.path),
    );
    assert.deepEqual(singleReads, [], "no source branch read on its own");
    assert.equal(routes.filter((r) => r === "GET /projects/:id/repository/branches").length, 2, "trusted + all");
    assert.deepEqual(
      mrs.map((mr) => w.mr(mr.iid).labels.join(",")),
      labelsBefore,
      "committer branches still labelled as such, contributor branches not",
    );
    assert.ok(labelsBefore.some((l) => l.includes("no-detached-pipeline")));
  });

  it("a pass while another holds the sweep does nothing: passes never overlap", async () => {
    const w = await start();
    w.openForkMr();
    await w.settle();
    const store = new TrustStore(w.redis, w.prefix);
    const claim = await store.claimSweep(60_000);
    assert.ok(claim);
    const { result, routes } = await sweepOnce(w);
    assert.equal(result.reconciled, 0);
    assert.deepEqual(routes, []);
    await store.releaseSweep(claim);
    assert.ok((await sweepOnce(w)).result.reconciled > 0);
  });
});
