/**
 * "Never lose a committer's command": whatever GitLab does (an outage longer than the job's attempts, 429s, 5xx on
 * writes, a refusal), a committer's `/trust` either takes effect or gets a reply, and is carried out once it can be.
 * The real workflow and worker, real Redis, the GitLab simulator over HTTP scripting the failures.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Job } from "bullmq";
import type { JobData } from "../../src/queue/jobs.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { waitFor } from "../support/wait.js";

const start = worldPerTest();

/** The trusted branch create, as the simulator matches it (path or route template). */
const BRANCH_CREATE = /^POST \/projects\/[^/]+\/repository\/branches$/;
const PIPELINE_CREATE = /^POST \/projects\/[^/]+\/pipeline$/;

function apiPipelines(w: TrustWorld, ref: string) {
  return w.pipelinesOn(ref).filter((p) => p.source === "api");
}

/** The reply as read (the bot escapes punctuation in quoted text). */
function unescaped(body: string): string {
  return body.replace(/\\(.)/g, "$1");
}

async function commandJob(w: TrustWorld, noteId: number): Promise<Job<JobData>> {
  const jobs = await w.service.queue.getJobs(["completed", "failed", "delayed", "waiting", "prioritized", "active"]);
  const job = jobs.find((j) => j.data.kind === "command" && j.data.noteId === noteId);
  assert.ok(job, `the command job of note ${noteId}`);
  return job;
}

async function jobMetric(w: TrustWorld, kind: string, outcome: string): Promise<number> {
  const metric = await w.service.metrics.jobs.get();
  return metric.values.find((v) => v.labels.outcome === outcome && v.labels.kind === kind)?.value ?? 0;
}

async function callMetric(w: TrustWorld, route: string, status: string): Promise<number> {
  const metric = await w.service.metrics.gitlabCalls.get();
  return metric.values.find((v) => v.labels.route === route && v.labels.status === status)?.value ?? 0;
}

describe("durable commands", () => {
  it("a /trust survives an outage longer than its attempts: it is answered, then carried out", async () => {
    const w = await start({ config: { worker: { attempts: 3, backoff_base_ms: 20, backoff_max_ms: 200 } } });
    const mr = w.openForkMr();
    await w.settle();
    // Every branch create fails until the outage ends; notes still go through, so the answer can be posted.
    w.sim.failNext(1_000_000, 502, { route: BRANCH_CREATE });
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);

    const reply = await waitFor(
      "the 'not carried out yet' reply",
      () => w.replies(mr.iid).find((n) => /not carried out yet/.test(n.body)),
      20_000,
    );
    assert.match(
      reply.body,
      /^GitLab is not answering right now \(502 on `POST \/projects\/:id\/repository\/branches`\), so `\/trust` is not carried out yet\. It will be retried until it is; this merge request will show the result\.$/,
    );
    assert.equal(apiPipelines(w, w.trustedBranch(mr)).length, 0, "not carried out during the outage");
    const job = await commandJob(w, command.id);
    assert.equal(await job.isFailed(), false, "the command job is not given up");

    w.sim.clearFaults();
    await waitFor("the trusted pipeline", () => apiPipelines(w, w.trustedBranch(mr))[0], 20_000);
    await waitFor("the award on the command", () => w.sim.awardEmoji(w.app.id, mr.iid, command.id).length === 1);
    await w.settle();
    assert.equal(apiPipelines(w, w.trustedBranch(mr)).length, 1);
    assert.equal(w.replies(mr.iid).length, 1, "exactly one reply: the 'not carried out yet' one");
    assert.equal(await (await commandJob(w, command.id)).isCompleted(), true);
  });

  it("429 waits do not consume a job's attempts", async () => {
    const w = await start({ config: { worker: { attempts: 2, backoff_base_ms: 20, backoff_max_ms: 200 } } });
    const mr = w.openForkMr();
    await w.settle();
    w.sim.failNext(3, 429, { retryAfterSeconds: 1, route: BRANCH_CREATE });
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);

    await waitFor("the trusted pipeline", () => apiPipelines(w, w.trustedBranch(mr))[0], 20_000);
    await w.settle();
    const job = await commandJob(w, command.id);
    assert.equal(await job.isCompleted(), true);
    assert.equal(job.attemptsMade, 1, "three 429 waits, one attempt");
    assert.equal(await jobMetric(w, "command", "rate_limited"), 3);
    assert.equal(await jobMetric(w, "command", "retried"), 0);
    assert.equal(w.replies(mr.iid).length, 0, "nothing to answer: the command was carried out");
    const tries = w.sim.requestLog.filter((r) => r.route === "POST /projects/:id/repository/branches");
    assert.deepEqual(
      tries.map((r) => r.status),
      [429, 429, 429, 201],
      "a 429 is not retried inside the request",
    );
    const waits = tries.slice(1).map((r, i) => r.at - tries[i]!.at);
    assert.ok(
      waits.every((ms) => ms >= 1000),
      `each retry after Retry-After (1 s): ${waits.join(", ")} ms`,
    );
  });

  it("a 5xx on an idempotent write is retried inside the operation", async () => {
    const w = await start({ config: { worker: { attempts: 2, backoff_base_ms: 20, backoff_max_ms: 200 } } });
    const mr = w.openForkMr();
    await w.settle();
    w.sim.failNext(2, 502, { route: BRANCH_CREATE });
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);

    await waitFor("the trusted pipeline", () => apiPipelines(w, w.trustedBranch(mr))[0], 20_000);
    await w.settle();
    const statuses = w.sim.requestLog
      .filter((r) => r.route === "POST /projects/:id/repository/branches")
      .map((r) => r.status);
    assert.deepEqual(statuses, [502, 502, 201], "tried three times within one request");
    const job = await commandJob(w, command.id);
    assert.equal(await job.isCompleted(), true);
    assert.equal(job.attemptsMade, 1, "no job attempt spent");
    assert.equal(await jobMetric(w, "command", "retried"), 0);
    assert.equal(await callMetric(w, "POST /projects/:id/repository/branches", "502"), 2, "every try counted");
    assert.equal(await callMetric(w, "POST /projects/:id/repository/branches", "201"), 1);
    assert.equal(apiPipelines(w, w.trustedBranch(mr)).length, 1);
    assert.equal(w.replies(mr.iid).length, 0);
  });

  it("a 5xx on creating a pipeline is not retried blindly: the job's next attempt looks first", async () => {
    const w = await start({ config: { worker: { attempts: 3, backoff_base_ms: 20, backoff_max_ms: 200 } } });
    const mr = w.openForkMr();
    await w.settle();
    w.sim.failNext(1, 502, { route: PIPELINE_CREATE });
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);

    await waitFor("the trusted pipeline", () => apiPipelines(w, w.trustedBranch(mr))[0], 20_000);
    await w.settle();
    const statuses = w.sim.requestLog.filter((r) => r.route === "POST /projects/:id/pipeline").map((r) => r.status);
    assert.deepEqual(statuses, [502, 201]);
    const job = await commandJob(w, command.id);
    assert.equal(job.attemptsMade, 2, "the 502 cost an attempt: a second POST could have made a second pipeline");
    assert.equal(apiPipelines(w, w.trustedBranch(mr)).length, 1);
  });

  it("a command that fails permanently is answered", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    // The bot's user lost the right to push trusted branches.
    w.sim.failNext(1, 403, { route: BRANCH_CREATE });
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);

    const reply = await waitFor("the reply", () => w.replies(mr.iid)[0], 20_000);
    await w.settle();
    assert.equal(
      unescaped(reply.body),
      "`/trust` could not be carried out: the bot's user lacks permission for POST /projects/:id/repository/branches: it needs the Maintainer role on the project (to manage protected trusted branches and run their pipelines).",
    );
    assert.doesNotMatch(reply.body, /Forbidden|\n/, "one sentence, not GitLab's answer");
    assert.equal(w.replies(mr.iid).length, 1);
    const job = await commandJob(w, command.id);
    assert.equal(await job.isFailed(), true, "not retried: a 403 does not pass by itself");
    assert.equal(job.attemptsMade, 1);
    assert.equal(apiPipelines(w, w.trustedBranch(mr)).length, 0);
  });
});
