/**
 * Merge gating on Premium and Ultimate (`trust.approve`, `trust.external_status_check`): against an EE simulator
 * with the approval rule (or the status check) in place, a fork MR merges only once the trusted pipeline passed for
 * its head; new commits or a failed pipeline block it again. And `setup` creates the rule and the check where the
 * tier has them, and says "not available on this tier" where it does not.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configSchema } from "../../src/config/config.js";
import { AccessLevel, GitLabSimulator } from "../../src/simulator/gitlab-simulator.js";
import { runSetup } from "../../src/trust/setup.js";
import { captureLogger } from "../support/capture-logger.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

/** Tries to merge the MR as a maintainer, as the merge button would: the HTTP status GitLab answers. */
async function mergeStatus(w: TrustWorld, iid: number): Promise<number> {
  try {
    await w.as(w.maya).MergeRequests.merge(w.app.id, iid);
    return 200;
  } catch (error) {
    const status = (error as { cause?: { response?: { status?: number } } }).cause?.response?.status;
    return status ?? -1;
  }
}

function approvedBy(w: TrustWorld, iid: number): number[] {
  return w.sim.approvals(w.app.id, iid);
}

describe("merge gating: the bot as a required approver (Premium)", () => {
  const start = worldPerTest();

  async function premiumWorld() {
    const w = await start({ config: { trust: { approve: true } } });
    w.sim.setInstance({ enterprise: true, tier: "premium" });
    await w.as(w.maya).MergeRequestApprovals.createApprovalRule(w.app.id, "trusted-mr-bot", 1, {
      userIds: [w.bot.id],
    } as never);
    return w;
  }

  it("a fork MR cannot merge until the trusted pipeline for its head passed; a push withdraws the approval", async () => {
    const w = await premiumWorld();
    const mr = w.openForkMr();
    await w.settle();
    assert.equal(await mergeStatus(w, mr.iid), 405, "nothing trusted: the approval rule blocks the merge");

    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(pipeline);
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    await w.settle();
    assert.deepEqual(approvedBy(w, mr.iid), [], "no approval while the pipeline runs");
    assert.equal(await mergeStatus(w, mr.iid), 405);

    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    assert.deepEqual(approvedBy(w, mr.iid), [w.bot.id], "approved once the pipeline passed for the head");
    const approve = w.sim.requestLog.filter((r) => r.route === "POST /projects/:id/merge_requests/:iid/approve");
    assert.deepEqual(
      approve.map((r) => r.status),
      [201],
      "approved once",
    );

    // New commits: the approval is withdrawn (GitLab's "remove approvals on push" may be off), the MR blocked again.
    w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.settle();
    assert.deepEqual(approvedBy(w, mr.iid), [], "the bot withdrew its approval of the old head");
    assert.equal(await mergeStatus(w, mr.iid), 405);

    // Trusting and passing the new head approves again, and the MR merges.
    const head = w.mr(mr.iid).sha;
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${head}`);
    await w.settle();
    const second = w.pipelinesOn(w.trustedBranch(mr)).at(-1);
    assert.ok(second && second.sha === head);
    w.sim.setPipelineStatus(w.app.id, second.id, "success");
    await w.settle();
    assert.deepEqual(approvedBy(w, mr.iid), [w.bot.id]);
    assert.equal(await mergeStatus(w, mr.iid), 200);
  });

  it("a failed trusted pipeline gives no approval", async () => {
    const w = await premiumWorld();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(pipeline);
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "failed");
    await w.settle();
    assert.deepEqual(approvedBy(w, mr.iid), []);
    assert.equal(await mergeStatus(w, mr.iid), 405);
  });
});

describe("merge gating: the external status check (Ultimate)", () => {
  const start = worldPerTest();

  it("the check passes for the head the trusted pipeline passed for; a new head is pending again", async () => {
    const w = await start({ config: { trust: { external_status_check: true } } });
    w.sim.setInstance({ enterprise: true, tier: "ultimate" });
    await w.as(w.maya).ExternalStatusChecks.create(w.app.id, "trusted-mr-bot", "https://bot.example.com/");
    const mr = w.openForkMr();
    await w.settle();
    assert.equal(await mergeStatus(w, mr.iid), 405, "no answer yet: the status check blocks the merge");

    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(pipeline);
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    assert.deepEqual(
      w.sim.statusCheckResponses(w.app.id, mr.iid).map((r) => [r.sha, r.status]),
      [[mr.sha, "passed"]],
    );

    w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.settle();
    assert.equal(await mergeStatus(w, mr.iid), 405, "the new head has no answer: pending");
  });
});

describe("setup: approval rule and status check per tier", () => {
  const logger = captureLogger("warn").logger;

  async function setupOn(instance: { enterprise: boolean; tier?: "free" | "premium" | "ultimate" }) {
    const sim = await GitLabSimulator.start(instance);
    const bot = sim.addUser({ username: "trusted-bot", bot: true });
    const org = sim.addGroup({ path: "org" });
    sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
    const app = sim.addProject({ path: "org/app" });
    const config = configSchema.parse({
      gitlab: { url: sim.url, token: bot.token },
      webhook: { secret: "s3cret" },
      server: { public_url: "https://bot.example.com/webhook" },
      trust: { approve: true, external_status_check: true },
    });
    const lines: string[] = [];
    const run = () =>
      runSetup({ config, logger, projectPath: "org/app", dryRun: false, out: { write: (t) => lines.push(t) } });
    return { sim, bot, app, run, lines };
  }

  it("EE Ultimate: creates the rule requiring the bot and registers the check; a second run changes nothing", async () => {
    const { sim, bot, app, run } = await setupOn({ enterprise: true, tier: "ultimate" });
    try {
      const steps = await run();
      const gating = steps.filter((s) => /approval rule|status check/.test(s.what)).map((s) => [s.what, s.action]);
      assert.deepEqual(gating, [
        ["approval rule trusted-mr-bot", "create"],
        ["external status check trusted-mr-bot", "create"],
      ]);
      assert.deepEqual(
        sim.approvalRules(app.id).map((r) => [r.name, r.approvalsRequired, r.userIds]),
        [["trusted-mr-bot", 1, [bot.id]]],
      );
      assert.deepEqual(
        sim.externalStatusChecks(app.id).map((c) => [c.name, c.externalUrl]),
        [["trusted-mr-bot", "https://bot.example.com/webhook"]],
      );
      const again = (await run()).filter((s) => /approval rule|status check/.test(s.what)).map((s) => s.action);
      assert.deepEqual(again, ["ok", "ok"]);
    } finally {
      await sim.stop();
    }
  });

  it("CE: both reported as not available on this tier, nothing created", async () => {
    const { sim, app, run, lines } = await setupOn({ enterprise: false });
    try {
      const steps = await run();
      const gating = steps.filter((s) => /approval rule|status check/.test(s.what));
      assert.deepEqual(
        gating.map((s) => s.action),
        ["ok", "ok"],
      );
      for (const s of gating) assert.match(s.detail, /not available on this tier/);
      assert.match(lines.join(""), /\[ok\] approval rule trusted-mr-bot: not available on this tier/);
      assert.deepEqual(sim.approvalRules(app.id), []);
    } finally {
      await sim.stop();
    }
  });

  it("EE Premium: the rule is created, the status check is not available (Ultimate only)", async () => {
    const { sim, run } = await setupOn({ enterprise: true, tier: "premium" });
    try {
      const steps = (await run()).filter((s) => /approval rule|status check/.test(s.what));
      assert.deepEqual(
        steps.map((s) => s.action),
        ["create", "ok"],
      );
      assert.match(steps[1]?.detail ?? "", /not available on this tier/);
    } finally {
      await sim.stop();
    }
  });
});
