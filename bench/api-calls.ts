/**
 * `npm run bench:api-calls`: GitLab API calls per workflow transition, counted from the simulator's request log
 * (every `/api/v4` request the bot made, by route template), with the real service: receiver, worker, Redis.
 *
 * Each transition starts from a quiet system (webhooks delivered, queue drained) and is counted until it is quiet
 * again, so the calls caused by the bot's own writes (the pipeline and push events they fire) are included.
 * The scenario: a fork MR opened, `/trust`, the pipeline mirrored through running and success, a push making the
 * trust stale, a second `/trust`, a failed pipeline, the merge cleanup; then 20 events on one MR in a burst.
 * Trust-state labels are on (the default): a transition that changes the state shows its label write as
 * `PUT /projects/:id/merge_requests/:iid`.
 *
 * Redis: a private `redis-server` on a free port (needs the binary), unless REDIS_URL is set.
 */
import type { RequestLogEntry } from "../src/simulator/gitlab-simulator.js";
import { startRedisServer } from "../test/support/redis-server.js";

const ownRedis = process.env["REDIS_URL"] ? undefined : await startRedisServer();
if (ownRedis) process.env["REDIS_URL"] = ownRedis.url;
// Imported after REDIS_URL is settled: the test support reads it once.
const { startTrustWorld } = await import("../test/support/trust-world.js");

interface Row {
  transition: string;
  calls: number;
  budget?: number;
  routes: string;
  note?: string;
}

const rows: Row[] = [];
const w = await startTrustWorld();

function summarize(entries: RequestLogEntry[]): string {
  const counts = new Map<string, number>();
  for (const e of entries) {
    const key = `${e.route}${e.status >= 300 ? ` (${e.status})` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([route, n]) => (n > 1 ? `${n}× ${route}` : route)).join("; ");
}

async function measure(
  transition: string,
  act: () => unknown,
  budget?: number,
  note?: (entries: RequestLogEntry[]) => string | undefined,
): Promise<RequestLogEntry[]> {
  await w.settle();
  w.sim.clearRequestLog();
  await act();
  await w.settle();
  const entries = [...w.sim.requestLog];
  rows.push({ transition, calls: entries.length, budget, routes: summarize(entries), note: note?.(entries) });
  return entries;
}

try {
  // Warm the bot-user cache so no transition pays for `GET /user` (read once per hour).
  await w.service.enqueue([{ kind: "reconcile", projectId: w.app.id, mrIid: 999, reason: "warm-up" }]);
  await w.settle();

  let opened: ReturnType<typeof w.openForkMr> | undefined;
  await measure("fork MR opened (first look: note, status, welcome check, branch name)", () => {
    opened = w.openForkMr();
  });
  if (!opened) throw new Error("no MR");
  const mr = opened;

  const trusted = await measure("`/trust`, whole transition", () =>
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust"),
  );
  // The aim is for the part a committer waits on: up to and including the pipeline's creation.
  const upTo = trusted.slice(0, trusted.findIndex((e) => e.route === "POST /projects/:id/pipeline") + 1);
  rows.splice(rows.length - 1, 0, {
    transition: "`/trust` to pipeline created",
    calls: upTo.length,
    budget: 6,
    routes: summarize(upTo),
  });
  const pipeline = w.pipelinesOn(w.trustedBranch(mr))[0];
  if (!pipeline) throw new Error("no trusted pipeline was created");

  await measure(
    "pipeline status change mirrored (created → running)",
    () => w.sim.setPipelineStatus(w.app.id, pipeline.id, "running"),
    3,
  );
  await measure(
    "pipeline status change mirrored (running → success)",
    () => w.sim.setPipelineStatus(w.app.id, pipeline.id, "success"),
    3,
  );

  const { after: newHead } = await (async () => {
    let result = { after: "" };
    await measure(
      "push making trust stale (pipeline finished)",
      () => {
        result = w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id });
      },
      4,
    );
    return result;
  })();

  await measure("`/trust <full sha>` again (branch moved: delete + create)", () =>
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${newHead}`),
  );
  const second = w.pipelinesOn(w.trustedBranch(mr)).at(-1);
  if (!second) throw new Error("no second pipeline");
  await measure(
    "pipeline status change mirrored (created → running)",
    () => w.sim.setPipelineStatus(w.app.id, second.id, "running"),
    3,
  );

  await measure(
    "push making trust stale (pipeline still running: cancel)",
    () => w.sim.push(w.daveFork.id, "feature", { userId: w.dave.id }),
    4,
  );
  await measure("`/trust` again", () => w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust"));
  const third = w.pipelinesOn(w.trustedBranch(mr)).at(-1);
  if (!third) throw new Error("no third pipeline");
  w.sim.setTestReportSummary(w.app.id, third.id, {
    total: 5,
    success: 4,
    failed: 1,
    skipped: 0,
    error: 0,
    suites: [{ name: "unit", total: 5, failed: 1 }],
  });
  await measure(
    "pipeline status change mirrored (created → running, build job passed)",
    () => w.sim.setJobStatus(w.app.id, third.id, "build", "success"),
    3,
  );
  await measure(
    // A failed pipeline also lists its trigger (bridge) jobs: `GET .../jobs` leaves them out (FACTS.md).
    "pipeline status change mirrored (running → failed, with failing jobs, trigger jobs and test report)",
    () => w.sim.setJobStatus(w.app.id, third.id, "test", "failed"),
    // Issue 10's aim for a failed pipeline with its report (jobs, trigger jobs, test report read by REST: 3 reads).
    4,
  );

  await measure("merge cleanup", () => w.sim.mergeMergeRequest(w.app.id, mr.iid, w.maya.id), 3);

  // `/merge`: a fork MR whose trusted pipeline passed is merged by the bot, pinned to the trusted SHA.
  const toMerge = w.openForkMr("to-merge");
  w.sim.comment(w.app.id, toMerge.iid, w.maya.id, `/trust ${toMerge.sha}`);
  await w.settle();
  const toMergePipeline = w.pipelinesOn(w.trustedBranch(toMerge)).at(-1);
  if (!toMergePipeline) throw new Error("no trusted pipeline for the /merge MR");
  w.sim.setPipelineStatus(w.app.id, toMergePipeline.id, "success");
  await measure("`/merge` after the trusted pipeline passed (merge, then cleanup)", () =>
    w.sim.comment(w.app.id, toMerge.iid, w.maya.id, "/merge-trusted"),
  );

  // The gated status: a same-project MR whose head pipeline is a merge request pipeline gets the status in it.
  w.sim.setMergeRequestPipelines(w.app.id, true);
  let gated: ReturnType<typeof w.sim.openMergeRequest> | undefined;
  await measure("same-project MR opened, merge request pipeline as head pipeline (gated status posted into it)", () => {
    w.sim.push(w.app.id, "gated", { userId: w.dev.id });
    gated = w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: "gated", authorId: w.dev.id });
  });
  if (!gated) throw new Error("no gated MR");
  const gatedMr = gated;
  const headPipeline = w.sim
    .pipelines(w.app.id)
    .filter((p) => p.source === "merge_request_event" && p.mergeRequestIid === gatedMr.iid)
    .at(-1);
  if (!headPipeline) throw new Error("no merge request pipeline");
  await measure("gated: merge request pipeline's jobs pass (held by the pending status)", () =>
    w.sim.setPipelineStatus(w.app.id, headPipeline.id, "success"),
  );
  await measure("gated: `/trust <full sha>`, whole transition", () =>
    w.sim.comment(w.app.id, gatedMr.iid, w.maya.id, `/trust ${gatedMr.sha}`),
  );
  const gatedPipeline = w.pipelinesOn(w.trustedBranch(gatedMr)).at(-1);
  if (!gatedPipeline) throw new Error("no trusted pipeline for the gated MR");
  await measure("gated: trusted pipeline passed (status success in the head pipeline)", () =>
    w.sim.setPipelineStatus(w.app.id, gatedPipeline.id, "success"),
  );
  w.sim.setMergeRequestPipelines(w.app.id, false);

  // A burst: 20 events on one MR (20 pushes to its source branch, each an MR Hook `update`) delivered at once.
  const burstMr = w.openForkMr("burst");
  await w.settle();
  w.sim.webhookMode = "hold";
  for (let i = 0; i < 20; i++) w.sim.push(w.daveFork.id, "burst", { userId: w.dave.id });
  await w.sim.idle();
  const held = w.sim.takeHeldDeliveries();
  w.sim.webhookMode = "deliver";
  const reconcilesBefore = await completedReconciles();
  const burst = await measure(`burst of ${held.length} MR events on one MR`, async () => {
    await Promise.all(held.map((d) => w.sim.redeliver(d)));
  });
  const reconciles = (await completedReconciles()) - reconcilesBefore;
  const last = rows.at(-1)!;
  last.note = `${reconciles} reconcile run(s) for !${burstMr.iid}, ${burst.length} calls`;

  print();
} finally {
  await w.close();
  await ownRedis?.kill();
}

async function completedReconciles(): Promise<number> {
  const metric = await w.service.metrics.jobs.get();
  return metric.values
    .filter((v) => v.labels.kind === "reconcile" && v.labels.outcome === "completed")
    .reduce((sum, v) => sum + v.value, 0);
}

function print(): void {
  const lines = [
    "| transition | API calls | aim | calls (route template) |",
    "| --- | ---: | ---: | --- |",
    ...rows.map(
      (r) =>
        `| ${r.transition}${r.note ? ` — ${r.note}` : ""} | ${r.calls} | ${r.budget ?? ""}${r.budget !== undefined && r.calls > r.budget ? " (over)" : ""} | ${r.routes} |`,
    ),
  ];
  console.log(lines.join("\n"));
}
