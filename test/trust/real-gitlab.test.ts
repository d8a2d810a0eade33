/**
 * Real GitLab as deployed today, end to end through the simulator over HTTP: MRs whose fork was deleted
 * (`source_project_id: null`), failed trigger (bridge) jobs, and GitLab's validation errors as plain text.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gitlabMessageText } from "../../src/gitlab/classify-error.js";
import { runSweepOnce } from "../../src/runtime.js";
import { decodeState } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

function sticky(w: TrustWorld, iid: number) {
  const notes = w.stickyNotes(iid);
  assert.equal(notes.length, 1, "exactly one sticky note");
  return { body: notes[0]!.body, state: decodeState(notes[0]!.body) };
}

describe("an MR whose fork was deleted (source_project_id: null)", () => {
  it("keeps mirroring its trusted pipeline, and closing it deletes its trusted branch", async () => {
    const w = await start();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const branch = w.trustedBranch(mr);
    assert.equal(w.sim.branch(w.app.id, branch)?.sha, mr.sha);
    const pipeline = w.pipelinesOn(branch)[0]!;

    // Dave deletes his fork through the API; GitLab nullifies the MR's source project and keeps its head.
    await w.as(w.dave).Projects.remove(w.daveFork.id);
    assert.equal(w.mr(mr.iid).sourceProjectId, null);
    assert.equal(w.mr(mr.iid).sha, mr.sha);

    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "success");
    assert.equal(w.status(mr.sha)?.ref, `refs/merge-requests/${mr.iid}/head`);
    assert.equal(sticky(w, mr.iid).state.pipeline?.status, "success");

    w.sim.closeMergeRequest(w.app.id, mr.iid, w.maya.id);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, branch), undefined, "the protected trusted branch is deleted");
    assert.deepEqual(sticky(w, mr.iid).state.closed?.deletedBranch, branch);
    assert.deepEqual(
      (await w.audit()).map((e) => [e.event, e.branch]),
      [
        ["grant", branch],
        ["cleanup", branch],
      ],
    );
  });

  it("/trust is refused with a reply saying the fork is gone; nothing is pinned or run", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.deleteProject(w.daveFork.id);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined);
    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).length, 0);
    const replies = w.replies(mr.iid);
    assert.equal(replies.length, 1);
    assert.match(replies[0]!.body, /Not trusted: the fork this merge request comes from was deleted/);
    const note = sticky(w, mr.iid);
    assert.match(note.body, /Nothing can be trusted here/);
    assert.doesNotMatch(note.body, /To trust it, a committer comments/);
  });
});

describe("the sweep isolates failures", () => {
  it("goes on past an MR whose fork was deleted and a trusted branch it cannot delete", async () => {
    const w = await start({ logLevel: "error" });
    const gone = w.openForkMr("gone");
    w.sim.comment(w.app.id, gone.iid, w.maya.id, `/trust ${gone.sha}`);
    await w.settle();
    w.sim.deleteProject(w.daveFork.id);

    // Events lost from here on: only the sweep looks at Erin's MR and at the orphaned branches.
    w.sim.webhookMode = "drop";
    const erin = w.openForkMr("docs", w.erin, w.erinFork);
    await w.as(w.maya).Branches.create(w.app.id, "trusted-aaa", "main");
    await w.as(w.maya).Branches.create(w.app.id, "trusted-zzz", "main");
    w.sim.failNext(1, 403, { route: /^DELETE .*\/branches\/trusted-aaa$/, message: "403 Forbidden" });

    const result = await runSweepOnce({ config: w.config, logger: w.logger });

    assert.equal(result.failed, 0);
    assert.equal(w.sim.branch(w.app.id, "trusted-aaa")?.name, "trusted-aaa", "the branch GitLab refused to delete");
    assert.equal(w.sim.branch(w.app.id, "trusted-zzz"), undefined, "the next orphan is still deleted");
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(gone))?.sha, gone.sha, "an open MR's grant is kept");
    assert.match(sticky(w, erin.iid).body, /Waiting for a committer/);
    assert.equal(w.status(erin.sha)?.status, "pending");
    const logged = w.logLines.find((l) => l["branch"] === "trusted-aaa");
    assert.match(String(logged?.["msg"]), /sweep: could not clean up a trusted branch; going on/);
  });
});

describe("failed trigger (bridge) jobs", () => {
  it("appear in the failing-jobs list of the note and the status", async () => {
    const w = await start();
    w.sim.setCiJobs(w.app.id, [
      { name: "build", stage: "build" },
      { name: "test", stage: "test" },
      { name: "deploy-docs", stage: "deploy", trigger: "org/docs" },
    ]);
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const pipeline = w.pipelinesOn(w.trustedBranch(mr))[0]!;

    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "deploy-docs", "failed");
    await w.settle();

    assert.equal(w.sim.pipeline(w.app.id, pipeline.id).status, "failed");
    assert.equal(w.status(mr.sha)?.status, "failed");
    assert.match(w.status(mr.sha)?.description ?? "", /1 failed job \(deploy-docs\)/);
    const note = sticky(w, mr.iid);
    assert.deepEqual(
      note.state.pipeline?.failedJobs?.map((j) => j.name),
      ["deploy-docs"],
    );
    assert.match(note.body, /Failed jobs: \[`deploy-docs`\]\(<.*\/-\/jobs\/\d+>\)/);
  });
});

describe("GitLab's validation errors as text", () => {
  it("every shape of GitLab's `message` becomes one plain sentence", () => {
    const rows: Array<[unknown, string]> = [
      ["Branch already exists", "Branch already exists"],
      ['{"base":["a","b"]}', "a; b"],
      ['{"field":["is invalid"]}', "field is invalid"],
      [
        '{"base":["Reference not found"],"variables":["is invalid","is too long"]}',
        "Reference not found; variables is invalid; variables is too long",
      ],
      ['["Source branch \\"x\\" does not exist"]', 'Source branch "x" does not exist'],
      ['"quoted"', "quoted"],
      ["<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"],
      ["{not json", "{not json"],
      [{ base: ["Pipeline filtered out by workflow rules."] }, "Pipeline filtered out by workflow rules."],
    ];
    for (const [message, text] of rows) assert.equal(gitlabMessageText(message), text, JSON.stringify(message));
  });

  it("a pipeline GitLab refuses (filtered out by workflow: rules) is explained in plain words, not JSON", async () => {
    const w = await start();
    w.sim.setWorkflowRules(w.app.id, ({ ref }) => !ref.startsWith("trusted-"));
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();

    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).length, 0);
    assert.equal(w.status(mr.sha)?.status, "failed");
    assert.equal(
      w.status(mr.sha)?.description,
      "GitLab did not start the trusted pipeline: Pipeline filtered out by workflow rules.",
    );
    const note = sticky(w, mr.iid);
    assert.ok(
      note.body.includes("GitLab did not start the trusted pipeline: Pipeline filtered out by workflow rules\\."),
      note.body,
    );
    assert.equal(note.state.pipelineError?.message, "Pipeline filtered out by workflow rules.");
    assert.doesNotMatch(note.body.split("\n").slice(1).join("\n"), /base|\{/, "no JSON below the hidden record");
  });
});
