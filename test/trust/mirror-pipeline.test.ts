/**
 * Mirroring a trusted pipeline's status reads the pipeline (one GraphQL request, or REST where GitLab has none), not
 * the MR (workflow.ts `knownMr`, queue.ts: mirror reconciles coalesce only with each other), while an MR event that
 * arrives with it still gets a pass of its own.
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
      "POST /api/graphql",
      "POST /projects/:id/statuses/:sha",
      "PUT /projects/:id/merge_requests/:iid/notes/:note_id",
    ]);
    assert.equal(w.status(mr.sha)?.status, "success");
  });

  /** A trusted pipeline whose `test` job and trigger job fail, with a test report. */
  async function failingWithReport(w: TrustWorld) {
    w.sim.setCiJobs(w.app.id, [
      { name: "build", stage: "build" },
      { name: "test", stage: "test" },
      { name: "lint", stage: "test", allowFailure: true },
      { name: "deploy-docs", stage: "deploy", trigger: "org/docs" },
    ]);
    const { mr, pipeline } = await trustedRunning(w);
    w.sim.setTestReportSummary(w.app.id, pipeline.id, {
      total: 5,
      success: 4,
      failed: 1,
      skipped: 0,
      error: 0,
      suites: [{ name: "unit", total: 5, failed: 1 }],
    });
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    await w.settle();
    w.sim.clearRequestLog();
    w.sim.setJobStatus(w.app.id, pipeline.id, "lint", "failed");
    w.sim.setJobStatus(w.app.id, pipeline.id, "deploy-docs", "failed");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assert.equal(w.sim.pipeline(w.app.id, pipeline.id).status, "failed");
    const note = w.stickyNotes(mr.iid)[0]?.body ?? "";
    const state = decodeState(note);
    assert.deepEqual(state.pipeline?.failedJobs?.map((j) => j.name).sort(), ["deploy-docs", "test"], "not lint");
    assert.equal(state.pipeline?.tests?.failed, 1);
    assert.match(note, /Failed jobs: .*\[`deploy-docs`\]\(<.*\/-\/jobs\/\d+>\)/);
    assert.equal(w.status(mr.sha)?.status, "failed");
    assert.ok(w.mr(mr.iid).labels.includes("trust::failed"));
    return { routes: w.sim.requestLog.map((e) => e.route).sort(), pipeline };
  }

  it("a failed pipeline with its failed jobs, trigger jobs and test report: one read (GraphQL), 4 calls", async () => {
    const w = await start();
    assert.deepEqual((await failingWithReport(w)).routes, [
      "POST /api/graphql",
      "POST /projects/:id/statuses/:sha",
      "PUT /projects/:id/merge_requests/:iid",
      "PUT /projects/:id/merge_requests/:iid/notes/:note_id",
    ]);
  });

  /**
   * The failed pipeline's report read over REST after one GraphQL request logged as `graphqlRoute`, then the next
   * status change mirrored without asking GraphQL again (this GitLab is not asked again for a while).
   */
  async function reportOverRestAskedOnce(w: TrustWorld, graphqlRoute: string) {
    const { routes, pipeline } = await failingWithReport(w);
    const rest = [
      "GET /projects/:id/pipelines/:pipeline_id/bridges",
      "GET /projects/:id/pipelines/:pipeline_id/jobs",
      "GET /projects/:id/pipelines/:pipeline_id/test_report_summary",
      "POST /projects/:id/statuses/:sha",
      "PUT /projects/:id/merge_requests/:iid",
      "PUT /projects/:id/merge_requests/:iid/notes/:note_id",
    ];
    assert.deepEqual(routes, [...rest, graphqlRoute].sort());
    w.sim.clearRequestLog();
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "running");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assert.ok(w.sim.requestLog.length > 0, "the retried job's end was mirrored");
    assert.ok(!w.sim.requestLog.some((e) => e.route === graphqlRoute), "without asking GraphQL again");
  }

  it("a GitLab without GraphQL: the same report over REST (jobs, trigger jobs, test report), asked once", async () => {
    const w = await start();
    w.sim.setGraphqlEnabled(false);
    // `POST /api/graphql` answers 404, which the simulator logs as an unknown route.
    await reportOverRestAskedOnce(w, "UNKNOWN");
  });

  it("a GitLab before 16.11 (inferred), whose GraphQL answers pipeline(id:) with 200 and errors: REST, asked once", async () => {
    const w = await start();
    w.sim.setInstance({ version: "16.10.2-ee" });
    await reportOverRestAskedOnce(w, "POST /api/graphql");
  });

  for (const status of [401, 501]) {
    it(`a GraphQL endpoint that refuses the request (${status}): the same report over REST`, async () => {
      const w = await start();
      // A 5xx is tried three times within the request (requester.ts); a 4xx once.
      w.sim.failNext(3, status, { route: /^POST \/api\/graphql$/ });
      const { routes } = await failingWithReport(w);
      assert.ok(routes.includes("GET /projects/:id/pipelines/:pipeline_id/bridges"), `REST after a ${status}`);
      assert.ok(routes.includes("GET /projects/:id/pipelines/:pipeline_id/test_report_summary"));
    });
  }

  it("a GraphQL endpoint answering 502 is an outage like any other: retried, then one read", async () => {
    const w = await start();
    w.sim.failNext(1, 502, { route: /^POST \/api\/graphql$/ });
    const { routes } = await failingWithReport(w);
    assert.equal(routes.filter((r) => r === "POST /api/graphql").length, 2, "the 502, then the answer");
    assert.ok(!routes.includes("GET /projects/:id/pipelines/:pipeline_id/bridges"), "no REST");
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
