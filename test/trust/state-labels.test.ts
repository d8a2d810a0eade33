/**
 * Trust-state labels end to end (GitLab simulator over HTTP, the service with real Redis): the open MR carries
 * exactly one of `trust::waiting`, `trust::trusted`, `trust::stale`, `trust::failed`, changed with one
 * `PUT .../merge_requests/:iid` per change of state, and none when it is already right. Labels of people stay.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routeEvent } from "../../src/receiver/route-event.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { examplePayload } from "../support/webhook-client.js";

const start = worldPerTest();

function trustLabels(w: TrustWorld, iid: number): string[] {
  return w.mr(iid).labels.filter((l) => l.startsWith("trust::"));
}

function labelWrites(w: TrustWorld): number {
  return w.sim.requestLog.filter((e) => e.route === "PUT /projects/:id/merge_requests/:iid").length;
}

describe("trust-state labels", () => {
  it("labels follow waiting → trusted → stale → trusted → failed, one label at a time, others' labels kept", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.as(w.maya).MergeRequests.edit(w.app.id, mr.iid, { addLabels: "bug" });
    await w.settle();
    assert.deepEqual(trustLabels(w, mr.iid), ["trust::waiting"]);

    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.deepEqual(trustLabels(w, mr.iid), ["trust::trusted"]);

    const { after: newHead } = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.settle();
    assert.deepEqual(trustLabels(w, mr.iid), ["trust::stale"]);

    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${newHead}`);
    await w.settle();
    assert.deepEqual(trustLabels(w, mr.iid), ["trust::trusted"]);

    const pipeline = w.pipelinesOn(w.trustedBranch(mr)).at(-1);
    assert.ok(pipeline);
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assert.deepEqual(trustLabels(w, mr.iid), ["trust::failed"]);
    assert.ok(w.mr(mr.iid).labels.includes("bug"), "a person's label stays");

    // Already right: a reconcile writes no label.
    w.sim.clearRequestLog();
    await w.service.enqueue([{ kind: "reconcile", projectId: w.app.id, mrIid: mr.iid, reason: "test" }]);
    await w.settle();
    assert.equal(labelWrites(w), 0);
  });

  it("trust.state_labels.enabled: false: no state label, no label write", async () => {
    const w = await start({ config: { trust: { state_labels: { enabled: false } } } });
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.deepEqual(trustLabels(w, mr.iid), []);
    assert.equal(labelWrites(w), 0);
  });
});

describe("the echo of the bot's own label write", () => {
  const config = {
    trust: { branch_prefix: "trusted-" },
    stateLabels: {
      enabled: true,
      waiting: "trust::waiting",
      trusted: "trust::trusted",
      stale: "trust::stale",
      failed: "trust::failed",
    },
  };
  const update = (previous: string[], current: string[], extra: Record<string, unknown> = {}) => {
    const payload = examplePayload("merge_request");
    Object.assign(payload["object_attributes"]!, { action: "update" });
    delete payload["object_attributes"]!["oldrev"];
    payload["changes"] = {
      labels: { previous: previous.map((title) => ({ title })), current: current.map((title) => ({ title })) },
      updated_at: ["2025-01-01 00:00:00 UTC", "2025-01-01 00:00:01 UTC"],
      ...extra,
    };
    return payload;
  };

  it("an update that only swapped trust-state labels is ignored", () => {
    assert.ok(
      "ignored" in
        routeEvent("Merge Request Hook", update(["bug", "trust::waiting"], ["bug", "trust::trusted"]), config),
    );
  });

  it("a person's label (or the committer-branch label), another change, or state_labels off: routed", () => {
    assert.ok(
      "jobs" in routeEvent("Merge Request Hook", update(["trust::waiting"], ["trust::waiting", "bug"]), config),
    );
    assert.ok("jobs" in routeEvent("Merge Request Hook", update([], ["no-detached-pipeline"]), config));
    const withDraft = update(["trust::waiting"], ["trust::trusted"], { draft: { previous: true, current: false } });
    assert.ok("jobs" in routeEvent("Merge Request Hook", withDraft, config));
    const off = { ...config, stateLabels: { ...config.stateLabels, enabled: false } };
    assert.ok("jobs" in routeEvent("Merge Request Hook", update(["trust::waiting"], ["trust::trusted"]), off));
  });
});
