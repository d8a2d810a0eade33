/**
 * Real worker processes (test/fixtures/worker-process.ts) against one Redis: never two jobs of one MR at once
 * across processes while different MRs run in parallel; SIGTERM drains the active job and exits 0.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, afterEach, before, describe, it } from "node:test";
import type { CommandJob, JobData, ReconcileJob } from "../../src/queue/jobs.js";
import { type BotQueue, createQueue, enqueueJobs } from "../../src/queue/queue.js";
import type { Redis } from "../../src/redis.js";
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from "../support/redis.js";
import { testConfig } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";

const FIXTURE = new URL("../fixtures/worker-process.ts", import.meta.url).pathname;

interface Recorded {
  worker: string;
  mr: string;
  kind: string;
  edge: "start" | "end";
  at: number;
}

interface WorkerProcess {
  name: string;
  child: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

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

async function spawnWorker(prefix: string, name: string, env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, REDIS_URL, TMR_PREFIX: prefix, WORKER_NAME: name, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  let stdout = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  await Promise.race([
    waitFor(`${name} to be ready`, () => stdout.includes("ready"), 20_000),
    exited.then(({ code }) => {
      throw new Error(`${name} exited with ${code} before it was ready:\n${stderr}`);
    }),
  ]);
  return { name, child, stderr: () => stderr, exited };
}

function producer(prefix: string): BotQueue {
  const queue = createQueue(redis, testConfig(prefix));
  cleanups.push(async () => {
    await queue.close();
    await deletePrefix(redis, prefix);
  });
  return queue;
}

async function recorded(prefix: string): Promise<Recorded[]> {
  const raw = await redis.lrange(`${prefix}:test:events`, 0, -1);
  return raw.map((line) => JSON.parse(line) as Recorded);
}

function command(projectId: number, mrIid: number, noteId: number): CommandJob {
  return {
    kind: "command",
    projectId,
    mrIid,
    noteId,
    body: "/trust",
    action: "create",
    system: false,
    author: { id: 1, username: "root" },
  };
}

function reconcile(projectId: number, mrIid: number): ReconcileJob {
  return { kind: "reconcile", projectId, mrIid, reason: "test" };
}

/** Start/end pairs per job, in start order. */
function intervals(events: Recorded[]): Array<{ mr: string; worker: string; start: number; end: number }> {
  const open = new Map<string, Recorded[]>();
  const result: Array<{ mr: string; worker: string; start: number; end: number }> = [];
  for (const e of events) {
    const key = `${e.worker}/${e.mr}`;
    if (e.edge === "start") {
      open.set(key, [...(open.get(key) ?? []), e]);
    } else {
      const start = open.get(key)?.shift();
      assert.ok(start, `end without start: ${JSON.stringify(e)}`);
      result.push({ mr: e.mr, worker: e.worker, start: start.at, end: e.at });
    }
  }
  return result.sort((a, b) => a.start - b.start);
}

describe("worker processes", () => {
  it("never run two jobs of one MR at once, while different MRs run in parallel", async () => {
    const prefix = uniquePrefix();
    const queue = producer(prefix);
    const env = { SLEEP_MS: "120", CONCURRENCY: "4" };
    const [a, b] = await Promise.all([spawnWorker(prefix, "a", env), spawnWorker(prefix, "b", env)]);
    const jobs: JobData[] = [];
    for (const mrIid of [1, 2, 3]) {
      for (const noteId of [1, 2, 3, 4]) jobs.push(command(10, mrIid, mrIid * 100 + noteId));
      jobs.push(reconcile(10, mrIid));
    }
    await enqueueJobs(queue, testConfig(prefix), jobs);
    const events = await waitFor(
      "every job to start and end",
      async () => {
        const e = await recorded(prefix);
        return e.length === jobs.length * 2 ? e : undefined;
      },
      30_000,
    );
    assert.equal(await redis.get(`${prefix}:test:overlaps`), null, "a job started while its MR was busy");
    const all = intervals(events);
    for (const mr of ["10!1", "10!2", "10!3"]) {
      const ofMr = all.filter((i) => i.mr === mr);
      assert.equal(ofMr.length, 5);
      for (let i = 1; i < ofMr.length; i++) {
        assert.ok(ofMr[i]!.start >= ofMr[i - 1]!.end, `${mr}: job ${i} started before job ${i - 1} ended`);
      }
    }
    const parallel = all.some((x) => all.some((y) => x.mr !== y.mr && x.start < y.end && y.start < x.end));
    assert.ok(parallel, "different MRs ran at the same time");
    assert.deepEqual(new Set(all.map((i) => i.worker)), new Set([a.name, b.name]), "both processes took jobs");
    // A handler records its end just before BullMQ marks the job completed.
    await waitFor("every job to be marked completed", async () => (await queue.getCompletedCount()) === jobs.length);
    const counts = await queue.getJobCounts("completed", "failed", "active", "waiting", "prioritized", "delayed");
    assert.deepEqual(counts, { completed: jobs.length, failed: 0, active: 0, waiting: 0, prioritized: 0, delayed: 0 });
  });

  it("on SIGTERM stops taking jobs, finishes the active one and exits 0", async () => {
    const prefix = uniquePrefix();
    const queue = producer(prefix);
    const worker = await spawnWorker(prefix, "draining", { SLEEP_MS: "1500", CONCURRENCY: "2" });
    await enqueueJobs(queue, testConfig(prefix), [reconcile(20, 1)]);
    await waitFor("the job to start", async () => (await recorded(prefix)).length === 1);
    const signalled = Date.now();
    worker.child.kill("SIGTERM");
    await waitFor("the worker to begin shutting down", () => worker.stderr().includes('"msg":"shutting down"'));
    await enqueueJobs(queue, testConfig(prefix), [reconcile(20, 2)]);
    const { code, signal } = await worker.exited;
    assert.equal(code, 0, worker.stderr());
    assert.equal(signal, null);
    const events = await recorded(prefix);
    assert.deepEqual(
      events.map((e) => [e.mr, e.edge]),
      [
        ["20!1", "start"],
        ["20!1", "end"],
      ],
      "the active job finished; the one queued after SIGTERM was not taken",
    );
    assert.ok(events[1]!.at >= signalled, "the job ended after the signal, i.e. shutdown waited for it");
    // Every job has a priority (queue.ts `JOB_PRIORITY`), so a queued one is `prioritized`, not `waiting`.
    const counts = await queue.getJobCounts("completed", "active", "prioritized");
    assert.deepEqual(counts, { completed: 1, active: 0, prioritized: 1 });
  });

  it("exits 0 at the shutdown deadline even if a job is still running", async () => {
    const prefix = uniquePrefix();
    const queue = producer(prefix);
    const worker = await spawnWorker(prefix, "stuck", { SLEEP_MS: "20000", SHUTDOWN_TIMEOUT_MS: "300" });
    await enqueueJobs(queue, testConfig(prefix), [reconcile(30, 1)]);
    await waitFor("the job to start", async () => (await recorded(prefix)).length === 1);
    const signalled = Date.now();
    worker.child.kill("SIGTERM");
    const { code } = await worker.exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - signalled < 5000, "did not wait for the job");
    assert.match(worker.stderr(), /shutdown deadline passed with jobs still running/);
  });
});
