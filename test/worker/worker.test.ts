/**
 * The worker in-process against a real Redis: coalescing while a reconcile runs, MR-lock deferral that costs no
 * attempt, fan-out, the sweep scheduler, and the one-shot sweep.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import type { Config } from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";
import type { CommandJob, JobContext, ReconcileJob, WorkflowHandlers } from "../../src/queue/jobs.js";
import { createMrLocks } from "../../src/queue/mr-lock.js";
import { SWEEP_SCHEDULER_ID } from "../../src/queue/queue.js";
import type { Redis } from "../../src/redis.js";
import { runSweepOnce, type Service, type ServiceRoles, startService } from "../../src/runtime.js";
import { captureLogger } from "../support/capture-logger.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";
import { testConfig } from "../support/service-config.js";
import { gate, waitFor } from "../support/wait.js";

let redis: Redis;
const cleanups: Array<() => Promise<void>> = [];

before(() => {
  redis = testRedis();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  await redis.quit();
});

/** Handlers that fail the test if called, except those given. */
function handlers(partial: Partial<WorkflowHandlers>): WorkflowHandlers {
  const unexpected = (kind: string) => async () => {
    throw new Error(`unexpected ${kind} job`);
  };
  return {
    reconcile: unexpected("reconcile"),
    command: unexpected("command"),
    push: unexpected("push"),
    pipeline: unexpected("pipeline"),
    sweep: unexpected("sweep"),
    ...partial,
  };
}

async function worker(
  workflow: WorkflowHandlers,
  overrides: Parameters<typeof testConfig>[1] = {},
  roles: ServiceRoles = { worker: true },
): Promise<{ service: Service; config: Config; prefix: string }> {
  const prefix = uniquePrefix();
  const config = testConfig(prefix, overrides);
  const service = await startService({ config, logger: captureLogger("warn").logger, roles, handlers: workflow });
  cleanups.push(async () => {
    await service.close();
    await deletePrefix(redis, prefix);
  });
  return { service, config, prefix };
}

async function idle(service: Service): Promise<boolean> {
  const counts = await service.queue.getJobCounts("waiting", "delayed", "active", "prioritized");
  return Object.values(counts).every((n) => n === 0);
}

const MR = { projectId: 7, mrIid: 3 };

describe("worker", () => {
  it("runs once more after a reconcile that arrived while that MR's reconcile was running, with the latest data", async () => {
    const release = gate();
    const calls: ReconcileJob[] = [];
    const { service } = await worker(
      handlers({
        reconcile: async (job) => {
          calls.push(job);
          if (calls.length === 1) await release.promise;
        },
      }),
    );
    await service.enqueueReconcile(MR, "first");
    await waitFor("first reconcile to start", () => calls.length === 1);
    await service.enqueueReconcile(MR, "second");
    await service.enqueueReconcile(MR, "third");
    release.open();
    await waitFor("the queue to drain", async () => calls.length >= 2 && (await idle(service)));
    assert.deepEqual(
      calls.map((c) => c.reason),
      ["first", "third"],
      "one run after the active one, carrying the latest event; none dropped, none extra",
    );
  });

  it("defers an MR job whose MR is locked without spending an attempt", async () => {
    const commands: CommandJob[] = [];
    const { service, config } = await worker(handlers({ command: async (job) => void commands.push(job) }), {
      worker: { attempts: 1 },
    });
    const locks = createMrLocks({ redis, prefix: config.redis.prefix, ttlMs: 10_000 });
    const held = await locks.tryAcquire(MR);
    assert.ok(held);
    const command: CommandJob = {
      kind: "command",
      ...MR,
      noteId: 42,
      body: "/trust",
      action: "create",
      system: false,
      author: { id: 1, username: "root" },
    };
    await service.enqueue([command]);
    await waitFor("two deferrals", async () => {
      const metric = await service.metrics.jobs.get();
      const deferred = metric.values.find((v) => v.labels.outcome === "deferred")?.value ?? 0;
      return deferred >= 2;
    });
    assert.equal(commands.length, 0, "not run while another job holds the MR");
    await held.release();
    await waitFor("the command to run", () => commands.length === 1);
    await waitFor(
      "the job to complete",
      async () => (await service.queue.getJobState("command-7-42-create")) === "completed",
    );
    // Read after completion: a Job object is a snapshot.
    const job = (await service.queue.getJob("command-7-42-create"))!;
    assert.equal(job.attemptsMade, 1, "deferrals are not attempts (attempts: 1 would have failed it otherwise)");
    assert.ok(job.attemptsStarted > 1);
  });

  it("fails a job on a configuration error at once, without retries", async () => {
    let calls = 0;
    const { service } = await worker(
      handlers({
        reconcile: async () => {
          calls++;
          throw new ConfigError("trust.committer_groups: group acme/core does not exist");
        },
      }),
      { worker: { attempts: 5 } },
    );
    await service.enqueueReconcile(MR, "test");
    const job = await waitFor("the job to fail", async () => (await service.queue.getJobs(["failed"]))[0]);
    assert.equal(calls, 1);
    assert.equal(job.attemptsMade, 1);
    assert.match(job.failedReason, /trust\.committer_groups: group acme\/core does not exist/);
  });

  it("runs the reconciles a fan-out job enqueues", async () => {
    const reconciled: ReconcileJob[] = [];
    const { service } = await worker(
      handlers({
        push: async (job, ctx: JobContext) => {
          await ctx.enqueueReconcile({ projectId: job.projectId, mrIid: 1 }, `push:${job.branch}`);
          await ctx.enqueueReconcile({ projectId: job.projectId, mrIid: 2 }, `push:${job.branch}`);
        },
        reconcile: async (job) => void reconciled.push(job),
      }),
    );
    await service.enqueue([{ kind: "push", projectId: 5, branch: "feature", before: "a", after: "b" }]);
    await waitFor("two reconciles", () => reconciled.length === 2);
    assert.deepEqual(reconciled.map((r) => [r.projectId, r.mrIid, r.reason]).sort(), [
      [5, 1, "push:feature"],
      [5, 2, "push:feature"],
    ]);
  });

  it("schedules the periodic sweep once however many processes upsert it", async () => {
    let sweeps = 0;
    const { service, config } = await worker(
      handlers({ sweep: async () => void sweeps++ }),
      { sweep: { interval_seconds: 1 } },
      { worker: true, scheduler: true },
    );
    const second = await startService({
      config,
      logger: captureLogger("warn").logger,
      roles: { scheduler: true },
      handlers: handlers({}),
    });
    cleanups.push(() => second.close());
    assert.equal((await service.queue.getJobSchedulers()).length, 1);
    assert.equal((await service.queue.getJobSchedulers())[0]?.key, SWEEP_SCHEDULER_ID);
    await waitFor("a scheduled sweep", () => sweeps >= 1, 5000);
  });
});

describe("sweep (one pass)", () => {
  it("reconciles what the sweep finds, skips MRs a worker holds, reports failures", async () => {
    const prefix = uniquePrefix();
    cleanups.push(() => deletePrefix(redis, prefix));
    const config = testConfig(prefix);
    const busy = await createMrLocks({ redis, prefix, ttlMs: 10_000 }).tryAcquire({ projectId: 1, mrIid: 3 });
    cleanups.push(async () => busy?.release());
    const reconciled: number[] = [];
    const result = await runSweepOnce({
      config,
      logger: captureLogger("warn").logger,
      handlers: handlers({
        sweep: async (_job, ctx) => {
          for (const mrIid of [1, 2, 3, 1]) await ctx.enqueueReconcile({ projectId: 1, mrIid }, "sweep");
        },
        reconcile: async (job) => {
          if (job.mrIid === 2) throw new Error("GitLab said no");
          reconciled.push(job.mrIid);
        },
      }),
    });
    assert.deepEqual(result, { reconciled: 1, busy: 1, failed: 1 });
    assert.deepEqual(reconciled, [1]);
  });
});
