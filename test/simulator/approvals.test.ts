/**
 * The simulator's approvals (`lib/api/merge_request_approvals.rb`), project approval rules
 * (`ee/lib/api/project_approval_rules.rb`), external status checks (`ee/lib/api/status_checks.rb`) and the merge
 * checks they make (`MergeRequests::Mergeability::CheckApprovedService`, `not_allowed!` in `lib/api/merge_requests.rb`).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { client, raw, rejectsWith, seedWorld } from "./helpers.js";

async function world(instance: { enterprise: boolean; tier?: "free" | "premium" | "ultimate" }) {
  const w = await seedWorld();
  w.sim.setInstance({ tier: "free", ...instance });
  w.sim.push(w.fork.id, "feature", { userId: w.contributor.id });
  const mr = w.sim.openMergeRequest({ sourceProjectId: w.fork.id, sourceBranch: "feature", authorId: w.contributor.id });
  return { ...w, mr };
}

describe("approvals", () => {
  test("approve with sha: 409 naming the head when it is not the head; twice is 401; unapprove without one is 404", async (t) => {
    const { sim, bot, app, mr } = await world({ enterprise: false });
    t.after(() => sim.stop());
    const api = client(sim, bot);
    await rejectsWith(
      api.MergeRequestApprovals.approve(app.id, mr.iid, { sha: "0".repeat(40) }),
      409,
      `SHA does not match HEAD of source branch: ${mr.sha}`,
    );
    const approved = (await api.MergeRequestApprovals.approve(app.id, mr.iid, { sha: mr.sha })) as Record<string, unknown>;
    assert.equal(approved["approved"], true, "CE: approved means any approval");
    assert.equal(approved["user_has_approved"], true);
    await rejectsWith(api.MergeRequestApprovals.approve(app.id, mr.iid, { sha: mr.sha }), 401, "401 Unauthorized");
    await api.MergeRequestApprovals.unapprove(app.id, mr.iid);
    assert.deepEqual(sim.approvals(app.id, mr.iid), []);
    await rejectsWith(api.MergeRequestApprovals.unapprove(app.id, mr.iid), 404, "404 Not Found");
  });

  test("a Reporter may not approve: 401", async (t) => {
    const { sim, reporter, app, mr } = await world({ enterprise: false });
    t.after(() => sim.stop());
    await rejectsWith(client(sim, reporter).MergeRequestApprovals.approve(app.id, mr.iid), 401);
  });

  test("CE has no approval rules nor approval_state: Grape's 404; a merge is not gated by approvals", async (t) => {
    const { sim, bot, committer, app, mr } = await world({ enterprise: false });
    t.after(() => sim.stop());
    const res = await raw(sim, bot, `/projects/${app.id}/approval_rules`);
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: "404 Not Found" });
    assert.equal((await raw(sim, bot, `/projects/${app.id}/merge_requests/${mr.iid}/approval_state`)).status, 404);
    await client(sim, committer).MergeRequests.merge(app.id, mr.iid);
  });

  test("EE Free: creating a rule is 403 (inferred)", async (t) => {
    const { sim, bot, app } = await world({ enterprise: true, tier: "free" });
    t.after(() => sim.stop());
    await rejectsWith(client(sim, bot).MergeRequestApprovals.createApprovalRule(app.id, "x", 1), 403);
  });

  test("EE Premium: a rule requiring the bot blocks the merge (405) until the bot approved; approvals_left says so", async (t) => {
    const { sim, bot, committer, app, mr } = await world({ enterprise: true, tier: "premium" });
    t.after(() => sim.stop());
    const api = client(sim, bot);
    const rule = (await api.MergeRequestApprovals.createApprovalRule(app.id, "trusted-mr-bot", 1, {
      userIds: [bot.id],
    } as never)) as Record<string, unknown>;
    assert.equal(rule["approvals_required"], 1);
    assert.deepEqual((rule["users"] as Array<{ id: number }>).map((u) => u.id), [bot.id]);
    await rejectsWith(api.MergeRequestApprovals.createApprovalRule(app.id, "trusted-mr-bot", 1), 400);

    const before = (await api.MergeRequestApprovals.showConfiguration(app.id, { mergerequestIId: mr.iid })) as Record<
      string,
      unknown
    >;
    assert.equal(before["approved"], false);
    assert.equal(before["approvals_left"], 1);
    // Someone the rule does not name approving does not satisfy it.
    await client(sim, committer).MergeRequestApprovals.approve(app.id, mr.iid);
    await rejectsWith(client(sim, committer).MergeRequests.merge(app.id, mr.iid), 405, "405 Method Not Allowed");

    await api.MergeRequestApprovals.approve(app.id, mr.iid, { sha: mr.sha });
    const state = (await api.MergeRequestApprovals.showApprovalState(app.id, mr.iid)) as {
      rules: Array<{ name: string; approved: boolean }>;
    };
    assert.deepEqual(
      state.rules.map((r) => [r.name, r.approved]),
      [["trusted-mr-bot", true]],
    );
    await client(sim, committer).MergeRequests.merge(app.id, mr.iid);
  });
});

describe("external status checks", () => {
  test("below Ultimate: 401 (check_feature_enabled!); CE: Grape's 404", async (t) => {
    const premium = await world({ enterprise: true, tier: "premium" });
    const ce = await world({ enterprise: false });
    t.after(async () => {
      await premium.sim.stop();
      await ce.sim.stop();
    });
    await rejectsWith(client(premium.sim, premium.bot).ExternalStatusChecks.all(premium.app.id), 401);
    assert.equal((await raw(ce.sim, ce.bot, `/projects/${ce.app.id}/external_status_checks`)).status, 404);
  });

  test("Ultimate: the merge waits for a passed response for the head; a response for another SHA is 409", async (t) => {
    const { sim, bot, committer, app, mr } = await world({ enterprise: true, tier: "ultimate" });
    t.after(() => sim.stop());
    const api = client(sim, bot);
    const check = (await api.ExternalStatusChecks.create(app.id, "trusted-mr-bot", "https://bot.example.com/")) as {
      id: number;
      name: string;
    };
    assert.deepEqual(
      ((await api.ExternalStatusChecks.all(app.id)) as Array<{ name: string }>).map((c) => c.name),
      ["trusted-mr-bot"],
    );
    await rejectsWith(
      api.ExternalStatusChecks.set(app.id, mr.iid, "0".repeat(40), check.id, { status: "passed" }),
      409,
      `SHA does not match HEAD of source branch: ${mr.sha}`,
    );
    await api.ExternalStatusChecks.set(app.id, mr.iid, mr.sha, check.id, { status: "failed" });
    await rejectsWith(client(sim, committer).MergeRequests.merge(app.id, mr.iid), 405);
    await api.ExternalStatusChecks.set(app.id, mr.iid, mr.sha, check.id, { status: "passed" });
    await client(sim, committer).MergeRequests.merge(app.id, mr.iid);
  });
});
