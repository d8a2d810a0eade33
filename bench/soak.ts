/**
 * `npm run soak`: the bot as separate OS processes (1 `receiver`, 3 `worker`s) against the bundled GitLab simulator
 * (in this process, real HTTP) and a private `redis-server` with AOF, while a worker is SIGKILLed and replaced every
 * few seconds and 30 merge requests (two thirds from forks, one third same-project from a Developer) get pushes,
 * committers' `/trust` (bare and `/trust <full sha>`), `/retest`, `/untrust`, pipeline status changes, and near the
 * end merges and closes. For the middle 40 % of the action phase the simulator answers 30 % of API requests with a
 * 5xx and 10 % with 429 (`Retry-After: 2`), with 20 ms latency. Then faults are cleared, killing stops,
 * `trusted-mr-bot sweep` runs once and the soak waits for quiet before counting.
 *
 *   npm run soak -- [--duration SECONDS] [--kill-every SECONDS] [--seed N] [--rate ACTIONS_PER_SECOND]
 *                   [--workers N] [--sweep-every SECONDS] [--quiet-timeout SECONDS] [--keep]
 *
 * The simulator records every webhook it sends to a second project hook owned by the soak: one ordered stream of
 * Push, Note, Pipeline and MR events (GitLab's event order), which places each command against the bot's writes.
 *
 * Definitions (bench/soak-figures.ts computes them):
 * - commands sent: notes posted by a committer (maya, max) whose body is a `/trust`, `/trust <sha>`, `/retest` or
 *   `/untrust` command, on an open MR.
 * - carried out: the command note has an award emoji by the bot; or, without one, its effect is visible after the
 *   note in the event stream: `/trust` - the bot wrote the MR's trusted branch at the target SHA; `/untrust` - the
 *   bot deleted the trusted branch before any merge or close of the MR; `/retest` - a bot pipeline on the trusted
 *   branch at the head the note saw started: a retry (a finished one made active again), or a new one that is not
 *   the first since the bot last wrote the branch (that one is the grant's). Shown as "awarded" and "effect only".
 * - answered: a command not carried out that a bot reply (a bot note other than its sticky note) posted after it on
 *   the same MR answers; replies are not threaded, so each reply answers at most one earlier command (a maximum
 *   matching). Replies left over are shown as "bot replies matching no command" (e.g. one command answered twice).
 * - commands lost = sent - carried out - answered: neither took effect nor got an answer.
 * - duplicate trusted pipelines: per (trusted branch, SHA), pipelines the bot created (source `api`, user = bot)
 *   beyond those allowed: one per bot write of the branch to that SHA (a grant) plus one per `retest` entry of the
 *   audit stream on that branch and SHA (the SHA a `/retest` ran on, which is the grant when it ran: a `/retest`
 *   held back by GitLab's 429s runs on a newer grant than the head it was posted at). Retries of a pipeline are the
 *   same pipeline and never count. (An allowance left unused, e.g. a `/retest` that retried, can hide one
 *   duplicate: a lower bound.)
 * - untrusted moves: bot writes of a trusted branch to a SHA X (from the Push events, user = bot) with no committer
 *   `/trust` on that branch's MR, posted before the write, whose target was X (the SHA named, else the MR head when
 *   the note was posted).
 * - unknown grants: `grant` entries of the audit stream (`<prefix>:audit`, `readAudit`) whose `by` is not a
 *   committer's username ("unknown", "a committer", the bot, ...) or whose reason says "by hand" (nobody pushes a
 *   trusted branch by hand in the soak).
 * - jobs failed permanently: BullMQ's failed count at the end (jobs out of attempts or unrecoverable); the
 *   "failed permanently" lines of every worker log are shown beside it.
 * - time to quiet: from the end of the action phase until the webhook queue is empty, the inbox stream is empty
 *   and no job is waiting, prioritized, active or delayed (the periodic sweep's scheduled job aside), 8 checks in a
 *   row 250 ms apart. The final sweep runs inside this time.
 *
 * The last line is `soak: commands lost <n>, duplicate pipelines <n>, untrusted moves <n>, unknown grants <n>`.
 * Exit 1 when commands lost, duplicate pipelines or untrusted moves are not 0, or quiet never came.
 * Everything is local (loopback only); every child process and the redis-server are SIGKILLed on exit, Ctrl-C or
 * error. `--seed` repeats the scenario's choices; fault draws and process timing are not seeded.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ChildProcess } from "node:child_process";
import { stringify as toYaml } from "yaml";
import { loadConfig } from "../src/config/config.js";
import { inboxKey } from "../src/queue/inbox.js";
import { createQueue } from "../src/queue/queue.js";
import { closeRedis, createRedis } from "../src/redis.js";
import { AccessLevel, GitLabSimulator, type SimUser } from "../src/simulator/gitlab-simulator.js";
import { readAudit } from "../src/trust/audit.js";
import { trustedBranchName } from "../src/trust/decide.js";
import { isStickyNoteBody } from "../src/trust/state.js";
import { computeFigures, type SentCommand, seededRandom, type StreamEvent } from "./soak-figures.js";
import { exited, freePort, ProcessGroup, spawnBot, startAofRedis, waitForPort } from "./soak-processes.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const PREFIX = "trusted-";
const REDIS_PREFIX = "tmr-soak";
/** Share of the action phase before faults start, and where they stop. */
const FAULT_WINDOW = [0.3, 0.7] as const;
/** Merges and closes happen in this last share of the action phase. */
const ENDGAME = 0.25;
const QUIET_CHECKS = 8;
const QUIET_POLL_MS = 250;

const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "180" },
    "kill-every": { type: "string", default: "5" },
    seed: { type: "string" },
    rate: { type: "string", default: "4" },
    workers: { type: "string", default: "3" },
    mrs: { type: "string", default: "30" },
    "sweep-every": { type: "string", default: "20" },
    "quiet-timeout": { type: "string", default: "180" },
    keep: { type: "boolean", default: false },
  },
  strict: true,
});

function numberArg(name: keyof typeof args, min: number): number {
  const n = Number(args[name]);
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`soak: --${name} must be a number >= ${min}, got ${String(args[name])}\n`);
    process.exit(2);
  }
  return n;
}

const durationS = numberArg("duration", 5);
const killEveryS = numberArg("kill-every", 0.5);
const rate = numberArg("rate", 0.1);
const workerCount = Math.floor(numberArg("workers", 1));
const mrCount = Math.floor(numberArg("mrs", 1));
const sweepEveryS = Math.floor(numberArg("sweep-every", 0));
const quietTimeoutS = numberArg("quiet-timeout", 1);
const seed = args.seed !== undefined ? Math.floor(numberArg("seed", 0)) : Math.floor(Math.random() * 2 ** 31);
const rng = seededRandom(seed);

const dir = mkdtempSync(join(tmpdir(), "tmr-soak-"));
const group = new ProcessGroup();
process.on("exit", () => group.killAll());
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`soak: ${signal}; killing the bot's processes and redis-server (logs in ${dir})\n`);
    group.killAll();
    process.exit(130);
  });
}

const say = (line = "") => process.stdout.write(`${line}\n`);
// The simulator prints every 501 to stderr; the soak counts them from its request log instead.
const consoleError = console.error;
console.error = (...items: unknown[]) => {
  if (!(typeof items[0] === "string" && items[0].startsWith("[gitlab-simulator]"))) consoleError(...items);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
/** Set when the soak cannot go on (the bot's processes do not start); the loops stop at their next step. */
let fatal: Error | undefined;
const checkFatal = () => {
  if (fatal) throw fatal;
};

let exitCode = 1;
try {
  exitCode = await soak();
} catch (error) {
  process.stderr.write(`soak: ${(error as Error)?.stack ?? String(error)}\n(logs in ${dir})\n`);
  exitCode = 1;
} finally {
  group.killAll();
}
if (exitCode === 0 && !args.keep) rmSync(dir, { recursive: true, force: true });
process.exit(exitCode);

async function soak(): Promise<number> {
  say(`soak: duration ${durationS} s, kill every ${killEveryS} s, seed ${seed}, ${mrCount} MRs, ${workerCount} workers`);
  say(`  logs and redis data in ${dir}`);
  const redisServer = await startAofRedis(group, dir);
  const sim = await GitLabSimulator.start({ host: "127.0.0.1" });

  // The world (as test/support/trust-world.ts): org/app with the bot and two committers as Maintainers, a
  // Developer who opens same-project MRs, two contributors with forks.
  const bot = sim.addUser({ username: "trusted-bot", name: "Trusted Bot", bot: true });
  const maya = sim.addUser({ username: "maya", name: "Maya Maintainer" });
  const max = sim.addUser({ username: "max", name: "Max Maintainer" });
  const dev = sim.addUser({ username: "dev", name: "Dev Developer" });
  const dave = sim.addUser({ username: "dave", name: "Dave Contributor" });
  const erin = sim.addUser({ username: "erin", name: "Erin Contributor" });
  const committers = [maya, max];
  const org = sim.addGroup({ path: "org" });
  sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
  sim.addMember({ groupId: org.id }, maya.id, AccessLevel.Maintainer);
  sim.addMember({ groupId: org.id }, max.id, AccessLevel.Maintainer);
  sim.addMember({ groupId: org.id }, dev.id, AccessLevel.Developer);
  const app = sim.addProject({
    path: "org/app",
    namespaceGroupId: org.id,
    ciJobs: [
      { name: "build", stage: "build" },
      { name: "test", stage: "test" },
    ],
    // The CI templates' `workflow: rules`: no push pipeline on trusted branches.
    pipelineOnPushFilter: (ref: string) => !ref.startsWith(PREFIX),
  });
  sim.protectBranch(app.id, { name: "main", pushAccessLevel: 40, mergeAccessLevel: 30 });
  sim.protectBranch(app.id, { name: `${PREFIX}*`, pushAccessLevel: 40, mergeAccessLevel: 40 });
  const forks = [
    { user: dave, project: sim.fork(app.id, { ownerId: dave.id, path: "dave/app" }) },
    { user: erin, project: sim.fork(app.id, { ownerId: erin.id, path: "erin/app" }) },
  ];

  // The recording hook: every event GitLab sends, in order.
  const events: StreamEvent[] = [];
  const recorder = createServer((req, res) => record(req, res, events));
  await new Promise<void>((resolve) => recorder.listen(0, "127.0.0.1", resolve));
  sim.addHook(app.id, {
    url: `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/record`,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
    pipelineEvents: true,
  });

  const secret = `soak-${seed}-${Date.now()}`;
  const configFile = join(dir, "trusted-mr-bot.yml");
  writeFileSync(
    configFile,
    toYaml({
      gitlab: { url: sim.url, token: bot.token },
      webhook: { secret },
      redis: { url: redisServer.url, prefix: REDIS_PREFIX },
      server: { host: "127.0.0.1", port: 0 },
      // Shorter waits than production so a soak ends in minutes; attempts stay at the default.
      worker: { concurrency: 4, backoff_base_ms: 250, backoff_max_ms: 10_000, shutdown_timeout_ms: 5_000 },
      sweep: { interval_seconds: sweepEveryS, grace_seconds: 0, projects: [app.pathWithNamespace] },
      log: { level: "info" },
    }),
  );

  const receiverPort = await freePort();
  const receiver = spawnBot(group, ROOT, "receiver", {
    configFile,
    logFile: join(dir, "receiver.log"),
    env: { PORT: String(receiverPort) },
  });
  await Promise.race([
    waitForPort(receiverPort, 30_000, "the receiver"),
    exited(receiver).then((code) => Promise.reject(new Error(`the receiver exited at start (${code})`))),
  ]);
  sim.addHook(app.id, {
    url: `http://127.0.0.1:${receiverPort}/webhook`,
    token: secret,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
    pipelineEvents: true,
  });

  // The workers, supervised as Kubernetes would: one that exits by itself (a crash, not our SIGKILL) is counted and
  // replaced after a second; three in a row that die within 10 s of their start end the soak (the bot cannot start).
  let workerSerial = 0;
  let crashes = 0;
  let earlyCrashes = 0;
  let supervising = true;
  const workers: ChildProcess[] = [];
  const killedByUs = new WeakSet<ChildProcess>();
  const startWorker = (): ChildProcess => {
    workerSerial += 1;
    const logFile = join(dir, `worker-${workerSerial}.log`);
    const child = spawnBot(group, ROOT, "worker", { configFile, logFile });
    const startedAt = Date.now();
    workers.push(child);
    child.once("exit", (code, signal) => {
      if (killedByUs.has(child) || !supervising) return;
      workers.splice(workers.indexOf(child), 1);
      crashes += 1;
      earlyCrashes = Date.now() - startedAt < 10_000 ? earlyCrashes + 1 : 0;
      if (earlyCrashes >= 3) {
        fatal ??= new Error(`workers exit at start (${code ?? signal}); the last said: ${lastLines(logFile)}`);
        return;
      }
      setTimeout(() => supervising && startWorker(), 1000);
    });
    return child;
  };
  for (let i = 0; i < workerCount; i++) startWorker();
  receiver.once("exit", (code, signal) => {
    fatal ??= new Error(`the receiver exited (${code ?? signal}); see ${join(dir, "receiver.log")}`);
  });

  // The bot's own reading of the file: the queue and inbox keys are exactly the workers'.
  const { config } = loadConfig({ path: configFile, env: {} });
  const redis = createRedis(config.redis.url, "durable", { name: "soak" });
  const queue = createQueue(redis, config);

  /** True once the simulator sent every webhook, the inbox is empty and no job is pending, `QUIET_CHECKS` times in a row. */
  let lastBusy = "";
  const waitForQuiet = async (timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs;
    let streak = 0;
    while (Date.now() < deadline) {
      checkFatal();
      const idle = await Promise.race([sim.idle().then(() => true), sleep(50).then(() => false)]);
      const inbox = await redis.xlen(inboxKey(config));
      const counts = await queue.getJobCounts("waiting", "prioritized", "active", "waiting-children");
      const delayed = (await queue.getJobs(["delayed"])).filter((j) => !j.repeatJobKey).length;
      const busy = Object.values(counts).reduce((a, b) => a + b, 0) + delayed + inbox;
      lastBusy = `${Object.entries({ ...counts, delayed, inbox })
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}${idle ? "" : ", webhooks in flight"}`;
      streak = idle && busy === 0 ? streak + 1 : 0;
      if (streak >= QUIET_CHECKS) return true;
      await sleep(QUIET_POLL_MS);
    }
    return false;
  };

  // The merge requests.
  interface Mr {
    iid: number;
    sourceProjectId: number;
    sourceBranch: string;
    author: SimUser;
    fork: boolean;
    open: boolean;
    /** Heads this MR had, oldest first (for `/trust <old sha>`). */
    heads: string[];
  }
  const mrs: Mr[] = [];
  const forkMrs = Math.round((mrCount * 2) / 3);
  for (let i = 1; i <= mrCount; i++) {
    const fromFork = i <= forkMrs;
    const owner = fromFork ? forks[i % forks.length]! : { user: dev, project: app };
    const branch = `feature-${i}`;
    sim.push(owner.project.id, branch, { userId: owner.user.id, message: `Start feature ${i}` });
    const mr = sim.openMergeRequest({
      sourceProjectId: owner.project.id,
      sourceBranch: branch,
      targetProjectId: app.id,
      authorId: owner.user.id,
      title: `Feature ${i}`,
    });
    mrs.push({
      iid: mr.iid,
      sourceProjectId: owner.project.id,
      sourceBranch: branch,
      author: owner.user,
      fork: fromFork,
      open: true,
      heads: [mr.sha],
    });
  }
  const trustedBranchOf = new Map(mrs.map((m) => [m.iid, trustedBranchName(PREFIX, m)]));
  say(`  ${mrs.length} MRs opened (${forkMrs} from forks); waiting for the bot's first look`);
  if (!(await waitForQuiet(60_000))) say("  (not quiet after 60 s; starting anyway)");

  // ---- action phase ----
  const commands: SentCommand[] = [];
  const actions = new Map<string, number>();
  const count = (what: string) => actions.set(what, (actions.get(what) ?? 0) + 1);
  let kills = 0;
  let killing = true;
  let killer: Promise<void> = Promise.resolve();
  const killTimer = setInterval(() => {
    if (!killing) return;
    killer = killer.then(async () => {
      const alive = workers.filter((w) => w.exitCode === null && w.signalCode === null);
      if (alive.length === 0 || !killing) return;
      const victim = pick(alive);
      killedByUs.add(victim);
      victim.kill("SIGKILL");
      await exited(victim);
      workers.splice(workers.indexOf(victim), 1);
      kills += 1;
      startWorker();
    });
  }, killEveryS * 1000);

  const post = (m: Mr, command: SentCommand["command"], namedSha?: string) => {
    const author = pick(committers);
    const head = sim.mergeRequest(app.id, m.iid).sha;
    const text = command === "trust" && namedSha ? `/trust ${namedSha}` : `/${command}`;
    const body = rng() < 0.3 ? `Reviewed the changes.\n\n${text}` : text;
    const note = sim.comment(app.id, m.iid, author.id, body);
    commands.push({
      noteId: note.id,
      iid: m.iid,
      command,
      author: author.username,
      headAtPost: head,
      ...(namedSha ? { namedSha } : {}),
    });
    count(namedSha ? (namedSha === head ? "/trust <head sha>" : "/trust <old sha>") : `/${command}`);
  };

  const drivePipeline = (m: Mr): boolean => {
    const active = sim
      .pipelines(app.id)
      .filter((p) => p.ref === trustedBranchOf.get(m.iid) && p.source === "api" && p.userId === bot.id)
      .filter((p) => !["success", "failed", "canceled", "skipped"].includes(p.status));
    const p = active.at(-1);
    if (!p) return false;
    const roll = rng();
    if (roll < 0.35) sim.setPipelineStatus(app.id, p.id, "running");
    else if (roll < 0.65) sim.setPipelineStatus(app.id, p.id, "success");
    else if (roll < 0.85) sim.setPipelineStatus(app.id, p.id, "failed");
    else sim.setJobStatus(app.id, p.id, "test", "failed");
    count("pipeline status");
    return true;
  };

  const act = (elapsed: number) => {
    const open = mrs.filter((m) => m.open);
    if (open.length === 0) return;
    const m = pick(open);
    const endgame = elapsed > 1 - ENDGAME;
    const roll = rng();
    if (endgame && roll < 0.04) {
      sim.mergeMergeRequest(app.id, m.iid, maya.id);
      m.open = false;
      count("merge");
    } else if (endgame && roll < 0.08) {
      sim.closeMergeRequest(app.id, m.iid, maya.id);
      m.open = false;
      count("close");
    } else if (roll < 0.3) {
      const { after } = sim.push(m.sourceProjectId, m.sourceBranch, { userId: m.author.id });
      m.heads.push(after);
      count("push");
    } else if (roll < 0.44) {
      post(m, "trust");
    } else if (roll < 0.58) {
      const head = sim.mergeRequest(app.id, m.iid).sha;
      const old = m.heads.length > 1 && rng() < 0.15 ? m.heads[m.heads.length - 2] : undefined;
      post(m, "trust", old ?? head);
    } else if (roll < 0.7) {
      post(m, "retest");
    } else if (roll < 0.76) {
      post(m, "untrust");
    } else if (!drivePipeline(m)) {
      // No running trusted pipeline on this MR: drive one elsewhere, if any.
      if (!open.some((other) => drivePipeline(other))) count("pipeline status (none running)");
    }
  };

  const started = Date.now();
  const endAt = started + durationS * 1000;
  let faults: "off" | "on" | "done" = "off";
  let simRefusals = 0;
  say(`  action phase: ${durationS} s at ~${rate} actions/s; faults from ${FAULT_WINDOW[0] * 100} % to ${FAULT_WINDOW[1] * 100} %`);
  while (Date.now() < endAt) {
    checkFatal();
    const elapsed = (Date.now() - started) / (durationS * 1000);
    if (faults === "off" && elapsed >= FAULT_WINDOW[0]) {
      // 10 % 429 first, then 5xx on a third of the rest: 30 % of all requests.
      sim.setFaults({
        latencyMs: 20,
        rateLimitRate: 0.1,
        retryAfterSeconds: 2,
        rateLimitHeaders: true,
        errorRate: 0.3 / 0.9,
        errorStatus: pick([500, 502, 503] as const),
      });
      faults = "on";
    } else if (faults === "on" && elapsed >= FAULT_WINDOW[1]) {
      sim.clearFaults();
      faults = "done";
    }
    try {
      act(elapsed);
    } catch (error) {
      // GitLab refusing a user's action (a merge the simulator will not do, a finished pipeline): not the bot's.
      simRefusals += 1;
      count(`refused by GitLab: ${(error as Error).message.slice(0, 60)}`);
    }
    await sleep((1000 / rate) * (0.5 + rng()));
  }
  const actionEnd = Date.now();
  sim.clearFaults();
  killing = false;
  clearInterval(killTimer);
  await killer;
  checkFatal();
  say(`  action phase over: ${commands.length} commands, ${kills} kills; sweeping and waiting for quiet`);

  // ---- sweep and quiet ----
  const sweep = spawnBot(group, ROOT, "sweep", { configFile, logFile: join(dir, "sweep.log") });
  const sweepExit = await Promise.race([exited(sweep), sleep(120_000).then(() => "timeout")]);
  if (sweepExit === "timeout") sweep.kill("SIGKILL");
  const quiet = await waitForQuiet(quietTimeoutS * 1000);
  const quietAfterS = (Date.now() - actionEnd) / 1000;
  supervising = false;
  await Promise.race([sim.idle(), sleep(5_000)]);

  // ---- figures ----
  const awarded = new Set<number>();
  const replies: Array<{ iid: number; noteId: number; body: string }> = [];
  for (const m of mrs) {
    for (const n of sim.notes(app.id, m.iid)) {
      if (n.authorId !== bot.id) {
        if (sim.awardEmoji(app.id, m.iid, n.id).some((a) => a.userId === bot.id)) awarded.add(n.id);
      } else if (!isStickyNoteBody(n.body)) {
        replies.push({ iid: m.iid, noteId: n.id, body: n.body });
      }
    }
  }
  const pipelines = sim.pipelines(app.id);
  const figures = computeFigures({
    commands,
    events,
    botUserId: bot.id,
    committers: new Set(committers.map((c) => c.username)),
    branchPrefix: PREFIX,
    trustedBranchOf: (iid) => trustedBranchOf.get(iid) ?? "",
    awardedNoteIds: awarded,
    replies,
    botPipelines: pipelines.filter((p) => p.source === "api" && p.userId === bot.id),
    audit: await readAudit(redis, REDIS_PREFIX, 1_000_000),
  });
  const failedJobs = (await queue.getJobCounts("failed"))["failed"] ?? 0;
  // src/queue/worker.ts: "<kind> job failed permanently: ..." and "<kind> job failed after <n> attempts: ...".
  const permanentLines = readdirSync(dir)
    .filter((f) => f.startsWith("worker-") && f.endsWith(".log"))
    .reduce(
      (n, f) => n + (readFileSync(join(dir, f), "utf8").match(/job failed (permanently|after \d+ attempts)/g)?.length ?? 0),
      0,
    );
  const unknownRoutes = new Set(
    sim.requestLog.filter((r) => r.status === 501).map((r) => `${r.method} ${r.path.split("?")[0]!.replace(/\d+/g, ":n")}`),
  );
  const faulted = sim.requestLog.filter((r) => r.status === 429 || r.status >= 500).length;
  const hookFailures = sim.deliveryLog.filter(
    (d) => d.url.endsWith("/webhook") && (d.status === "error" || d.status >= 300),
  ).length;
  await queue.close();
  await closeRedis(redis);
  await sim.stop();
  await new Promise<void>((resolve) => recorder.close(() => resolve()));

  const t = figures.total;
  const rows: Array<[string, string | number]> = [
    ["worker kills (SIGKILL)", kills],
    ["workers that exited by themselves", crashes],
    ["actions", [...actions].map(([what, n]) => `${what} ${n}`).join(", ")],
    ["user actions GitLab refused", simRefusals],
    ["API requests (faulted: 429 or 5xx)", `${sim.requestLog.length} (${faulted})`],
    ["webhooks to the receiver not accepted", hookFailures],
    [
      "API requests the simulator does not implement (501)",
      `${sim.requestLog.filter((r) => r.status === 501).length}${unknownRoutes.size ? ` (${[...unknownRoutes].join(", ")})` : ""}`,
    ],
    ["commands sent", t.sent],
    ...(["trust", "retest", "untrust"] as const).map((c): [string, string] => {
      const x = figures.byCommand[c];
      return [`  /${c}`, `sent ${x.sent}, awarded ${x.awarded}, effect only ${x.effectOnly}, answered ${x.answered}, lost ${x.lost}`];
    }),
    ["commands carried out (awarded + effect only)", `${t.awarded + t.effectOnly} (${t.awarded} + ${t.effectOnly})`],
    ["commands answered", t.answered],
    ["bot replies matching no command", figures.unmatchedReplies.length],
    ["commands lost (must be 0)", t.lost],
    ["bot pipelines", pipelines.filter((p) => p.source === "api" && p.userId === bot.id).length],
    ["duplicate trusted pipelines (must be 0)", figures.duplicatePipelines],
    ["untrusted moves (must be 0)", figures.untrustedMoves],
    ["grants in the audit stream", figures.grants],
    ["grants by unknown", figures.unknownGrants],
    ["jobs failed permanently (BullMQ failed; worker log lines)", `${failedJobs}; ${permanentLines}`],
    ["time to quiet", quiet ? `${quietAfterS.toFixed(1)} s` : `not quiet after ${quietAfterS.toFixed(1)} s (${lastBusy})`],
    ["final sweep", `exit ${sweepExit}`],
  ];
  say();
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) say(`${k.padEnd(width)}  ${v}`);
  const details = [
    ...figures.lost.slice(0, 10).map((c) => `  lost: /${c.command} note ${c.noteId} on !${c.iid} by ${c.author}`),
    ...figures.unmatchedReplies
      .slice(0, 5)
      .map((r) => `  reply matching no command on !${r.iid}: ${(r.body ?? "").replace(/\s+/g, " ").slice(0, 90)}`),
    ...figures.duplicates
      .slice(0, 10)
      .map((d) => `  duplicate: ${d.pipelines} pipelines on ${d.ref} @ ${d.sha.slice(0, 8)}, ${d.allowed} allowed`),
    ...figures.untrusted.slice(0, 10).map((u) => `  untrusted move: ${u.ref} -> ${u.sha.slice(0, 8)}`),
    ...figures.unknownGrantEntries
      .slice(0, 10)
      .map((g) => `  unknown grant: !${g["mrIid"]} ${g["sha"]?.slice(0, 8)} by "${g["by"]}" (${g["reason"]})`),
  ];
  if (details.length > 0) {
    say();
    for (const line of details) say(line);
  }
  const bad = t.lost > 0 || figures.duplicatePipelines > 0 || figures.untrustedMoves > 0 || !quiet;
  if (bad || args.keep) say(`\nlogs: ${dir}`);
  say(
    `soak: commands lost ${t.lost}, duplicate pipelines ${figures.duplicatePipelines}, untrusted moves ${figures.untrustedMoves}, unknown grants ${figures.unknownGrants}`,
  );
  return bad ? 1 : 0;
}

/** The last lines of a log file, for an error message. */
function lastLines(file: string, n = 3): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-n).join(" | ");
  } catch {
    return "(no log)";
  }
}

/** The parts of GitLab's hook payloads the recorder reads (payloads.ts in the simulator). */
interface HookBody {
  object_kind: string;
  ref: string;
  before: string;
  after: string;
  user_id: number;
  user?: { id: number };
  merge_request?: { iid: number };
  object_attributes: { id: number; iid: number; action: string; ref: string; sha: string; status: string; source: string };
}

/** The recording hook's handler: parse the delivery, keep what the figures need, answer 200 at once. */
function record(req: IncomingMessage, res: ServerResponse, events: StreamEvent[]): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    res.writeHead(200).end();
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as HookBody;
    const seq = events.length;
    switch (body.object_kind) {
      case "push":
        events.push({ kind: "push", seq, ref: body.ref, before: body.before, after: body.after, userId: body.user_id });
        break;
      case "note":
        if (body.merge_request) {
          events.push({ kind: "note", seq, noteId: body.object_attributes.id, iid: body.merge_request.iid });
        }
        break;
      case "pipeline": {
        const a = body.object_attributes;
        events.push({
          kind: "pipeline",
          seq,
          id: a.id,
          ref: a.ref,
          sha: a.sha,
          status: a.status,
          source: a.source,
          userId: body.user?.id ?? 0,
        });
        break;
      }
      case "merge_request":
        events.push({ kind: "mr", seq, iid: body.object_attributes.iid, action: body.object_attributes.action });
        break;
    }
  });
}
