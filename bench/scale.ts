/**
 * `npm run bench:scale` (`--sizes 100,1000,5000`): what a sweep costs at scale, and how fast `/trust` is under load,
 * with the real service (receiver, worker, Redis) against the GitLab simulator, counted from its request log.
 *
 * Sweep passes. For each N a world of N open MRs in `org/app` (two thirds from forks, one third same-project), 30 %
 * trusted (the trusted branch at the head, a finished trusted pipeline on it, the `/trust` comment, the bot's sticky
 * note and trust-state label), the rest waiting for a committer (sticky note and label), plus 0.1 × N orphaned
 * trusted branches (MR merged or closed while the webhook was lost, or a name that names no MR). The world is built
 * through the simulator's own actions with webhooks dropped, and every note body is rendered by the bot's own
 * `renderNote` (`encodeState` inside) from the record the bot writes for that situation, so a correct bot finds
 * nothing to write on it. Each pass is one sweep job enqueued as the periodic timer does, counted from an empty
 * request log until the system is quiet (every reconcile it caused done, every echo of its writes handled):
 * - cold: the bot's first pass, nothing of this run in Redis;
 * - healing: after 2 % of MRs got a push, 1 % were closed, 1 % of trusted branches were moved or deleted by hand and
 *   0.5 % new MRs were opened, all while webhook delivery was off (`sim.webhookMode = "drop"`);
 * - steady: nothing changed since the previous pass.
 *
 * `/trust` latency: from the note webhook accepted by the receiver to the trusted pipeline created in the simulator,
 * at 0 and 100 ms simulated GitLab latency, idle and under 50 webhooks/s of other events posted to `POST /webhook`.
 *
 * The bot's call budget is off (`gitlab.rate_limit_per_minute: 0`): wall times are the bot's and the simulator's
 * own speed; the time a pass needs within GitLab.com's budget is printed beside them. Redis: a private
 * `redis-server` on a free port (needs the binary), unless REDIS_URL is set. The last line is the figure to track.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { MergeRequest } from "../src/gitlab/port.js";
import type { RequestLogEntry, SimMergeRequest, SimProject, SimUser } from "../src/simulator/gitlab-simulator.js";
import { pipelineVariables } from "../src/trust/decide.js";
import { renderNote } from "../src/trust/render.js";
import type { StickyState } from "../src/trust/state.js";
import { startRedisServer } from "../test/support/redis-server.js";

const ownRedis = process.env["REDIS_URL"] ? undefined : await startRedisServer();
if (ownRedis) process.env["REDIS_URL"] = ownRedis.url;
// Imported after REDIS_URL is settled: the test support reads it once.
const { startTrustWorld } = await import("../test/support/trust-world.js");
type TrustWorld = Awaited<ReturnType<typeof startTrustWorld>>;

const sizes = argList("--sizes", [100, 1000, 5000]);
/** Commands per cell of the latency table. */
const COMMANDS = Number(argValue("--commands") ?? 20);
const LOAD_PER_SECOND = 50;
/** No call budget: the benchmark measures calls and the bot's own speed (see the header). */
/**
 * No call budget (wall times are raw speed). The periodic sweep stays off (passes are started here), but its
 * interval is the default 15 min: the sweep's rota verifies its share of MRs per pass from it.
 */
const BENCH_CONFIG = { gitlab: { rate_limit_per_minute: 0 }, sweep: { interval_seconds: 900 } };
/** GitLab.com's authenticated API limit is ~2000 per minute; the bot's default budget is 1800. */
const BUDGET_PER_MINUTE = 1800;
const SETTLE_TIMEOUT_MS = 15 * 60_000;

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

function argList(name: string, fallback: number[]): number[] {
  const v = argValue(name);
  return v ? v.split(",").map((s) => Number(s.replace(/_/g, ""))) : fallback;
}

/** A small deterministic PRNG (mulberry32), so two runs build the same world and make the same changes. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(items: T[], n: number, random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy.slice(0, n);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

// ---------------------------------------------------------------------------------------------------------------
// World building

interface BuiltMr {
  iid: number;
  /** Where the source branch lives (a fork or org/app). */
  sourceProjectId: number;
  sourceBranch: string;
  author: SimUser;
  trusted: boolean;
}

interface Built {
  open: BuiltMr[];
  orphans: number;
  buildSeconds: number;
}

/** The MR as the bot's port has it: only what `renderNote` reads. */
function portMr(mr: SimMergeRequest, author: SimUser): MergeRequest {
  return {
    projectId: mr.projectId,
    iid: mr.iid,
    sourceProjectId: mr.sourceProjectId,
    sourceBranch: mr.sourceBranch,
    sha: mr.sha,
    webUrl: mr.webUrl,
    author: { id: author.id, username: author.username },
    labels: [...mr.labels],
    state: mr.state,
  } as unknown as MergeRequest;
}

/**
 * The record the bot keeps for an MR it welcomed (first look) and, when `trust` is given, that a committer trusted
 * with `/trust <sha>` and whose trusted pipeline passed: as `bench/scale.ts` checked against the real bot's notes.
 */
function stickyRecord(
  w: TrustWorld,
  mr: SimMergeRequest,
  headPipelineId: number | undefined,
  trust?: { noteId: number; pipelineId: number; pipelineUrl: string; at: string },
): StickyState {
  const branch = w.trustedBranch(mr);
  const into = headPipelineId === undefined ? {} : { pipelineId: headPipelineId };
  if (!trust) {
    return {
      v: 1,
      branch,
      status: {
        sha: mr.sha,
        state: "pending",
        description: `Waiting for a committer to review and comment /trust ${mr.sha}`,
        ...into,
      },
      firstTime: true,
    };
  }
  return {
    v: 1,
    branch,
    branchSha: mr.sha,
    owned: true,
    grant: { sha: mr.sha, by: w.maya.username, at: trust.at, noteUrl: `${mr.webUrl}#note_${trust.noteId}` },
    pipeline: { id: trust.pipelineId, sha: mr.sha, status: "success", url: trust.pipelineUrl },
    status: {
      sha: mr.sha,
      state: "success",
      description: `Trusted pipeline #${trust.pipelineId} passed for ${mr.sha.slice(0, 8)}`,
      ...into,
    },
    firstTime: true,
    handled: [trust.noteId],
  };
}

interface MrSource {
  project: SimProject;
  author: SimUser;
}

/** An MR opened as the bot would have left it, waiting for its sticky note. */
interface Opened {
  mr: SimMergeRequest;
  src: MrSource;
  trust?: { noteId: number; pipelineId: number; pipelineUrl: string; at: string };
}

/**
 * One MR, built with webhooks off: opened with its trust-state label and, when trusted, the `/trust` comment, the
 * trusted branch at the head and a trusted pipeline that passed. The sticky note comes later (`writeStickyNotes`).
 */
function openMr(w: TrustWorld, src: MrSource, branch: string, trusted: boolean): Opened {
  const { sim } = w;
  const labels = w.config.trust.state_labels;
  sim.push(src.project.id, branch, { userId: src.author.id });
  const mr = sim.openMergeRequest({
    sourceProjectId: src.project.id,
    sourceBranch: branch,
    authorId: src.author.id,
    targetProjectId: w.app.id,
    labels: [trusted ? labels.trusted : labels.waiting],
  });
  if (!trusted) return { mr, src };
  const tb = w.trustedBranch(mr);
  const command = sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
  sim.createBranch(w.app.id, tb, mr.sha, { userId: w.bot.id });
  const variables = pipelineVariables(portMr(mr, src.author), mr.sha, w.maya.username);
  const pipeline = sim.runPipeline(w.app.id, tb, { userId: w.bot.id, source: "api", variables });
  sim.setPipelineStatus(w.app.id, pipeline.id, "success");
  return {
    mr,
    src,
    trust: { noteId: command.id, pipelineId: pipeline.id, pipelineUrl: pipeline.webUrl, at: command.createdAt },
  };
}

/**
 * The bot's sticky note on each MR, rendered by the bot's `renderNote`. A same-project MR's status went into its head
 * pipeline (the push pipeline of its head), so the record names that pipeline.
 */
function writeStickyNotes(w: TrustWorld, opened: Opened[]): void {
  const headPipelines = new Map<string, number>();
  for (const p of w.sim.pipelines(w.app.id)) if (p.source === "push") headPipelines.set(`${p.ref}@${p.sha}`, p.id);
  for (const { mr, src, trust } of opened) {
    const head = src.project.id === w.app.id ? headPipelines.get(`${mr.sourceBranch}@${mr.sha}`) : undefined;
    const record = stickyRecord(w, mr, head, trust);
    w.sim.comment(w.app.id, mr.iid, w.bot.id, renderNote(record, { mr: portMr(mr, src.author) }, w.config.trust));
  }
}

function buildWorld(w: TrustWorld, n: number): Built {
  const t0 = performance.now();
  const random = rng(n);
  w.sim.webhookMode = "drop";
  const sources: MrSource[] = [
    { project: w.daveFork, author: w.dave },
    { project: w.erinFork, author: w.erin },
    { project: w.app, author: w.dev },
  ];
  const opened: Opened[] = [];
  for (let i = 0; i < n; i++) {
    opened.push(openMr(w, sources[i % sources.length] as MrSource, `topic-${i}`, random() < 0.3));
  }
  // Orphans: trusted branches left behind because the close or merge webhook was lost (70 %), and names that
  // name no MR (30 %: an iid nobody has, or an existing MR with another source branch).
  const orphans = Math.round(n * 0.1);
  const withMr = Math.round(orphans * 0.7);
  const gone: Opened[] = [];
  for (let i = 0; i < withMr; i++) gone.push(openMr(w, sources[i % sources.length] as MrSource, `gone-${i}`, true));
  writeStickyNotes(w, [...opened, ...gone]);
  for (const [i, { mr }] of gone.entries()) {
    if (i % 2 === 0) w.sim.mergeMergeRequest(w.app.id, mr.iid, w.maya.id);
    else w.sim.closeMergeRequest(w.app.id, mr.iid, w.maya.id);
  }
  const main = w.sim.branch(w.app.id, "main")?.sha ?? "main";
  for (let i = 0; i < orphans - withMr; i++) {
    const iid = i % 2 === 0 ? 9_000_000 + i : (opened[i % opened.length] as Opened).mr.iid;
    w.sim.createBranch(w.app.id, `trusted-nobody-${i}-mr${iid}`, main, { userId: w.maya.id });
  }
  w.sim.webhookMode = "deliver";
  const open = opened.map(({ mr, src, trust }) => ({
    iid: mr.iid,
    sourceProjectId: src.project.id,
    sourceBranch: mr.sourceBranch,
    author: src.author,
    trusted: trust !== undefined,
  }));
  return { open, orphans, buildSeconds: (performance.now() - t0) / 1000 };
}

/** Changes made while webhooks are lost, for the healing pass; returns what was done. */
function loseEvents(w: TrustWorld, built: Built, n: number): string {
  const random = rng(n + 1);
  w.sim.webhookMode = "drop";
  const count = (share: number) => Math.max(1, Math.round(n * share));
  const shuffled = pick(built.open, built.open.length, random);
  const pushed = shuffled.splice(0, count(0.02));
  for (const mr of pushed) w.sim.push(mr.sourceProjectId, mr.sourceBranch, { userId: mr.author.id });
  const closed = shuffled.splice(0, count(0.01));
  for (const mr of closed) w.sim.closeMergeRequest(w.app.id, mr.iid, w.maya.id);
  const trusted = shuffled.filter((mr) => mr.trusted);
  const moved = trusted.splice(0, count(0.005));
  for (const mr of moved) w.sim.push(w.app.id, w.trustedBranch(mr), { userId: w.maya.id });
  const deleted = trusted.splice(0, count(0.005));
  for (const mr of deleted) w.sim.deleteBranch(w.app.id, w.trustedBranch(mr), { userId: w.maya.id });
  const opened = count(0.005);
  for (let i = 0; i < opened; i++) {
    w.sim.push(w.daveFork.id, `late-${i}`, { userId: w.dave.id });
    w.sim.openMergeRequest({ sourceProjectId: w.daveFork.id, sourceBranch: `late-${i}`, authorId: w.dave.id });
  }
  const closedSet = new Set(closed.map((mr) => mr.iid));
  built.open = built.open.filter((mr) => !closedSet.has(mr.iid));
  w.sim.webhookMode = "deliver";
  return (
    `${pushed.length} pushed (${pushed.filter((m) => m.trusted).length} trusted), ` +
    `${closed.length} closed (${closed.filter((m) => m.trusted).length} trusted), ` +
    `${moved.length} trusted branches moved and ${deleted.length} deleted by hand, ${opened} MRs opened`
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Sweep passes

interface PassResult {
  kind: string;
  n: number;
  calls: number;
  writes: number;
  orphansCleaned: number;
  wallSeconds: number;
  routes: Array<[string, number]>;
}

function routeKey(e: RequestLogEntry): string {
  return `${e.route}${e.status >= 300 ? ` (${e.status})` : ""}`;
}

async function sweepPass(w: TrustWorld, kind: string, n: number): Promise<PassResult> {
  await w.settle(SETTLE_TIMEOUT_MS);
  w.sim.clearRequestLog();
  const t0 = performance.now();
  await w.service.enqueue([{ kind: "sweep", reason: `bench:${kind}` }]);
  await w.settle(SETTLE_TIMEOUT_MS);
  const wallSeconds = (performance.now() - t0) / 1000;
  const entries = [...w.sim.requestLog];
  const counts = new Map<string, number>();
  for (const e of entries) counts.set(routeKey(e), (counts.get(routeKey(e)) ?? 0) + 1);
  return {
    kind,
    n,
    calls: entries.length,
    // A GraphQL query is a POST that only reads.
    writes: entries.filter((e) => e.method !== "GET" && e.route !== "POST /api/graphql").length,
    orphansCleaned: entries.filter(
      (e) => e.route === "DELETE /projects/:id/repository/branches/:branch" && e.status < 300,
    ).length,
    wallSeconds,
    routes: [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])),
  };
}

function printPass(r: PassResult): void {
  const budgetMinutes = r.calls / BUDGET_PER_MINUTE;
  console.log(
    `  ${r.kind.padEnd(8)} ${String(r.calls).padStart(7)} calls  ${(r.calls / r.n).toFixed(3)} per MR  ` +
      `${r.writes} writes  ${r.orphansCleaned} orphans cleaned  ${r.wallSeconds.toFixed(1)} s wall ` +
      `(≥ ${budgetMinutes.toFixed(1)} min at ${BUDGET_PER_MINUTE} calls/min)`,
  );
  for (const [route, count] of r.routes) console.log(`      ${String(count).padStart(7)}  ${route}`);
}

async function sweepScale(n: number): Promise<PassResult[]> {
  const w = await startTrustWorld({ config: BENCH_CONFIG });
  try {
    const built = buildWorld(w, n);
    const trusted = built.open.filter((m) => m.trusted).length;
    console.log(
      `\nN = ${n}: ${n} open MRs (${trusted} trusted, ${n - trusted} waiting; forks and same-project), ` +
        `${built.orphans} orphaned trusted branches; built in ${built.buildSeconds.toFixed(1)} s`,
    );
    const keys = await w.redis.keys(`${w.prefix}:trust:*`);
    if (keys.length > 0) throw new Error(`cold pass: ${keys.length} trust keys in Redis already`);
    const results = [await sweepPass(w, "cold", n)];
    printPass(results[0] as PassResult);
    const lost = loseEvents(w, built, n);
    console.log(`  (webhooks lost while: ${lost})`);
    results.push(await sweepPass(w, "healing", n));
    printPass(results[1] as PassResult);
    results.push(await sweepPass(w, "steady", n));
    printPass(results[2] as PassResult);
    return results;
  } finally {
    await w.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// `/trust` latency

interface Template {
  event: string;
  headers: Record<string, string>;
  body: string;
}

/** Real deliveries of other events (MR updates, pipeline events, non-command notes), captured for replay. */
function captureTemplates(w: TrustWorld, background: BuiltMr[]): Template[] {
  w.sim.webhookMode = "hold";
  for (const mr of background.slice(0, 10)) {
    w.sim.comment(w.app.id, mr.iid, w.dave.id, `Looks good to me, thanks (${mr.iid}).`);
  }
  for (const mr of background.slice(10, 20)) w.sim.push(mr.sourceProjectId, mr.sourceBranch, { userId: mr.author.id });
  for (const p of w.sim
    .pipelines(w.app.id)
    .filter((x) => x.source === "push")
    .slice(0, 10)) {
    w.sim.setPipelineStatus(w.app.id, p.id, "running");
  }
  const held = w.sim.takeHeldDeliveries();
  w.sim.webhookMode = "deliver";
  return held
    .filter((d) => ["Merge Request Hook", "Note Hook", "Pipeline Hook"].includes(d.event))
    .map((d) => ({ event: d.event, headers: { ...d.headers }, body: d.body }));
}

/** Sends `perSecond` webhooks of the templates, round robin, to the receiver until stopped. */
function startLoad(url: string, templates: Template[], perSecond: number): { stop(): Promise<number> } {
  let sent = 0;
  let stopped = false;
  const inFlight = new Set<Promise<unknown>>();
  let noteId = 50_000_000;
  const start = performance.now();
  const tick = async () => {
    while (!stopped) {
      const due = Math.floor(((performance.now() - start) / 1000) * perSecond);
      while (sent < due && !stopped) {
        const t = templates[sent % templates.length] as Template;
        sent++;
        let body = t.body;
        if (t.event === "Note Hook") {
          const payload = JSON.parse(body) as { object_attributes: { id: number } };
          payload.object_attributes.id = ++noteId;
          body = JSON.stringify(payload);
        }
        const key = randomUUID();
        const headers = {
          ...t.headers,
          "Idempotency-Key": key,
          "X-Gitlab-Webhook-UUID": randomUUID(),
          "X-Gitlab-Event-UUID": randomUUID(),
          ...(t.headers["webhook-id"]
            ? { "webhook-id": key, "webhook-timestamp": String(Math.floor(Date.now() / 1000)) }
            : {}),
        };
        const p = fetch(url, { method: "POST", headers, body })
          .then((r) => r.arrayBuffer())
          .catch(() => undefined);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      await sleep(5);
    }
  };
  const loop = tick();
  return {
    async stop() {
      stopped = true;
      await loop;
      await Promise.all(inFlight);
      return sent / ((performance.now() - start) / 1000);
    },
  };
}

/** `count` sequential runs of 3 sequential `GET /projects/:id/merge_requests/:iid` round trips; ms each. */
async function floorSamples(w: TrustWorld, iid: number, count: number): Promise<number[]> {
  const url = `${w.sim.url}/api/v4/projects/${w.app.id}/merge_requests/${iid}`;
  const headers = { "PRIVATE-TOKEN": w.bot.token };
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    for (let k = 0; k < 3; k++) await (await fetch(url, { headers })).arrayBuffer();
    out.push(performance.now() - t0);
  }
  return out;
}

interface CommandSample {
  ms: number;
  /** The API calls between the note accepted and the pipeline created: offset of each answer, ms. */
  path: Array<{ route: string; at: number }>;
}

/** Comments the command on a waiting MR, and measures note accepted → trusted pipeline created. */
async function timeCommand(w: TrustWorld, mr: SimMergeRequest, bare: boolean): Promise<CommandSample> {
  // The simulator delivers one webhook at a time: the previous command's echoes (its sticky note's own Note Hook
  // among them) go out first, or the first Note Hook logged below would be one of them, and the clock would start
  // before this command's note was even sent.
  await w.sim.idle();
  const deliveriesBefore = w.sim.deliveryLog.length;
  const requestsBefore = w.sim.requestLog.length;
  const note = w.sim.comment(w.app.id, mr.iid, w.maya.id, bare ? "/trust" : `/trust ${mr.sha}`);
  const tb = w.trustedBranch(mr);
  let accepted: number | undefined;
  let created: number | undefined;
  let scanned = requestsBefore;
  const deadline = Date.now() + 60_000;
  while (created === undefined) {
    if (Date.now() > deadline) throw new Error(`no trusted pipeline for !${mr.iid} within 60 s`);
    await sleep(2);
    accepted ??= w.sim.deliveryLog.slice(deliveriesBefore).find((d) => d.event === "Note Hook")?.at;
    // Pipelines are listed only once GitLab answered a pipeline creation: listing clones every pipeline of the
    // simulator, and doing it every 2 ms took most of this process's time away from the bot it measures.
    let pipelinePosted = false;
    for (const log = w.sim.requestLog; scanned < log.length; scanned++) {
      if (log[scanned]?.route === "POST /projects/:id/pipeline") pipelinePosted = true;
    }
    if (!pipelinePosted) continue;
    const p = w.pipelinesOn(tb).at(-1);
    if (p) created = Date.parse(p.createdAt);
  }
  accepted ??= w.sim.deliveryLog.slice(deliveriesBefore).find((d) => d.event === "Note Hook")?.at;
  if (accepted === undefined) throw new Error("the note webhook was not delivered");
  const start = accepted;
  const path = w.sim.requestLog
    .slice(requestsBefore)
    .filter((e) => e.at >= start && e.at <= (created as number) + 1)
    .map((e) => ({ route: routeKey(e), at: e.at - start }));
  // The rest of the transition (status, note, label, award) before the next command.
  while (!w.stickyNotes(mr.iid)[0]?.body.includes(`"handled":[${note.id}]`)) {
    if (Date.now() > deadline) throw new Error(`!${mr.iid}: the command was not recorded within 60 s`);
    await sleep(5);
  }
  return { ms: created - accepted, path };
}

interface LatencyRow {
  latencyMs: number;
  load: "idle" | "load";
  command: string;
  p50: number;
  p99: number;
  floor: number;
  loadRate?: number;
  samples: CommandSample[];
}

async function trustLatency(): Promise<LatencyRow[]> {
  const w = await startTrustWorld({ config: BENCH_CONFIG });
  const rows: LatencyRow[] = [];
  try {
    // Background: 60 MRs the load is about; then one waiting MR per command, all first-looked by the bot.
    const built = buildWorld(w, 60);
    const cells = [0, 100].flatMap((latencyMs) =>
      (["idle", "load"] as const).flatMap((load) => [false, true].map((bare) => ({ latencyMs, load, bare }))),
    );
    const targets: SimMergeRequest[] = [];
    for (let i = 0; i < cells.length * COMMANDS; i++) {
      targets.push(i % 2 === 0 ? w.openForkMr(`cmd-${i}`) : w.openForkMr(`cmd-${i}`, w.erin, w.erinFork));
    }
    await w.settle(SETTLE_TIMEOUT_MS);
    const templates = captureTemplates(w, built.open);
    await w.settle(SETTLE_TIMEOUT_MS);
    const receiver = `${w.service.receiverUrl}/webhook`;
    let next = 0;
    for (const cell of cells) {
      w.sim.setFaults({ latencyMs: cell.latencyMs });
      const floors = await floorSamples(w, built.open[0]?.iid ?? 1, 20);
      const load = cell.load === "load" ? startLoad(receiver, templates, LOAD_PER_SECOND) : undefined;
      if (load) await sleep(2000); // let the queue reach its working level
      const samples: CommandSample[] = [];
      try {
        for (let i = 0; i < COMMANDS; i++)
          samples.push(await timeCommand(w, targets[next++] as SimMergeRequest, cell.bare));
      } finally {
        const rate = await load?.stop();
        rows.push({
          latencyMs: cell.latencyMs,
          load: cell.load,
          command: cell.bare ? "/trust" : "/trust <sha>",
          p50: percentile(
            samples.map((s) => s.ms),
            50,
          ),
          p99: percentile(
            samples.map((s) => s.ms),
            99,
          ),
          floor: percentile(floors, 50),
          ...(rate !== undefined ? { loadRate: rate } : {}),
          samples,
        });
      }
      w.sim.setFaults({ latencyMs: 0 });
      await w.settle(SETTLE_TIMEOUT_MS);
    }
  } finally {
    await w.close();
  }
  return rows;
}

function printLatency(rows: LatencyRow[]): void {
  console.log(
    `\n/trust latency: note webhook accepted → trusted pipeline created, ${COMMANDS} commands per row; ` +
      "floor = 3 sequential GETs to the simulator (p50 of 20), nominal 3 × latency",
  );
  console.log(
    "| GitLab latency | background | command | p50 ms | p99 ms | floor ms (nominal) | p50/floor | p99(load)/p99(idle) |",
  );
  console.log("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    const idle = rows.find((x) => x.latencyMs === r.latencyMs && x.command === r.command && x.load === "idle");
    const loadRatio = r.load === "load" && idle ? (r.p99 / idle.p99).toFixed(2) : "";
    const background = r.load === "idle" ? "idle" : `${r.loadRate?.toFixed(0) ?? "?"} webhooks/s`;
    console.log(
      `| ${r.latencyMs} ms | ${background} | ${r.command} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} | ` +
        `${r.floor.toFixed(0)} (${3 * r.latencyMs}) | ${(r.p50 / r.floor).toFixed(2)} | ${loadRatio} |`,
    );
  }
  for (const r of rows.filter((x) => x.latencyMs === 100 && x.load === "idle")) {
    const median = [...r.samples].sort((a, b) => a.ms - b.ms)[Math.floor(r.samples.length / 2)];
    if (!median) continue;
    console.log(
      `\nAPI calls answered on the way, median \`${r.command}\` at 100 ms idle (${median.ms.toFixed(0)} ms):`,
    );
    for (const c of median.path) console.log(`  +${String(c.at).padStart(4)} ms  ${c.route}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Reconciles per second of one worker process at 100 ms GitLab latency: `count` MRs whose caches are warm get one
 * reconcile each (the common case: an event that changes nothing), timed from enqueueing until the queue is empty.
 */
async function reconcileThroughput(concurrency: number, count: number): Promise<number> {
  const w = await startTrustWorld({ config: { ...BENCH_CONFIG, worker: { concurrency } } });
  try {
    const built = buildWorld(w, count);
    const keys = built.open.map((mr) => ({ projectId: w.app.id, mrIid: mr.iid }));
    const enqueueAll = (reason: string) =>
      w.service.enqueue(keys.map((k) => ({ kind: "reconcile" as const, ...k, reason })));
    await enqueueAll("warm-up");
    await w.settle(SETTLE_TIMEOUT_MS);
    w.sim.setFaults({ latencyMs: 100 });
    const t0 = performance.now();
    await enqueueAll("bench");
    for (;;) {
      const counts = await w.service.queue.getJobCounts("waiting", "prioritized", "active", "delayed");
      if (Object.values(counts).every((n) => n === 0)) break;
      await sleep(10);
    }
    const seconds = (performance.now() - t0) / 1000;
    w.sim.setFaults({ latencyMs: 0 });
    return count / seconds;
  } finally {
    await w.close();
  }
}

try {
  const started = performance.now();
  const all: PassResult[] = [];
  for (const n of sizes) all.push(...(await sweepScale(n)));
  printLatency(await trustLatency());
  console.log("\nreconciles/s of one worker process at 100 ms GitLab latency (warm caches, nothing to change):");
  for (const concurrency of [4, 16]) {
    const rate = await reconcileThroughput(concurrency, concurrency * 40);
    console.log(
      `  concurrency ${concurrency}: ${rate.toFixed(1)} reconciles/s (ceiling ${concurrency * 10}/s at one call each)`,
    );
  }
  console.log(
    `\nsummary (calls per MR): ${sizes.map((n) => `N=${n}: ${["cold", "healing", "steady"].map((k) => `${k} ${((all.find((r) => r.n === n && r.kind === k)?.calls ?? 0) / n).toFixed(3)}`).join(", ")}`).join("; ")}`,
  );
  console.log(`total run time ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const last = sizes.at(-1) ?? 0;
  const steady = all.find((r) => r.n === last && r.kind === "steady");
  console.log(`steady sweep calls per MR at N=${last}: ${steady ? (steady.calls / steady.n).toFixed(3) : "n/a"}`);
} finally {
  await ownRedis?.kill();
}
