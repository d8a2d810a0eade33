/**
 * The trust workflow end to end: GitLab simulator over HTTP, webhooks delivered over HTTP to the receiver, the
 * worker with real Redis. Each test drives what people do in GitLab and asserts what GitLab shows afterwards:
 * branches, pipelines and their variables, commit statuses, the one sticky note, replies, emoji, the audit stream.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeState } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

function sticky(w: TrustWorld, iid: number) {
  const notes = w.stickyNotes(iid);
  assert.equal(notes.length, 1, "exactly one sticky note");
  const note = notes[0]!;
  return { body: note.body, state: decodeState(note.body), id: note.id };
}

function variables(w: TrustWorld, pipelineId: number): Record<string, string> {
  return Object.fromEntries(w.sim.pipeline(w.app.id, pipelineId).variables.map((v) => [v.key, v.value]));
}

describe("contributor MRs", () => {
  it("same-project MR: awaiting, /trust pins the head and runs one protected pipeline, status and note mirror it", async () => {
    const w = await start();
    w.sim.push(w.app.id, "feature", { userId: w.dev.id });
    const mr = w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: "feature", authorId: w.dev.id });
    await w.settle();

    assert.equal(w.status(mr.sha)?.status, "pending");
    assert.equal(w.status(mr.sha)?.ref, "feature");
    assert.match(w.status(mr.sha)?.description ?? "", /Waiting for a committer to review/);
    assert.match(sticky(w, mr.iid).body, /Waiting for a committer/);
    assert.match(sticky(w, mr.iid).body, /Welcome, @dev/);

    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, "Reviewed, looks safe.\n/trust");
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha);
    const pipelines = w.pipelinesOn(w.trustedBranch(mr));
    assert.equal(pipelines.length, 1);
    const pipeline = pipelines[0]!;
    assert.equal(pipeline.source, "api");
    assert.equal(pipeline.protectedRef, true);
    assert.equal(pipeline.sha, mr.sha);
    assert.deepEqual(variables(w, pipeline.id), {
      TRUSTED_MR_IID: String(mr.iid),
      TRUSTED_SOURCE_SHA: mr.sha,
      TRUSTED_SOURCE_PROJECT_ID: String(w.app.id),
      TRUSTED_SOURCE_BRANCH: "feature",
      TRUSTED_GRANTED_BY: "maya",
    });
    assert.equal(w.status(mr.sha)?.status, "running");
    assert.deepEqual(
      w.sim.awardEmoji(w.app.id, mr.iid, command.id).map((e) => e.name),
      ["thumbsup"],
    );
    const note = sticky(w, mr.iid);
    assert.match(note.body, new RegExp(`\\*\\*Trusted\\.\\*\\* Commit \`${mr.sha}\` was trusted by @maya`));
    assert.match(note.body, new RegExp(`note_${command.id}`), "links the command");
    assert.equal(note.state.grant?.sha, mr.sha);

    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    await w.settle();
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "success");
    assert.match(sticky(w, mr.iid).body, new RegExp(`\\[#${pipeline.id}\\]\\(.*\\) \\*\\*success\\*\\*`));
    assert.equal(w.replies(mr.iid).length, 0, "no replies to a command that was carried out");

    const audit = await w.audit();
    assert.deepEqual(
      audit.map((e) => [e.event, e.by, e.sha, e.mrIid]),
      [["grant", "maya", mr.sha, String(mr.iid)]],
    );
  });

  it("fork MR: the branch is made from the target's MR ref, status on refs/merge-requests/<iid>/head, failures shown", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    assert.match(sticky(w, mr.iid).body, /from a fork/);

    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/ok-to-test");
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha);
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(pipeline);
    assert.equal(variables(w, pipeline.id)["TRUSTED_SOURCE_PROJECT_ID"], String(w.daveFork.id));
    assert.equal(w.status(mr.sha)?.ref, `refs/merge-requests/${mr.iid}/head`);

    w.sim.setTestReportSummary(w.app.id, pipeline.id, {
      total: 12,
      success: 10,
      failed: 2,
      skipped: 0,
      error: 0,
      suites: [{ name: "unit", total: 12, failed: 2 }],
    });
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "failed");
    assert.match(w.status(mr.sha)?.description ?? "", /1 failed job \(test\)/);
    const body = sticky(w, mr.iid).body;
    assert.match(body, /Failed jobs: \[`test`\]\(<.*\/-\/jobs\/\d+>\)\./);
    assert.match(body, /Tests: 12 total, 10 passed, 2 failed/);
    assert.match(body, /Failing suites: `unit` \(2 of 12\)/);
  });

  it("new commits after trust: stale status, running pipeline cancelled, compare link; nothing runs until /trust", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const [first] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(first);
    w.sim.setPipelineStatus(w.app.id, first.id, "running");
    await w.settle();

    const { after: newHead } = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.settle();
    assert.equal(w.sim.pipeline(w.app.id, first.id).status, "canceled");
    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).length, 1, "nothing new started");
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha, "the grant stays on the reviewed commit");
    assert.equal(w.status(newHead)?.status, "pending");
    assert.match(w.status(newHead)?.description ?? "", /New commits since trusted/);
    const body = sticky(w, mr.iid).body;
    assert.match(body, /Trust is stale/);
    assert.match(body, new RegExp(`/-/compare/${mr.sha}\\.\\.\\.${newHead}`));

    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, newHead, "moved to the new head");
    const pipelines = w.pipelinesOn(w.trustedBranch(mr));
    assert.equal(pipelines.length, 2);
    assert.equal(pipelines[1]?.sha, newHead);
    assert.equal(w.status(newHead)?.status, "running");
    assert.deepEqual(
      (await w.audit()).map((e) => e.event),
      ["grant", "stale", "grant"],
    );
  });

  it("/untrust removes the branch and cancels; /retest retries the failed jobs; /help lists the commands", async () => {
    const w = await start();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr));
    assert.ok(pipeline);
    w.sim.setJobStatus(w.app.id, pipeline.id, "build", "success");
    w.sim.setJobStatus(w.app.id, pipeline.id, "test", "failed");
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "failed");

    const retest = w.sim.comment(w.app.id, mr.iid, w.maya.id, "/retest");
    await w.settle();
    const retried = w.sim.pipeline(w.app.id, pipeline.id);
    assert.ok(
      retried.jobs.some((j) => j.retried),
      "the failed job was retried in the same pipeline",
    );
    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).length, 1);
    assert.equal(w.status(mr.sha)?.status, "running");
    assert.deepEqual(
      w.sim.awardEmoji(w.app.id, mr.iid, retest.id).map((e) => e.name),
      ["thumbsup"],
    );

    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/untrust");
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined);
    assert.equal(w.sim.pipeline(w.app.id, pipeline.id).status, "canceled");
    assert.equal(w.status(mr.sha)?.status, "pending");
    assert.match(sticky(w, mr.iid).body, /revoked by @maya .*\/untrust/);

    w.sim.comment(w.app.id, mr.iid, w.dev.id, "/help");
    await w.settle();
    const replies = w.replies(mr.iid);
    assert.equal(replies.length, 1);
    assert.match(replies[0]!.body, /`\/untrust`: remove the trusted branch/);
    assert.deepEqual(
      (await w.audit()).map((e) => e.event),
      ["grant", "retest", "revoke"],
    );
  });

  it("explicit SHA: a wrong one is refused naming the head, the right one is trusted", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust 0123456789abcdef0123");
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined);
    const [reply] = w.replies(mr.iid);
    assert.match(reply?.body ?? "", new RegExp(`the SHA you named is not the head of this merge request, \`${mr.sha}\``));
    assert.doesNotMatch(reply?.body ?? "", /0123456789abcdef0123/, "no reply echoes the commenter's text");

    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha.slice(0, 12)}`);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha);
    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).length, 1);
  });

  it("merge deletes the trusted branch and says so; close too; reopen returns to awaiting", async () => {
    const w = await start();
    const first = w.openForkMr("one");
    const second = w.openForkMr("two");
    w.sim.comment(w.app.id, first.iid, w.maya.id, "/trust");
    w.sim.comment(w.app.id, second.iid, w.maya.id, "/trust");
    await w.settle();
    assert.ok(w.sim.branch(w.app.id, w.trustedBranch(first)));
    assert.ok(w.sim.branch(w.app.id, w.trustedBranch(second)));

    w.sim.mergeMergeRequest(w.app.id, first.iid, w.maya.id);
    w.sim.closeMergeRequest(w.app.id, second.iid, w.maya.id);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(first)), undefined);
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(second)), undefined);
    assert.match(sticky(w, first.iid).body, new RegExp(`was merged on .* The trusted branch \`${w.trustedBranch(first)}\` was deleted`));
    assert.match(sticky(w, second.iid).body, new RegExp(`was closed on .* The trusted branch \`${w.trustedBranch(second)}\` was deleted`));

    w.sim.reopenMergeRequest(w.app.id, second.iid, w.maya.id);
    await w.settle();
    assert.match(sticky(w, second.iid).body, /Waiting for a committer/);
    assert.equal(w.status(second.sha)?.status, "pending");
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(second)), undefined);
    const cleanups = (await w.audit()).filter((e) => e.event === "cleanup");
    assert.deepEqual(cleanups.map((e) => [e.mrIid, e.branch, e.reason]).sort(), [
      [String(first.iid), w.trustedBranch(first), "merge request merged"],
      [String(second.iid), w.trustedBranch(second), "merge request closed"],
    ]);

    // A contributor's next MR is no longer a first contribution.
    const third = w.openForkMr("three");
    await w.settle();
    assert.doesNotMatch(sticky(w, third.iid).body, /Welcome/);
  });

  it("two forks with the same branch name get different trusted branches", async () => {
    const w = await start();
    const fromDave = w.openForkMr("patch");
    const fromErin = w.openForkMr("patch", w.erin, w.erinFork);
    await w.settle();
    w.sim.comment(w.app.id, fromDave.iid, w.maya.id, "/trust");
    w.sim.comment(w.app.id, fromErin.iid, w.maya.id, "/trust");
    await w.settle();
    const names = [sticky(w, fromDave.iid).state.branch, sticky(w, fromErin.iid).state.branch];
    assert.equal(new Set(names).size, 2, `distinct names: ${names.join(", ")}`);
    assert.equal(w.sim.branch(w.app.id, names[0]!)?.sha, fromDave.sha);
    assert.equal(w.sim.branch(w.app.id, names[1]!)?.sha, fromErin.sha);
  });
});

describe("manual flow and committer branches", () => {
  it("a trusted branch created by hand at the head starts and mirrors the pipeline; elsewhere, the note says it does not match", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const { after: older } = { after: w.sim.branch(w.app.id, "main")!.sha };
    await w.as(w.maya).Branches.create(w.app.id, w.trustedBranch(mr), older);
    await w.settle();
    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).length, 0, "nothing runs for a commit that is not the head");
    assert.match(sticky(w, mr.iid).body, /points at `[0-9a-f]{40}`, not at the head/);
    assert.equal(w.status(mr.sha)?.status, "pending");

    await w.as(w.maya).Branches.remove(w.app.id, w.trustedBranch(mr));
    await w.as(w.maya).Branches.create(w.app.id, w.trustedBranch(mr), mr.sha);
    await w.settle();
    const pipelines = w.pipelinesOn(w.trustedBranch(mr));
    assert.equal(pipelines.length, 1);
    assert.equal(variables(w, pipelines[0]!.id)["TRUSTED_GRANTED_BY"], "maya");
    const state = sticky(w, mr.iid).state;
    assert.deepEqual([state.grant?.sha, state.grant?.by, state.grant?.manual], [mr.sha, "maya", true]);
    w.sim.setPipelineStatus(w.app.id, pipelines[0]!.id, "success");
    await w.settle();
    assert.equal(w.status(mr.sha)?.status, "success");
    assert.match(sticky(w, mr.iid).body, /trusted branch pushed by hand/);
  });

  it("GitLab's own push pipeline on the trusted branch is cancelled: one trusted pipeline per SHA", async () => {
    const w = await start({ pipelinesOnTrustedPush: true });
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    const pipelines = w.pipelinesOn(w.trustedBranch(mr));
    const live = pipelines.filter((p) => p.status !== "canceled");
    assert.deepEqual(
      live.map((p) => p.source),
      ["api"],
      JSON.stringify(pipelines.map((p) => [p.source, p.status])),
    );
    assert.ok(pipelines.some((p) => p.source === "push" && p.status === "canceled"));
  });

  it("committer branch: label only, no sticky note, no status, commands answered without a trust flow", async () => {
    const w = await start();
    w.sim.push(w.app.id, "release/1.0", { userId: w.maya.id });
    const mr = w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: "release/1.0", authorId: w.maya.id });
    await w.settle();
    assert.deepEqual(w.mr(mr.iid).labels, ["no-detached-pipeline"]);
    assert.equal(w.stickyNotes(mr.iid).length, 0);
    assert.equal(w.status(mr.sha), undefined);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined);
    assert.match(w.replies(mr.iid)[0]?.body ?? "", /protected branch of this project/);
  });
});
