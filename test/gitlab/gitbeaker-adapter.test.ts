/**
 * The adapter against the GitLab simulator over HTTP: domain answers, the ensure* writes converging, errors
 * classified, and every request counted under the same route template the simulator logs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { configSchema } from "../../src/config/config.js";
import { PermanentError, RateLimitedError } from "../../src/errors.js";
import { GitbeakerAdapter } from "../../src/gitlab/gitbeaker-adapter.js";
import { routeTemplate } from "../../src/gitlab/requester.js";
import { createMetrics } from "../../src/metrics.js";
import { AccessLevel, GitLabSimulator, type SimProject, type SimUser } from "../../src/simulator/gitlab-simulator.js";

describe("GitbeakerAdapter against the simulator", () => {
  let sim: GitLabSimulator;
  let bot: SimUser;
  let maya: SimUser;
  let dave: SimUser;
  let app: SimProject;
  let fork: SimProject;
  let adapter: GitbeakerAdapter;
  const metrics = createMetrics({ defaultMetrics: false });

  before(async () => {
    sim = await GitLabSimulator.start();
    bot = sim.addUser({ username: "trusted-bot", bot: true });
    maya = sim.addUser({ username: "maya" });
    dave = sim.addUser({ username: "dave" });
    const org = sim.addGroup({ path: "org" });
    const core = sim.addGroup({ path: "core", parentId: org.id });
    sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
    sim.addMember({ groupId: org.id }, maya.id, AccessLevel.Maintainer);
    sim.addMember({ groupId: core.id }, dave.id, AccessLevel.Reporter);
    app = sim.addProject({ path: "org/app", pipelineOnPushFilter: (ref) => !ref.startsWith("trusted-") });
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    fork = sim.fork(app.id, { ownerId: dave.id, path: "dave/app" });
    sim.webhookMode = "drop";
    const config = configSchema.parse({ gitlab: { url: sim.url, token: bot.token } });
    adapter = new GitbeakerAdapter({ config, metrics });
  });

  after(async () => {
    await sim.stop();
  });

  it("reads identity, projects and effective access levels (inherited counts)", async () => {
    assert.deepEqual(await adapter.currentUser(), { id: bot.id, username: "trusted-bot" });
    assert.equal((await adapter.getProject("org/app"))?.id, app.id);
    assert.equal(await adapter.getProject("nope/nope"), undefined);
    assert.equal(await adapter.effectiveAccessLevel(app.id, maya.id), 40);
    assert.equal(await adapter.effectiveAccessLevel(app.id, dave.id), 0);
    assert.equal(await adapter.groupAccessLevel("org/core", dave.id), 20);
    assert.equal(await adapter.groupAccessLevel("org/core", maya.id), 40, "inherited from org");
    assert.equal(await adapter.groupAccessLevel("org/core", bot.id + 1000), 0);
    assert.equal((await adapter.getUser(dave.id))?.username, "dave");
    assert.equal((await adapter.findUserByUsername("DAVE"))?.id, dave.id, "exact, case-insensitive");
    assert.equal(await adapter.findUserByUsername("dav"), undefined);
  });

  it("reads a fork MR with its head in the target project, and lists open MRs by source branch", async () => {
    const { after: head } = sim.push(fork.id, "feature", { userId: dave.id });
    const opened = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: dave.id });
    const mr = await adapter.getMergeRequest(app.id, opened.iid);
    assert.equal(mr?.sha, head);
    assert.equal(mr?.state, "opened");
    assert.equal(mr?.sourceProjectId, fork.id);
    assert.equal(mr?.author.username, "dave");
    assert.match(mr?.webUrl ?? "", /\/org\/app\/-\/merge_requests\/\d+$/);
    assert.equal(await adapter.getMergeRequest(app.id, 9999), undefined);
    const open = await adapter.listOpenMergeRequests(app.id, { sourceBranch: "feature" });
    assert.deepEqual(
      open.map((m) => m.iid),
      [opened.iid],
    );
    assert.equal(await adapter.hasMergedMergeRequest(app.id, dave.id), false);
  });

  it("ensureTrustedBranch creates, leaves alone, moves by read + delete + create, never deletes a branch at its target", async () => {
    const { after: first } = sim.push(app.id, "work", { userId: bot.id });
    const { after: second } = sim.push(app.id, "work", { userId: bot.id });
    assert.deepEqual(await adapter.ensureTrustedBranch(app.id, "trusted-work", first), { outcome: "created" });
    assert.deepEqual(await adapter.ensureTrustedBranch(app.id, "trusted-work", first), { outcome: "unchanged" });
    assert.deepEqual(await adapter.ensureTrustedBranch(app.id, "trusted-work", second), {
      outcome: "moved",
      previousSha: first,
    });
    const branch = await adapter.getBranch(app.id, "trusted-work");
    assert.equal(branch?.sha, second);
    adapter.resetApiCalls();
    assert.deepEqual(await adapter.ensureTrustedBranch(app.id, "trusted-work", first, second), {
      outcome: "moved",
      previousSha: second,
    });
    assert.equal(adapter.totalApiCalls(), 3, "a move from where the caller saw it: read, delete, create");
    assert.deepEqual(await adapter.ensureTrustedBranch(app.id, "trusted-work", second, "f".repeat(40)), {
      outcome: "moved",
      previousSha: first,
    });
    // A retried grant whose first attempt already moved the branch: the caller's record is stale.
    adapter.resetApiCalls();
    assert.deepEqual(await adapter.ensureTrustedBranch(app.id, "trusted-work", second, first), {
      outcome: "unchanged",
    });
    assert.deepEqual(
      adapter.apiCalls().map((c) => c.route),
      ["GET /projects/:id/repository/branches/:branch"],
      "read, and left alone: no delete",
    );
    assert.equal(branch?.protected, true);
    assert.deepEqual(
      (await adapter.listBranches(app.id, "trusted-")).map((b) => b.name),
      ["trusted-work"],
    );
    assert.equal(await adapter.deleteBranch(app.id, "trusted-work"), true);
    assert.equal(await adapter.deleteBranch(app.id, "trusted-work"), false);
    assert.equal(await adapter.getBranch(app.id, "trusted-work"), undefined);
  });

  it("creates a pipeline with variables, reads its jobs with the pipeline status, retries and cancels it", async () => {
    const { after: sha } = sim.push(app.id, "pipe", { userId: bot.id });
    await adapter.ensureTrustedBranch(app.id, "trusted-pipe", sha);
    const result = await adapter.createPipeline(app.id, "trusted-pipe", [{ key: "TRUSTED_MR_IID", value: "7" }]);
    assert.ok("created" in result);
    const pipeline = result.created;
    assert.equal(pipeline.source, "api");
    assert.deepEqual(
      sim.pipeline(app.id, pipeline.id).variables.map((v) => [v.key, v.value]),
      [["TRUSTED_MR_IID", "7"]],
    );
    assert.deepEqual(
      (await adapter.listPipelines(app.id, { ref: "trusted-pipe", sha })).map((p) => p.id),
      [pipeline.id],
    );
    sim.setJobStatus(app.id, pipeline.id, "test", "failed");
    sim.setTestReportSummary(app.id, pipeline.id, {
      total: 3,
      success: 2,
      failed: 1,
      skipped: 0,
      error: 0,
      suites: [{ name: "unit", total: 3, failed: 1 }],
    });
    const jobs = await adapter.getPipelineJobs(app.id, pipeline.id);
    assert.ok(jobs.every((j) => j.pipeline?.id === pipeline.id));
    assert.equal(jobs.find((j) => j.name === "test")?.status, "failed");
    const tests = await adapter.getTestReportSummary(app.id, pipeline.id);
    assert.deepEqual(tests, {
      total: 3,
      success: 2,
      failed: 1,
      skipped: 0,
      error: 0,
      suites: [{ name: "unit", total: 3, failed: 1, error: 0 }],
    });
    const retried = await adapter.retryPipeline(app.id, pipeline.id);
    assert.equal(retried.id, pipeline.id);
    const canceled = await adapter.cancelPipeline(app.id, pipeline.id);
    assert.equal(canceled?.status, "canceled");
    assert.equal(await adapter.cancelPipeline(app.id, 999_999), undefined);
  });

  it("createPipeline returns GitLab's refusal as an outcome", async () => {
    const result = await adapter.createPipeline(app.id, "no-such-ref", []);
    assert.ok("refused" in result, JSON.stringify(result));
    assert.match(result.refused, /Reference not found/);
  });

  it("ensureStatus converges: posting the state it already has is not an error", async () => {
    const { after: sha } = sim.push(app.id, "status", { userId: bot.id });
    const input = { name: "trusted-pipeline", state: "pending" as const, ref: "status", description: "waiting" };
    assert.deepEqual(await adapter.ensureStatus(app.id, sha, input), { changed: true });
    assert.deepEqual(await adapter.ensureStatus(app.id, sha, input), { changed: false });
    assert.deepEqual(await adapter.ensureStatus(app.id, sha, { ...input, state: "running" }), { changed: true });
    assert.deepEqual(
      sim.statuses(app.id, sha).map((s) => [s.name, s.status]),
      [["trusted-pipeline", "running"]],
    );
    // GitLab cannot move a running status back to pending: the adapter finishes it first.
    assert.deepEqual(await adapter.ensureStatus(app.id, sha, input), { changed: true });
    assert.deepEqual(
      sim.statuses(app.id, sha).map((s) => [s.name, s.status]),
      [
        ["trusted-pipeline", "canceled"],
        ["trusted-pipeline", "pending"],
      ],
      "the running status was finished, then a new one started",
    );
  });

  it("the sticky note is found by marker and author, updated only when it changed", async () => {
    sim.push(app.id, "notes", { userId: maya.id });
    const mr = sim.openMergeRequest({ sourceProjectId: app.id, sourceBranch: "notes", authorId: maya.id });
    const marker = "<!-- test-marker";
    sim.comment(app.id, mr.iid, maya.id, `quoting ${marker} -->`);
    assert.equal(await adapter.findStickyNote(app.id, mr.iid, marker, bot.id), undefined);
    const created = await adapter.ensureStickyNote(app.id, mr.iid, marker, `${marker} --> one`, undefined);
    adapter.resetApiCalls();
    const same = await adapter.ensureStickyNote(app.id, mr.iid, marker, `${marker} --> one`, {
      id: created.id,
      body: `${marker} --> one`,
    });
    assert.equal(same.id, created.id);
    assert.equal(adapter.totalApiCalls(), 0, "an unchanged note costs no call");
    await adapter.ensureStickyNote(app.id, mr.iid, marker, `${marker} --> two`, { id: created.id, body: "x" });
    const found = await adapter.findStickyNote(app.id, mr.iid, marker, bot.id);
    assert.equal(found?.id, created.id);
    assert.equal(found?.body, `${marker} --> two`);
    assert.equal(sim.notes(app.id, mr.iid).filter((n) => n.body.includes(marker)).length, 2);
    await adapter.awardEmoji(app.id, mr.iid, created.id, "thumbsup");
    await adapter.awardEmoji(app.id, mr.iid, created.id, "thumbsup");
    assert.equal(sim.awardEmoji(app.id, mr.iid, created.id).length, 1);
    await adapter.addLabels(app.id, mr.iid, ["no-detached-pipeline"]);
    assert.deepEqual((await adapter.getMergeRequest(app.id, mr.iid))?.labels, ["no-detached-pipeline"]);
  });

  it("project setup calls: protected branch rule, label, hooks", async () => {
    const rule = await adapter.getProtectedBranch(app.id, "trusted-*");
    assert.deepEqual(rule?.pushAccessLevels, [40]);
    const label = await adapter.createLabel(app.id, { name: "trusted-x", color: "#1f75cb", description: "d" });
    assert.equal((await adapter.getLabel(app.id, "trusted-x"))?.id, label.id);
    const hook = await adapter.saveHook(app.id, {
      url: "http://bot.test/webhook",
      token: "s",
      pushEvents: true,
      mergeRequestsEvents: true,
      noteEvents: true,
      pipelineEvents: true,
      enableSslVerification: true,
    });
    const edited = await adapter.saveHook(app.id, { ...hook, token: "t", pipelineEvents: false }, hook.id);
    assert.equal(edited.pipelineEvents, false);
    assert.deepEqual(
      (await adapter.listHooks(app.id)).map((h) => h.url),
      ["http://bot.test/webhook"],
    );
  });

  it("a 429 becomes RateLimitedError with GitLab's Retry-After; a 403 a PermanentError with a hint", async () => {
    sim.failNext(1, 429, { retryAfterSeconds: 7 });
    await assert.rejects(
      adapter.currentUser(),
      (e: unknown) => e instanceof RateLimitedError && e.retryAfterMs === 7000,
    );
    sim.failNext(1, 403);
    await assert.rejects(
      adapter.currentUser(),
      (e: unknown) => e instanceof PermanentError && /Maintainer/.test(e.hint ?? ""),
    );
  });

  it("GETs are retried on a 5xx; writes are not", async () => {
    adapter.resetApiCalls();
    sim.failNext(2, 502);
    assert.equal((await adapter.currentUser()).id, bot.id);
    assert.deepEqual(
      adapter.apiCalls().map((c) => [c.route, c.status, c.count]),
      [
        ["GET /user", 502, 2],
        ["GET /user", 200, 1],
      ],
    );
    sim.failNext(1, 500);
    await assert.rejects(adapter.postNote(app.id, 1, "x"));
  });

  it("counts every request under the simulator's route templates, in the metric too", async () => {
    sim.clearRequestLog();
    adapter.resetApiCalls();
    await adapter.getMergeRequest(app.id, 1);
    await adapter.listPipelines(app.id, { ref: "trusted-pipe" });
    await adapter.getBranch(app.id, "a/b");
    const fromSim = sim.requestLog.map((r) => r.route).sort();
    const fromAdapter = adapter
      .apiCalls()
      .flatMap((c) => Array.from({ length: c.count }, () => c.route))
      .sort();
    assert.deepEqual(fromAdapter, fromSim);
    const metric = await metrics.gitlabCalls.get();
    assert.ok(metric.values.some((v) => v.labels.route === "GET /projects/:id/merge_requests/:iid"));
  });
});

describe("routeTemplate", () => {
  const table: Array<[string, string, string]> = [
    ["GET", "/api/v4/projects/12/merge_requests/3", "GET /projects/:id/merge_requests/:iid"],
    ["GET", "/api/v4/projects/org%2Fapp", "GET /projects/:id"],
    ["GET", "/api/v4/projects/12/members/all/5", "GET /projects/:id/members/all/:user_id"],
    [
      "DELETE",
      "/api/v4/projects/12/repository/branches/trusted-a%2Fb",
      "DELETE /projects/:id/repository/branches/:branch",
    ],
    ["POST", "/api/v4/projects/12/statuses/abc", "POST /projects/:id/statuses/:sha"],
    [
      "POST",
      "/api/v4/projects/12/merge_requests/3/notes/9/award_emoji",
      "POST /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji",
    ],
    [
      "GET",
      "/api/v4/projects/12/pipelines/4/test_report_summary",
      "GET /projects/:id/pipelines/:pipeline_id/test_report_summary",
    ],
    ["GET", "/api/v4/user", "GET /user"],
  ];
  for (const [method, path, expected] of table) {
    it(`${method} ${path}`, () => assert.equal(routeTemplate(method, path), expected));
  }
});
