/**
 * The trust workflow end to end on a project with GitLab.com's default for new projects (17.7+):
 * `ci_pipeline_variables_minimum_override_role: no_one_allowed`. Nobody may set pipeline variables, and only an Owner
 * could change that; the trusted pipeline must start anyway, with no Owner doing anything.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeState } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

/** The bot's `POST /projects/:id/pipeline` requests, as GitLab answered them. */
function pipelineCreations(w: TrustWorld): number[] {
  return w.sim.requestLog
    .filter((r) => r.route === "POST /projects/:id/pipeline" && r.userId === w.bot.id)
    .map((r) => r.status);
}

describe("GitLab.com default no_one_allowed", () => {
  it("GitLab.com default no_one_allowed: the trusted pipeline starts without variables", async () => {
    const w = await start({ pipelineVariablesRole: "no_one_allowed" });
    const mr = w.openForkMr("feature");
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();

    const branch = w.trustedBranch(mr);
    assert.equal(w.sim.branch(w.app.id, branch)?.sha, mr.sha);
    const pipelines = w.pipelinesOn(branch);
    assert.equal(pipelines.length, 1, "exactly one trusted pipeline");
    const pipeline = pipelines[0]!;
    assert.deepEqual(
      [pipeline.source, pipeline.userId, pipeline.sha, pipeline.protectedRef],
      ["api", w.bot.id, mr.sha, true],
      "created by the bot through the API on the protected trusted branch, at the trusted commit",
    );
    assert.deepEqual(pipeline.variables, [], "no pipeline variables");
    // GitLab refused the variables once (nothing created), then created the pipeline without them.
    assert.deepEqual(pipelineCreations(w), [400, 201]);

    assert.equal(w.status(mr.sha)?.status, "running");
    const note = w.stickyNotes(mr.iid)[0]!;
    assert.equal(decodeState(note.body).pipeline?.id, pipeline.id);
    assert.equal(decodeState(note.body).pipelineError, undefined);
    assert.doesNotMatch(note.body, /did not start|Insufficient permissions/i);

    // Its pipeline hooks carry no TRUSTED_MR_IID: the branch name leads them to the MR.
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "success");
    assert.equal(decodeState(w.stickyNotes(mr.iid)[0]!.body).pipeline?.status, "success");
  });

  it("the refusal is remembered: a second MR's pipeline costs one request, and /retest runs the same way", async () => {
    const w = await start({ pipelineVariablesRole: "no_one_allowed" });
    const first = w.openForkMr("feature");
    const second = w.openForkMr("fix", w.erin, w.erinFork);
    await w.settle();
    w.sim.comment(w.app.id, first.iid, w.maya.id, `/trust ${first.sha}`);
    await w.settle();
    w.sim.comment(w.app.id, second.iid, w.maya.id, `/trust ${second.sha}`);
    await w.settle();
    assert.deepEqual(pipelineCreations(w), [400, 201, 201]);

    const [pipeline] = w.pipelinesOn(w.trustedBranch(second));
    assert.ok(pipeline);
    assert.deepEqual(pipeline.variables, []);
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "canceled");
    await w.settle();
    w.sim.comment(w.app.id, second.iid, w.maya.id, "/retest");
    await w.settle();
    assert.equal(w.status(second.sha)?.status, "running");
    assert.deepEqual(pipelineCreations(w), [400, 201, 201], "a retry creates nothing new");
  });

  it("a project that lets the bot's role set variables still gets them (self-managed default maintainer)", async () => {
    const w = await start({ pipelineVariablesRole: "maintainer" });
    const mr = w.openForkMr("feature");
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(pipeline);
    assert.equal(pipeline.variables.find((v) => v.key === "TRUSTED_SOURCE_SHA")?.value, mr.sha);
    assert.deepEqual(pipelineCreations(w), [201]);
  });
});
