/**
 * Head pipeline selection (`MergeRequest#diff_head_pipeline`, `Ci::PipelinesForMergeRequestFinder`), merge request
 * pipelines, "Pipelines must succeed" in the merge API and the `sha` check's place in it.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { client, rejectsWith, seedWorld, type World } from "./helpers.js";

let world: World | undefined;
afterEach(async () => {
  await world?.sim.stop();
  world = undefined;
});

describe("merge gating in the simulator", () => {
  it("head pipeline: merge request pipelines first, then the newest branch pipeline for the head SHA", async () => {
    world = await seedWorld();
    const { sim, app, bot, committer } = world;
    sim.push(app.id, "feature", { userId: committer.id });
    const mr = sim.openMergeRequest({ sourceProjectId: app.id, sourceBranch: "feature", authorId: committer.id });
    const api = client(sim, bot);
    const pushPipeline = sim.pipelines(app.id).find((p) => p.ref === "feature");
    const shown = (await api.MergeRequests.show(app.id, mr.iid)) as unknown as { head_pipeline: { id: number } };
    assert.equal(shown.head_pipeline.id, pushPipeline?.id);

    const created = (await client(sim, committer).MergeRequests.createPipeline(app.id, mr.iid)) as unknown as {
      id: number;
      source: string;
      ref: string;
    };
    assert.equal(created.source, "merge_request_event");
    assert.equal(created.ref, `refs/merge-requests/${mr.iid}/head`);
    // A newer branch pipeline does not outrank the merge request pipeline.
    sim.runPipeline(app.id, "feature", { userId: committer.id });
    const after = (await api.MergeRequests.show(app.id, mr.iid)) as unknown as {
      head_pipeline: { id: number; source: string };
    };
    assert.equal(after.head_pipeline.id, created.id);
  });

  it("'Pipelines must succeed': 405 until the head pipeline passed, a pending status in it blocks; sha is checked after (409)", async () => {
    world = await seedWorld();
    const { sim, app, bot, committer } = world;
    sim.setMergeRequestPipelines(app.id, true);
    await client(sim, bot).Projects.edit(app.id, { onlyAllowMergeIfPipelineSucceeds: true });
    sim.push(app.id, "feature", { userId: committer.id });
    const mr = sim.openMergeRequest({ sourceProjectId: app.id, sourceBranch: "feature", authorId: committer.id });
    const head = sim.pipelines(app.id).find((p) => p.source === "merge_request_event" && p.mergeRequestIid === mr.iid);
    assert.ok(head);
    const api = client(sim, bot);
    await rejectsWith(api.MergeRequests.merge(app.id, mr.iid), 405);

    await api.Commits.editStatus(app.id, mr.sha, "pending", { name: "gate", pipelineId: head.id });
    sim.setPipelineStatus(app.id, head.id, "success");
    assert.equal(sim.pipeline(app.id, head.id).status, "running", "the pending status holds the pipeline");
    await rejectsWith(api.MergeRequests.merge(app.id, mr.iid, { sha: "0".repeat(40) }), 405);

    await api.Commits.editStatus(app.id, mr.sha, "success", { name: "gate", pipelineId: head.id });
    assert.equal(sim.pipeline(app.id, head.id).status, "success");
    await rejectsWith(api.MergeRequests.merge(app.id, mr.iid, { sha: "0".repeat(40) }), 409);
    await api.MergeRequests.merge(app.id, mr.iid, { sha: mr.sha });
    assert.equal(sim.mergeRequest(app.id, mr.iid).state, "merged");
  });
});
