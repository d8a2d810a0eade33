/**
 * A job whose worker process died under it (SIGKILL, OOM, a node lost) is a stalled job: BullMQ's stalled check
 * puts it back in the queue. The soak kills a worker every few seconds, so a job can be caught twice; that is no
 * reason to give it up (least of all a command, whose job is the only copy of what it asked).
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { Worker } from "bullmq";
import type { CommandJob, WorkflowHandlers } from "../../src/queue/jobs.js";
import { createQueue, enqueueJobs, QUEUE_NAME } from "../../src/queue/queue.js";
import type { Redis } from "../../src/redis.js";
import { startService } from "../../src/runtime.js";
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

const COMMAND: CommandJob = {
  kind: "command",
  projectId: 7,
  mrIid: 3,
  noteId: 42,
  body: "/trust",
  action: "create",
  system: false,
  author: { id: 1, username: "maya" },
};
const JOB_ID = "command-7-42-create";

/** Handlers that record commands and fail on any other job. */
function commands(ran: CommandJob[]): WorkflowHandlers {
  const unexpected = async () => {
    throw new Error("unexpected job");
  };
  return {
    command: async (job) => void ran.push(job),
    reconcile: unexpected,
    push: unexpected,
    pipeline: unexpected,
    sweep: unexpected,
  };
}

/** Takes the next job as a worker that then dies would: active, under a lock nobody renews. Returns its id. */
async function takeAndDie(prefix: string): Promise<string | undefined> {
  const doomed = new Worker(QUEUE_NAME, null, { connection: redis, prefix, autorun: false });
  const taken = await doomed.getNextJob("token-of-a-dead-worker");
  await doomed.close();
  return taken?.id;
}

/**
 * A queue of its own with {@link COMMAND} taken by a worker that then died, its lock already expired (whose 30 s
 * are not what these tests are about).
 */
async function strandedCommand() {
  const prefix = uniquePrefix();
  const config = testConfig(prefix);
  cleanups.push(() => deletePrefix(redis, prefix));
  const queue = createQueue(redis, config);
  cleanups.push(() => queue.close());
  await enqueueJobs(queue, config, [COMMAND]);
  assert.equal(await takeAndDie(prefix), JOB_ID);
  await redis.del(`${queue.toKey(JOB_ID)}:lock`);
  return { config, queue };
}

describe("stalled jobs", () => {
  it("runs a command again after the second worker that died under it, instead of failing it", async () => {
    // What two SIGKILLs of the worker running this job leave behind, in BullMQ's own terms (bullmq 6.7,
    // commands/moveStalledJobsToWait-9.lua): the first crash already counted (`stc` 1); the second worker took the
    // job (active, with its lock) and died, its lock expired (no process renews it), and the previous stalled check
    // listed the job in `stalled`. The next check, by a live worker, decides what happens to the job.
    const { config, queue } = await strandedCommand();
    await redis.hset(queue.toKey(JOB_ID), "stc", "1");
    await redis.sadd(queue.toKey("stalled"), JOB_ID);

    const ran: CommandJob[] = [];
    const log = captureLogger("info");
    // A worker checks for stalled jobs as it starts.
    const service = await startService({
      config,
      logger: log.logger,
      roles: { worker: true },
      handlers: commands(ran),
    });
    cleanups.push(() => service.close());

    const state = await waitFor("the job to finish", async () => {
      const s = await queue.getJobState(JOB_ID);
      return s === "completed" || s === "failed" ? s : undefined;
    });
    assert.equal(state, "completed", `failed: ${(await queue.getJob(JOB_ID))?.failedReason}`);
    assert.deepEqual(
      ran.map((j) => j.noteId),
      [42],
    );
    assert.ok(
      log.lines.some((l) => l["jobId"] === JOB_ID && /stalled/.test(String(l["msg"]))),
      "the stall is logged: a job that keeps taking its worker down shows in the log",
    );
  });

  it("runs a job a dead worker left behind within seconds of its lock expiring, not a minute", async () => {
    const { config } = await strandedCommand();

    const ran: CommandJob[] = [];
    const service = await startService({
      config,
      logger: captureLogger("warn").logger,
      roles: { worker: true },
      handlers: commands(ran),
    });
    cleanups.push(() => service.close());
    // The check a worker makes as it starts only notes the job as active; the next check takes it back. With
    // BullMQ's default interval that is 30 s later.
    await waitFor("the stranded command to run", () => ran.length === 1, 15_000);
  });
});
