/**
 * Commands first (issue "Scale"): a `/trust` does not wait behind a backlog of reconciles, with real Redis and BullMQ.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import type { CommandJob, ReconcileJob, WorkflowHandlers } from "../../src/queue/jobs.js";
import { createQueue, enqueueJobs, reconcileJob } from "../../src/queue/queue.js";
import type { Redis } from "../../src/redis.js";
import { type Service, startService } from "../../src/runtime.js";
import { captureLogger } from "../support/capture-logger.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";
import { testConfig } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";

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

async function worker(workflow: WorkflowHandlers): Promise<Service> {
  const prefix = uniquePrefix();
  const config = testConfig(prefix, { worker: { concurrency: 2 } });
  const service = await startService({
    config,
    logger: captureLogger("warn").logger,
    roles: { worker: true },
    handlers: workflow,
  });
  cleanups.push(async () => {
    await service.close();
    await deletePrefix(redis, prefix);
  });
  return service;
}

const BACKLOG = 300;

describe("job priority", () => {
  it("runs a committer's command before a backlog of 300 reconciles of other MRs drains", async () => {
    const reconciled: ReconcileJob[] = [];
    let reconcilesBeforeCommand: number | undefined;
    const noop = async () => undefined;
    const service = await worker({
      reconcile: async (job) => {
        await new Promise((r) => setTimeout(r, 2));
        reconciled.push(job);
      },
      command: async () => {
        reconcilesBeforeCommand = reconciled.length;
      },
      push: noop,
      pipeline: noop,
      sweep: noop,
    });
    await service.enqueue(
      Array.from({ length: BACKLOG }, (_, i) => reconcileJob({ projectId: 7, mrIid: i + 10 }, "backlog")),
    );
    const command: CommandJob = {
      kind: "command",
      projectId: 7,
      mrIid: 3,
      noteId: 42,
      body: "/trust",
      action: "create",
      system: false,
      author: { id: 1, username: "root" },
    };
    await service.enqueue([command]);
    await waitFor("the command to run", () => reconcilesBeforeCommand !== undefined, 30_000);
    await waitFor("the backlog to drain", () => reconciled.length === BACKLOG, 30_000);
    assert.ok(
      reconcilesBeforeCommand! <= 10,
      `at most a few reconciles (those already taken) ran before the command: ${reconcilesBeforeCommand}`,
    );
  });
});

describe("reconcile coalescing", () => {
  it("a mirror reconcile never replaces a waiting reconcile an MR event asked for; mirrors coalesce with each other", async () => {
    const prefix = uniquePrefix();
    const config = testConfig(prefix);
    const queue = createQueue(redis, config);
    cleanups.push(async () => {
      await queue.close();
      await deletePrefix(redis, prefix);
    });
    const mr = { projectId: 7, mrIid: 3 };
    // No worker: every job stays waiting, as when a backlog is ahead of them.
    await enqueueJobs(queue, config, [reconcileJob(mr, "Merge Request Hook:update")]);
    await enqueueJobs(queue, config, [reconcileJob(mr, "pipeline:1:success", { mirror: true })]);
    await enqueueJobs(queue, config, [reconcileJob(mr, "pipeline:1:failed", { mirror: true })]);
    const waiting = await queue.getJobs(["waiting", "prioritized"]);
    assert.deepEqual(
      waiting.map((j) => [(j.data as ReconcileJob).reason, (j.data as ReconcileJob).mirror === true]).sort(),
      [
        ["Merge Request Hook:update", false],
        ["pipeline:1:success", true],
      ],
    );
  });
});
