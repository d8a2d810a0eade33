/**
 * Simulator behaviours of real GitLab the bot must survive: deleted forks (`source_project_id` nullified), trigger
 * (bridge) jobs listed apart from the other jobs, and pipelines filtered out by `workflow: rules`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { client, raw, rejectsWith, seedWorld, startReceiver } from "./helpers.js";

describe("deleting a project (DELETE /projects/:id)", () => {
  test("Owner only; 202; MRs from the deleted fork keep their head, source_project_id null, MR ref (inferred)", async (t) => {
    const { sim, bot, committer, contributor, app, fork } = await seedWorld();
    t.after(() => sim.stop());
    sim.push(fork.id, "feature", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    sim.addHook(app.id, { url: receiver.url, mergeRequestsEvents: true });

    // `authorize! :remove_project` (lib/api/projects.rb): a Maintainer of the upstream is nobody in the fork.
    await rejectsWith(client(sim, bot).Projects.remove(fork.id), 403, "403 Forbidden");
    const answer = await raw(sim, contributor, `/projects/${fork.id}`, { method: "DELETE" });
    assert.equal(answer.status, 202);
    assert.deepEqual(await answer.json(), { message: "202 Accepted" });
    await rejectsWith(client(sim, bot).Projects.show(fork.id), 404, "404 Project Not Found");

    // `merge_requests.source_project_id` is `on_delete: :nullify`; `sha` is the last diff's head (`diff_head_sha`).
    const shown = await client(sim, bot).MergeRequests.show(app.id, mr.iid);
    assert.equal(shown.source_project_id, null);
    assert.equal(shown.sha, mr.sha);
    const listed = await client(sim, bot).MergeRequests.all({ projectId: app.id, state: "opened" });
    assert.deepEqual(
      listed.map((m) => [m.iid, m.source_project_id]),
      [[mr.iid, null]],
    );
    // GitLab keeps `refs/merge-requests/:iid/head` in the target: a branch can still be made from it (*inferred*).
    const branch = await client(sim, bot).Branches.create(app.id, "from-mr-ref", `refs/merge-requests/${mr.iid}/head`);
    assert.equal(branch.commit.id, mr.sha);

    // Not mergeable any more (`MergeRequest#broken?`: the source branch is missing): `not_allowed!`.
    await rejectsWith(client(sim, committer).MergeRequests.merge(app.id, mr.iid), 405);
    // Closing works; its hook has `source: null` (`merge_request.source_project.try(:hook_attrs)`).
    await client(sim, committer).MergeRequests.edit(app.id, mr.iid, { stateEvent: "close" });
    await sim.idle();
    const close = JSON.parse(receiver.received.at(-1)!.body) as { object_attributes: Record<string, unknown> };
    assert.equal(close.object_attributes["action"], "close");
    assert.equal(close.object_attributes["source_project_id"], null);
    assert.equal(close.object_attributes["source"], null);
    assert.equal((close.object_attributes["last_commit"] as { id: string }).id, mr.sha);
    // Not `reopenable?` (`!source_project_missing?`): a reopen through the API leaves it closed.
    await client(sim, committer).MergeRequests.edit(app.id, mr.iid, { stateEvent: "reopen" });
    assert.equal(sim.mergeRequest(app.id, mr.iid).state, "closed");
  });
});

describe("trigger (bridge) jobs", () => {
  test("listed at /pipelines/:id/bridges as Entities::Ci::Bridge, never at /jobs nor in the hook's builds", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.setCiJobs(app.id, [
      { name: "build", stage: "build" },
      { name: "deploy-docs", stage: "deploy", trigger: "org/docs" },
    ]);
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    sim.addHook(app.id, { url: receiver.url, pushEvents: false, pipelineEvents: true });
    const pipeline = sim.runPipeline(app.id, "main", { userId: bot.id });
    sim.setJobStatus(app.id, pipeline.id, "build", "success");
    sim.setJobStatus(app.id, pipeline.id, "deploy-docs", "failed");
    assert.equal(sim.pipeline(app.id, pipeline.id).status, "failed", "a failed bridge fails its pipeline");

    const api = client(sim, bot);
    const jobs = await api.Jobs.all(app.id, { pipelineId: pipeline.id });
    assert.deepEqual(
      jobs.map((j) => j.name),
      ["build"],
    );
    const bridges = (await api.Jobs.allPipelineBridges(app.id, pipeline.id)) as unknown as Array<
      Record<string, unknown>
    >;
    assert.equal(bridges.length, 1);
    const bridge = bridges[0]!;
    assert.equal(bridge["name"], "deploy-docs");
    assert.equal(bridge["stage"], "deploy");
    assert.equal(bridge["status"], "failed");
    assert.equal(bridge["allow_failure"], false);
    assert.equal(bridge["downstream_pipeline"], null);
    assert.match(String(bridge["web_url"]), new RegExp(`/org/app/-/jobs/${String(bridge["id"])}$`));
    assert.equal((bridge["pipeline"] as { id: number }).id, pipeline.id);
    const scoped = await raw(sim, bot, `/projects/${app.id}/pipelines/${pipeline.id}/bridges?scope[]=success`);
    assert.deepEqual(await scoped.json(), []);

    await sim.idle();
    const last = JSON.parse(receiver.received.at(-1)!.body) as { builds: Array<{ name: string }> };
    assert.deepEqual(
      last.builds.map((b) => b.name),
      ["build"],
    );
  });
});

describe("workflow: rules", () => {
  test("a pipeline they filter out is a 400 validation error; a push starts none", async (t) => {
    const { sim, bot, committer, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.setWorkflowRules(app.id, ({ ref }) => !ref.startsWith("trusted-"));
    await client(sim, bot).Branches.create(app.id, "trusted-x", "main");
    assert.equal(sim.pipelines(app.id).filter((p) => p.ref === "trusted-x").length, 0, "no push pipeline");

    // `Gitlab::Ci::Pipeline::Chain::EvaluateWorkflowRules`, rendered by `render_validation_error!`.
    const refused = await raw(sim, bot, `/projects/${app.id}/pipeline`, {
      method: "POST",
      body: JSON.stringify({ ref: "trusted-x" }),
    });
    assert.equal(refused.status, 400);
    assert.deepEqual(await refused.json(), { message: { base: ["Pipeline filtered out by workflow rules."] } });
    sim.push(app.id, "feature", { userId: committer.id });
    assert.equal(sim.pipelines(app.id).filter((p) => p.ref === "feature").length, 1, "other refs still run");
  });
});
