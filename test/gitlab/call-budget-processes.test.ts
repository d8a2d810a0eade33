/**
 * The call budget across real processes (test/fixtures/gitlab-caller-process.ts, each with its own Redis connection
 * and gitbeaker adapter) against one GitLab simulator: GitLab throttles the bot's user, not one job, so a 429 that
 * one process gets must hold every process's calls for its `Retry-After`.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, afterEach, before, describe, it } from "node:test";
import type { Redis } from "../../src/redis.js";
import { AccessLevel, GitLabSimulator, type SimUser } from "../../src/simulator/gitlab-simulator.js";
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from "../support/redis.js";
import { waitFor } from "../support/wait.js";

const FIXTURE = new URL("../fixtures/gitlab-caller-process.ts", import.meta.url).pathname;

interface Answer {
  call: string;
  ok: boolean;
  error?: string;
  retryAfterMs?: number;
  at: number;
}

interface Caller {
  /** Sends one call and resolves with its answer. */
  call(line: string): Promise<Answer>;
}

let redis: Redis;
let sim: GitLabSimulator;
let bot: SimUser;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  redis = testRedis();
  sim = await GitLabSimulator.start();
  bot = sim.addUser({ username: "trusted-bot", bot: true });
  const org = sim.addGroup({ path: "org" });
  sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
  sim.webhookMode = "drop";
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  await redis.quit();
  await sim.stop();
});

async function spawnCaller(prefix: string, name: string): Promise<Caller> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, REDIS_URL, TMR_PREFIX: prefix, GITLAB_URL: sim.url, GITLAB_TOKEN: bot.token },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const lines: string[] = [];
  let partial = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    const parts = (partial + d).split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
  });
  const exited = once(child, "exit");
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  await waitFor(`${name} to be ready (${stderr})`, () => lines.includes("ready"), 20_000);
  let answered = 1;
  return {
    async call(line) {
      child.stdin?.write(`${line}\n`);
      const index = answered++;
      const raw = await waitFor(`${name} to answer ${line}`, () => lines[index], 20_000);
      return JSON.parse(raw) as Answer;
    },
  };
}

describe("call budget across processes", () => {
  it("a 429 with Retry-After that one process gets pauses the other process's next call", async () => {
    const prefix = uniquePrefix();
    cleanups.push(() => deletePrefix(redis, prefix));
    const project = sim.addProject({ path: "org/app" });
    const [a, b] = await Promise.all([spawnCaller(prefix, "a"), spawnCaller(prefix, "b")]);
    sim.requestLog.length = 0;
    sim.failNext(1, 429, { retryAfterSeconds: 2, route: /^GET \/projects\// });

    const limited = await a.call(`project ${project.id}`);
    assert.equal(limited.error, "RateLimitedError", "process a got the 429 (and its job would be delayed)");
    assert.equal(limited.retryAfterMs, 2000);
    const answered = await b.call("user");
    assert.ok(answered.ok, "process b's call went through after the pause");

    const throttled = sim.requestLog.find((e) => e.status === 429);
    const next = sim.requestLog.find((e) => e.route === "GET /user");
    assert.ok(throttled && next, JSON.stringify(sim.requestLog));
    const gap = next.at - throttled.at;
    // The pause starts when process a has read the 429, a few ms after the simulator logged it.
    assert.ok(gap >= 1990, `process b called GitLab ${gap} ms after the 429, inside its Retry-After of 2 s`);
    assert.ok(gap < 5000, `process b waited only as long as GitLab asked (${gap} ms)`);
  });
});
