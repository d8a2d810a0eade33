/**
 * Merge gating end to end (GitLab simulator over HTTP, the service with real Redis):
 * - a same-project MR whose head pipeline is a merge request pipeline cannot be merged under "Pipelines must succeed"
 *   until the trusted pipeline passed for its head: the bot's status sits in that head pipeline;
 * - `/merge-trusted` (`/merge`) merges a fork MR only once the trusted pipeline passed, pinned to the trusted SHA.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeState } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { waitFor } from "../support/wait.js";

const start = worldPerTest();

/** `PUT .../merge` as a person would call it; the HTTP status and GitLab's answer. */
async function merge(w: TrustWorld, iid: number, token: string, sha?: string) {
  const query = sha ? `?sha=${sha}` : "";
  const res = await fetch(`${w.sim.url}/api/v4/projects/${w.app.id}/merge_requests/${iid}/merge${query}`, {
    method: "PUT",
    headers: { "PRIVATE-TOKEN": token },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function headPipeline(w: TrustWorld, iid: number) {
  const res = await fetch(`${w.sim.url}/api/v4/projects/${w.app.id}/merge_requests/${iid}`, {
    headers: { "PRIVATE-TOKEN": w.maya.token },
  });
  const mr = (await res.json()) as {
    head_pipeline: { id: number; source: string; status: string; ref: string } | null;
  };
  return mr.head_pipeline;
}

function sticky(w: TrustWorld, iid: number) {
  const note = w.stickyNotes(iid)[0];
  assert.ok(note, "a sticky note");
  return { body: note.body, state: decodeState(note.body) };
}

/** The trusted pipeline of the MR's current head. */
function trustedPipeline(w: TrustWorld, mr: { sourceBranch: string; iid: number }, sha: string) {
  const p = w
    .pipelinesOn(w.trustedBranch(mr))
    .filter((x) => x.sha === sha && x.source === "api")
    .at(-1);
  assert.ok(p, "a trusted pipeline for the head");
  return p;
}

describe("same-project MRs: the trusted status gates the head pipeline", () => {
  it("a merge request pipeline head cannot be merged with 'Pipelines must succeed' until the trusted pipeline passed; a push blocks it again", async () => {
    const w = await start();
    w.sim.setMergeRequestPipelines(w.app.id, true);
    await w.as(w.maya).Projects.edit(w.app.id, { onlyAllowMergeIfPipelineSucceeds: true });
    w.sim.push(w.app.id, "feature", { userId: w.dev.id });
    const mr = w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: "feature", authorId: w.dev.id });
    await w.settle();

    // The MR's own pipeline is a merge request pipeline, and it is the head pipeline; its jobs all pass.
    const first = await headPipeline(w, mr.iid);
    assert.equal(first?.source, "merge_request_event");
    assert.equal(first?.ref, `refs/merge-requests/${mr.iid}/head`);
    w.sim.setPipelineStatus(w.app.id, first.id, "success");
    await w.settle();
    // ... but the bot's pending status is in it, so it has not passed and GitLab refuses the merge.
    const bots = w.sim
      .statuses(w.app.id, mr.sha)
      .filter((s) => s.name === w.config.trust.status_name && s.pipelineId === first.id);
    assert.equal(bots.at(-1)?.status, "pending");
    assert.equal((await headPipeline(w, mr.iid))?.status, "running");
    assert.equal((await merge(w, mr.iid, w.maya.token)).status, 405);

    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    assert.equal((await merge(w, mr.iid, w.maya.token)).status, 405, "not while the trusted pipeline runs");
    w.sim.setPipelineStatus(w.app.id, trustedPipeline(w, mr, mr.sha).id, "success");
    await w.settle();
    assert.equal((await headPipeline(w, mr.iid))?.status, "success");

    // A push: a new head with a new merge request pipeline whose jobs pass, but the trust is stale: blocked again.
    w.sim.push(w.app.id, "feature", { userId: w.dev.id });
    await w.settle();
    const head = w.mr(mr.iid).sha;
    const second = await headPipeline(w, mr.iid);
    assert.ok(second && second.id !== first.id);
    w.sim.setPipelineStatus(w.app.id, second.id, "success");
    await w.settle();
    assert.equal((await headPipeline(w, mr.iid))?.status, "running");
    assert.equal((await merge(w, mr.iid, w.maya.token)).status, 405);

    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${head}`);
    await w.settle();
    w.sim.setPipelineStatus(w.app.id, trustedPipeline(w, mr, head).id, "success");
    await w.settle();
    const merged = await merge(w, mr.iid, w.maya.token, head);
    assert.equal(merged.status, 200);
    assert.equal(w.mr(mr.iid).state, "merged");
  });
});

describe("/merge", () => {
  it("on a fork MR: waits for the trusted pipeline, then merges through the API pinned to the trusted SHA", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const pipeline = trustedPipeline(w, mr, mr.sha);
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "running");
    await w.settle();

    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, "/merge");
    await w.settle();
    assert.equal(w.mr(mr.iid).state, "opened", "not merged while the pipeline runs");
    assert.deepEqual(sticky(w, mr.iid).state.mergeWhenTrusted, { noteId: command.id, by: "maya", sha: mr.sha });
    assert.match(sticky(w, mr.iid).body, /\*\*Merge requested\*\* by @maya/);
    assert.match(w.replies(mr.iid).at(-1)?.body ?? "", new RegExp(`Will merge \`${mr.sha.slice(0, 8)}`));

    w.sim.clearRequestLog();
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    const after = w.mr(mr.iid);
    assert.equal(after.state, "merged");
    assert.equal(after.mergedById, w.bot.id);
    assert.equal(w.sim.requestLog.filter((r) => r.route === "PUT /projects/:id/merge_requests/:iid/merge").length, 1);
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined, "the trusted branch is cleaned up");
    const audit = await w.audit();
    assert.deepEqual(
      audit.filter((e) => e.event === "merge").map((e) => [e.by, e.sha]),
      [["maya", mr.sha]],
    );
  });

  it("after success, `/merge-trusted` merges at once", async () => {
    const w = await start();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    w.sim.setPipelineStatus(w.app.id, trustedPipeline(w, mr, mr.sha).id, "success");
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/merge-trusted");
    await w.settle();
    assert.equal(w.mr(mr.iid).state, "merged");
    assert.equal(w.mr(mr.iid).sha, mr.sha);
  });

  it("is forgotten when new commits arrive while the pipeline runs, and never merges them", async () => {
    const w = await start();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    const pipeline = trustedPipeline(w, mr, mr.sha);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/merge");
    await w.settle();
    w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await w.settle();
    w.sim.setPipelineStatus(w.app.id, pipeline.id, "success");
    await w.settle();
    assert.equal(w.mr(mr.iid).state, "opened");
    const note = sticky(w, mr.iid);
    assert.equal(note.state.mergeWhenTrusted, undefined);
    assert.match(note.body, /The merge @maya asked for was dropped: new commits arrived/);
  });

  it("a push racing the merge call makes GitLab refuse it (sha): nothing is merged, the committer is told", async () => {
    const w = await start();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    w.sim.setPipelineStatus(w.app.id, trustedPipeline(w, mr, mr.sha).id, "success");
    await w.settle();

    // Every API answer takes a while; the push lands right after the bot has read the MR for the command.
    w.sim.clearRequestLog();
    w.sim.setFaults({ latencyMs: 150 });
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, "/merge");
    await waitFor(
      "the bot read the MR for the command",
      () => w.sim.requestLog.some((r) => r.route === "GET /projects/:id/merge_requests/:iid"),
      10_000,
      2,
    );
    w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
    await waitFor(
      "the bot tried to merge",
      () => w.sim.requestLog.some((r) => r.route === "PUT /projects/:id/merge_requests/:iid/merge"),
      10_000,
      5,
    );
    w.sim.clearFaults();
    await w.settle();

    const attempt = w.sim.requestLog.find((r) => r.route === "PUT /projects/:id/merge_requests/:iid/merge");
    assert.equal(attempt?.status, 409);
    assert.equal(w.mr(mr.iid).state, "opened");
    assert.notEqual(w.sim.branch(w.app.id, "main")?.sha, w.mr(mr.iid).sha);
    assert.match(w.replies(mr.iid).at(-1)?.body ?? "", /not merged: new commits were pushed while it was being merged/);
    assert.equal(sticky(w, mr.iid).state.mergeWhenTrusted, undefined);
    assert.ok(sticky(w, mr.iid).state.handled?.includes(command.id));
  });

  it("is refused for non-committers, and before anything is trusted", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/merge");
    await w.settle();
    assert.match(w.replies(mr.iid).at(-1)?.body ?? "", /Not merged: nothing is trusted yet/);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    w.sim.setPipelineStatus(w.app.id, trustedPipeline(w, mr, mr.sha).id, "success");
    await w.settle();

    w.sim.comment(w.app.id, mr.iid, w.dave.id, "/merge");
    await w.settle();
    assert.equal(w.mr(mr.iid).state, "opened");
    assert.match(w.replies(mr.iid).at(-1)?.body ?? "", /only committers/);
    assert.equal(sticky(w, mr.iid).state.mergeWhenTrusted, undefined);
  });
});
