/**
 * Retry policy end to end: a worker whose handler makes a real `@gitbeaker/rest` call (through the adapter's
 * requester) to the GitLab simulator over HTTP and classifies failures with `classifyGitLabError`; the simulator
 * scripts the failures. The call is a POST (create a branch) because the requester itself retries idempotent GETs
 * on a 5xx, which would hide the worker's retries this test is about.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import type { Job } from "bullmq";
import { classifyGitLabError } from "../../src/gitlab/classify-error.js";
import type { JobData, WorkflowHandlers } from "../../src/queue/jobs.js";
import type { Redis } from "../../src/redis.js";
import { type Service, startService } from "../../src/runtime.js";
import { GitLabSimulator } from "../../src/simulator/gitlab-simulator.js";
import { type CapturedLogger, captureLogger } from "../support/capture-logger.js";
import { gitlabClient } from "../support/gitbeaker-client.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";
import { testConfig } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";

const ROUTE = "POST /projects/:id/repository/branches";
const MR = { projectId: 1, mrIid: 1 };

let sim: GitLabSimulator;
let redis: Redis;
let projectId: number;
let api: ReturnType<typeof gitlabClient>;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  redis = testRedis();
  sim = await GitLabSimulator.start();
  const bot = sim.addUser({ username: "trusted-bot", bot: true });
  projectId = sim.addProject({ path: "trusted-bot/app", ownerId: bot.id }).id;
  api = gitlabClient(sim.url, bot.token);
});
afterEach(async () => {
  sim.clearFaults();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  await sim.stop();
  await redis.quit();
});

/** A worker whose reconcile reads the project from the simulator; returns the time of each attempt. */
async function workerCallingGitLab(
  jobAttempts = 5,
): Promise<{ service: Service; attempts: number[]; log: CapturedLogger }> {
  const prefix = uniquePrefix();
  const log = captureLogger();
  const attempts: number[] = [];
  const branch = `feature-${uniquePrefix()}`;
  const fail = async () => {
    throw new Error("not used here");
  };
  const handlers: WorkflowHandlers = {
    reconcile: async () => {
      attempts.push(Date.now());
      try {
        await api.Branches.create(projectId, branch, "main");
      } catch (error) {
        throw classifyGitLabError(error, ROUTE);
      }
    },
    command: fail,
    push: fail,
    pipeline: fail,
    sweep: fail,
  };
  const config = testConfig(prefix, { worker: { attempts: jobAttempts, backoff_base_ms: 100, backoff_max_ms: 400 } });
  const service = await startService({ config, logger: log.logger, roles: { worker: true }, handlers });
  cleanups.push(async () => {
    await service.close();
    await deletePrefix(redis, prefix);
  });
  return { service, attempts, log };
}

async function finished(service: Service): Promise<Job<JobData>> {
  return waitFor(
    "the job to complete or fail",
    async () => (await service.queue.getJobs(["completed", "failed"]))[0],
    15_000,
  );
}

async function jobMetric(service: Service, outcome: string): Promise<number> {
  const metric = await service.metrics.jobs.get();
  return metric.values.find((v) => v.labels.outcome === outcome && v.labels.kind === "reconcile")?.value ?? 0;
}

describe("retries against GitLab (simulator)", () => {
  it("429: the next attempt waits for Retry-After", async () => {
    const { service, attempts } = await workerCallingGitLab();
    sim.failNext(1, 429, { retryAfterSeconds: 2 });
    await service.enqueueReconcile(MR, "test");
    const job = await finished(service);
    assert.equal(await job.isCompleted(), true);
    assert.equal(attempts.length, 2);
    const waited = attempts[1]! - attempts[0]!;
    assert.ok(waited >= 2000, `second attempt after ${waited} ms, Retry-After was 2 s`);
    // Loose on purpose (a loaded CI machine schedules late); it still tells Retry-After from the 60 s default.
    assert.ok(waited < 10_000, `second attempt after ${waited} ms: Retry-After, not the default wait`);
    assert.equal(await jobMetric(service, "rate_limited"), 1);
    assert.equal(await jobMetric(service, "completed"), 1);
    assert.equal(job.attemptsMade, 1, "the wait spent no attempt");
  });

  it("429s spend no attempt, whatever the job: a job with one attempt outlasts two of them", async () => {
    const { service, attempts } = await workerCallingGitLab(1);
    sim.failNext(2, 429, { retryAfterSeconds: 1 });
    await service.enqueueReconcile(MR, "test");
    const job = await finished(service);
    assert.equal(await job.isCompleted(), true);
    assert.equal(attempts.length, 3);
    assert.equal(job.attemptsMade, 1);
    assert.equal(await jobMetric(service, "rate_limited"), 2);
    assert.equal(await jobMetric(service, "failed"), 0);
  });

  it("transient 503s: retried with backoff, succeeds on the third attempt", async () => {
    const { service, attempts } = await workerCallingGitLab();
    sim.failNext(2, 503);
    await service.enqueueReconcile(MR, "test");
    const job = await finished(service);
    assert.equal(await job.isCompleted(), true);
    assert.equal(attempts.length, 3);
    assert.equal(job.attemptsMade, 3);
    assert.equal(await jobMetric(service, "retried"), 2);
    const statuses = sim.requestLog.slice(-3).map((r) => r.status);
    assert.deepEqual(statuses, [503, 503, 201]);
  });

  for (const [status, hint] of [
    [404, /found nothing: the project, MR, branch or pipeline is gone, or the bot's user cannot see it/],
    [403, /the bot's user lacks permission for POST \/projects\/:id\/repository\/branches/],
    [401, /check gitlab\.token/],
  ] as const) {
    it(`${status}: fails at once, not retried, and logs what to fix`, async () => {
      const { service, attempts, log } = await workerCallingGitLab();
      sim.failNext(1, status);
      await service.enqueueReconcile(MR, "test");
      const job = await finished(service);
      assert.equal(await job.isFailed(), true);
      assert.equal(attempts.length, 1, "not retried");
      assert.equal(job.attemptsMade, 1);
      assert.match(job.failedReason, hint);
      const line = log.lines.find((l) => l["level"] === "error" && typeof l["hint"] === "string");
      assert.ok(line, "an error line with the hint");
      assert.match(String(line["hint"]), hint);
      assert.equal(line["projectId"], MR.projectId);
      assert.equal(line["mrIid"], MR.mrIid);
      assert.equal(await jobMetric(service, "failed"), 1);
      assert.ok(!log.text().includes("glpat-"), "the bot's token never reaches the log");
    });
  }
});
