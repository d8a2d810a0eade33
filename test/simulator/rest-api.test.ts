/**
 * The simulator's REST API, driven through `@gitbeaker/rest` over real HTTP exactly as the bot drives GitLab.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessLevel, GitLabSimulator } from "../../src/simulator/gitlab-simulator.js";
import { client, raw, rejectsWith, seedWorld } from "./helpers.js";

describe("authentication and projects", () => {
  test("a missing or unknown token is 401 with GitLab's body; Bearer works too", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    const none = await raw(sim, undefined, `/projects/${app.id}`);
    assert.equal(none.status, 401);
    assert.deepEqual(await none.json(), { message: "401 Unauthorized" });
    await rejectsWith(client(sim, { ...bot, token: "glpat-wrong" }).Projects.show(app.id), 401, "401 Unauthorized");
    const bearer = await fetch(`${sim.url}/api/v4/user`, { headers: { Authorization: `Bearer ${bot.token}` } });
    assert.equal(((await bearer.json()) as { username: string }).username, "trusted-bot");
  });

  test("a project is found by URL-encoded path or id; an invisible project is 404, not 403", async (t) => {
    const { sim, bot, contributor } = await seedWorld();
    t.after(() => sim.stop());
    const api = client(sim, bot);
    const byPath = await api.Projects.show("org/app");
    assert.equal(byPath.path_with_namespace, "org/app");
    assert.equal((await api.Projects.show(byPath.id)).id, byPath.id);
    await rejectsWith(api.Projects.show("org/nope"), 404, "404 Project Not Found");

    const secret = sim.addProject({ path: "org/secret", visibility: "private" });
    await rejectsWith(client(sim, contributor).Projects.show(secret.id), 404, "404 Project Not Found");
    assert.equal((await api.Projects.show("org/secret")).visibility, "private");
  });

  test("members/all reports inherited membership at the effective (max) level; a non-member is 404", async (t) => {
    const { sim, committer, contributor } = await seedWorld();
    t.after(() => sim.stop());
    const parent = sim.addGroup({ path: "corp" });
    const child = sim.addGroup({ path: "team", parentId: parent.id });
    const project = sim.addProject({ path: "corp/team/lib" });
    const eve = sim.addUser({ username: "eve" });
    sim.addMember({ groupId: parent.id }, eve.id, AccessLevel.Maintainer);
    sim.addMember({ projectId: project.id }, eve.id, AccessLevel.Developer);
    sim.addMember({ groupId: child.id }, committer.id, AccessLevel.Reporter);
    const api = client(sim, eve);

    const inherited = await api.ProjectMembers.show(project.id, eve.id, { includeInherited: true });
    assert.equal(inherited.access_level, AccessLevel.Maintainer, "parent-group Maintainer beats direct Developer");
    const viaSubgroup = await api.ProjectMembers.show("corp/team/lib", committer.id, { includeInherited: true });
    assert.equal(viaSubgroup.access_level, AccessLevel.Reporter);
    assert.equal((await api.GroupMembers.show(child.id, eve.id, { includeInherited: true })).access_level, 40);
    await rejectsWith(
      api.ProjectMembers.show(project.id, contributor.id, { includeInherited: true }),
      404,
      "404 Not found",
    );
  });
  test("projects are listed by membership and minimum access level, inherited membership included", async (t) => {
    const { sim } = await seedWorld();
    t.after(() => sim.stop());
    const corp = sim.addGroup({ path: "corp" });
    const lib = sim.addProject({ path: "corp/lib", namespaceGroupId: corp.id });
    const tool = sim.addProject({ path: "corp/tool", namespaceGroupId: corp.id });
    const ann = sim.addUser({ username: "ann" });
    sim.addMember({ groupId: corp.id }, ann.id, AccessLevel.Developer);
    sim.addMember({ projectId: tool.id }, ann.id, AccessLevel.Maintainer);
    const api = client(sim, ann);
    const names = (list: unknown[]) => list.map((p) => (p as { path_with_namespace: string }).path_with_namespace).sort();
    assert.deepEqual(names(await api.Projects.all({ membership: true })), ["corp/lib", "corp/tool"]);
    assert.deepEqual(names(await api.Projects.all({ minAccessLevel: 40 })), ["corp/tool"]);
    assert.ok(names(await api.Projects.all()).length > 2, "without membership every visible project is listed");
    void lib;
  });
});

describe("protected branches (Gitlab::UserAccess, Checks::BranchCheck)", () => {
  test("a developer cannot create trusted-x under a maintainer-only rule; a maintainer and an allowed user can", async (t) => {
    const { sim, bot, committer, app } = await seedWorld();
    t.after(() => sim.stop());
    const allowed = sim.addUser({ username: "allowed" });
    sim.addMember({ projectId: app.id }, allowed.id, AccessLevel.Developer);
    sim.protectBranch(app.id, {
      name: "trusted-*",
      pushAccessLevel: AccessLevel.Maintainer,
      mergeAccessLevel: AccessLevel.Maintainer,
      allowedToPushUserIds: [allowed.id],
    });

    await rejectsWith(
      client(sim, committer).Branches.create(app.id, "trusted-x", "main"),
      400,
      "You are not allowed to create protected branches on this project.",
    );
    const created = await client(sim, bot).Branches.create(app.id, "trusted-x", "main");
    assert.equal(created.protected, true);
    assert.equal(created.can_push, true);
    const byAllowed = await client(sim, allowed).Branches.create(app.id, "trusted-y", "main");
    assert.equal(byAllowed.name, "trusted-y");
  });

  test("with push 'No one', a merge-level user may create a protected branch only from a protected commit", async (t) => {
    const { sim, bot, contributor, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.protectBranch(app.id, { name: "release-*", pushAccessLevel: 0, mergeAccessLevel: AccessLevel.Maintainer });
    sim.addMember({ projectId: app.id }, contributor.id, AccessLevel.Developer);
    const side = sim.push(app.id, "side", { userId: contributor.id });
    const api = client(sim, bot);
    await rejectsWith(
      api.Branches.create(app.id, "release-1", side.after),
      400,
      "You can only use an existing protected branch ref as the basis of a new protected branch.",
    );
    assert.equal((await api.Branches.create(app.id, "release-1", "main")).protected, true);
  });

  test("where several rules match, the most permissive wins", async (t) => {
    const { sim, committer, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    sim.protectBranch(app.id, { name: "trusted-docs", pushAccessLevel: 30, mergeAccessLevel: 40 });
    const api = client(sim, committer);
    assert.equal((await api.Branches.create(app.id, "trusted-docs", "main")).developers_can_push, true);
    await rejectsWith(api.Branches.create(app.id, "trusted-code", "main"), 400);
  });

  test("deleting a protected branch needs Maintainer; a Reporter cannot touch branches at all", async (t) => {
    const { sim, bot, committer, reporter, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    await client(sim, bot).Branches.create(app.id, "trusted-x", "main");
    await rejectsWith(
      client(sim, committer).Branches.remove(app.id, "trusted-x"),
      400,
      /Only a project maintainer or owner can delete a protected branch/,
    );
    await rejectsWith(client(sim, reporter).Branches.create(app.id, "topic", "main"), 403, "403 Forbidden");
    await client(sim, bot).Branches.remove(app.id, "trusted-x");
    assert.equal(sim.branch(app.id, "trusted-x"), undefined);
    await rejectsWith(client(sim, bot).Branches.show(app.id, "trusted-x"), 404, "404 Branch Not Found");
    await rejectsWith(client(sim, bot).Branches.create(app.id, "main", "main"), 400, "Branch already exists");
  });

  test("protected branch rules are managed by Maintainers through the API", async (t) => {
    const { sim, bot, committer, app } = await seedWorld();
    t.after(() => sim.stop());
    const api = client(sim, bot);
    const rule = await api.ProtectedBranches.create(app.id, "trusted-*", {
      pushAccessLevel: 40,
      mergeAccessLevel: 40,
      allowedToPush: [{ user_id: bot.id }],
    } as never);
    assert.equal(rule.name, "trusted-*");
    assert.deepEqual(
      (rule.push_access_levels as Array<{ user_id: number | null }>).map((l) => l.user_id),
      [null, bot.id],
    );
    await rejectsWith(
      api.ProtectedBranches.create(app.id, "trusted-*"),
      409,
      "Protected branch 'trusted-*' already exists",
    );
    await rejectsWith(client(sim, committer).ProtectedBranches.all(app.id), 403);
    assert.equal((await api.ProtectedBranches.show(app.id, "trusted-*")).allow_force_push, false);
  });
});

describe("merge requests from forks", () => {
  test("a fork MR's head is fetched into the target: usable as a branch source there (inferred)", async (t) => {
    const { sim, bot, contributor, app, fork } = await seedWorld();
    t.after(() => sim.stop());
    const pushed = sim.push(fork.id, "feature", { userId: contributor.id, message: "Add feature" });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "feature", authorId: contributor.id });
    assert.equal(mr.projectId, app.id);
    const api = client(sim, bot);

    const shown = await api.MergeRequests.show(app.id, mr.iid);
    assert.equal(shown.sha, pushed.after);
    assert.equal(shown.source_project_id, fork.id);
    assert.equal(shown.target_project_id, app.id);
    const branch = await api.Branches.create(app.id, "trusted-feature", shown.sha as string);
    assert.equal(branch.commit.id, pushed.after);
    await api.Branches.create(app.id, "from-mr-ref", `refs/merge-requests/${mr.iid}/head`);
    await rejectsWith(
      api.Branches.create(app.id, "nowhere", "0123456789abcdef0123456789abcdef01234567"),
      400,
      /invalid reference name/,
    );

    const again = sim.push(fork.id, "feature", { userId: contributor.id });
    assert.equal(sim.mergeRequest(app.id, mr.iid).sha, again.after);
    assert.equal((await api.Commits.show(app.id, again.after)).id, again.after);
  });

  test("MR list filters, label edits and state events", async (t) => {
    const { sim, bot, committer, contributor, app, fork } = await seedWorld();
    t.after(() => sim.stop());
    sim.push(fork.id, "a", { userId: contributor.id });
    sim.push(fork.id, "b", { userId: contributor.id });
    const a = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "a", authorId: contributor.id });
    sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "b", authorId: contributor.id, labels: ["docs"] });
    const api = client(sim, bot);

    const bySource = await api.MergeRequests.all({ projectId: app.id, sourceBranch: "a", state: "opened" });
    assert.deepEqual(
      bySource.map((m) => m.iid),
      [a.iid],
    );
    const edited = await api.MergeRequests.edit(app.id, a.iid, { addLabels: "trusted,ci" });
    assert.deepEqual(edited.labels, ["trusted", "ci"]);
    assert.deepEqual(
      (await api.MergeRequests.all({ projectId: app.id, labels: "trusted" })).map((m) => m.iid),
      [a.iid],
    );
    assert.ok(
      sim.labels(app.id).some((l) => l.name === "trusted"),
      "labels are created on first use",
    );

    await rejectsWith(
      client(sim, sim.addUser({ username: "stranger" })).MergeRequests.edit(app.id, a.iid, { title: "x" }),
      403,
    );
    const closed = await client(sim, committer).MergeRequests.edit(app.id, a.iid, { stateEvent: "close" });
    assert.equal(closed.state, "closed");
    assert.ok(closed.closed_at);
    await rejectsWith(
      client(sim, contributor).MergeRequests.create(fork.id, "b", "main", "dup", { targetProjectId: app.id }),
      409,
      /Another open merge request already exists/,
    );
  });
});

describe("notes and award emoji", () => {
  test("only the author may edit a note; the same emoji twice by one user is GitLab's 404", async (t) => {
    const { sim, bot, committer, contributor, fork } = await seedWorld();
    t.after(() => sim.stop());
    sim.push(fork.id, "f", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "f", authorId: contributor.id });
    const botApi = client(sim, bot);
    const note = await botApi.MergeRequestNotes.create(mr.projectId, mr.iid, "<!-- trusted-mr-bot -->\nStatus");
    const edited = await botApi.MergeRequestNotes.edit(mr.projectId, mr.iid, note.id, { body: "updated" });
    assert.equal(edited.body, "updated");
    await rejectsWith(
      client(sim, committer).MergeRequestNotes.edit(mr.projectId, mr.iid, note.id, { body: "hijack" }),
      403,
      "403 Forbidden",
    );

    const c = sim.comment(mr.projectId, mr.iid, committer.id, "/trust");
    const award = await botApi.MergeRequestNoteAwardEmojis.award(mr.projectId, mr.iid, c.id, "eyes");
    assert.equal(award.name, "eyes");
    await rejectsWith(
      botApi.MergeRequestNoteAwardEmojis.award(mr.projectId, mr.iid, c.id, "eyes"),
      404,
      '404 Award Emoji ["Name has already been taken"] Not Found',
    );
    assert.deepEqual(
      sim.awardEmoji(mr.projectId, mr.iid, c.id).map((a) => a.name),
      ["eyes"],
    );

    const asc = await botApi.MergeRequestNotes.all(mr.projectId, mr.iid, { sort: "asc", orderBy: "created_at" });
    assert.deepEqual(
      asc.map((n) => n.id),
      [note.id, c.id],
    );
    const desc = await botApi.MergeRequestNotes.all(mr.projectId, mr.iid);
    assert.deepEqual(
      desc.map((n) => n.id),
      [c.id, note.id],
      "GitLab's default is created_at desc",
    );
  });
});

describe("pagination", () => {
  test("gitbeaker follows link rel=next across pages and stops at maxPages", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    for (let i = 0; i < 45; i++) sim.push(app.id, `topic-${String(i).padStart(2, "0")}`, { userId: bot.id });
    const api = client(sim, bot);
    sim.clearRequestLog();

    const all = await api.Branches.all(app.id, { perPage: 10 });
    assert.equal(all.length, 46);
    assert.equal(sim.requestLog.length, 5);
    const capped = await api.Branches.all(app.id, { perPage: 10, maxPages: 2 });
    assert.equal(capped.length, 20);
    const expanded = await api.Branches.all(app.id, { perPage: 20, page: 3, showExpanded: true });
    assert.equal(expanded.data.length, 6);
    assert.deepEqual(expanded.paginationInfo, {
      total: 46,
      next: null,
      current: 3,
      previous: 2,
      perPage: 20,
      totalPages: 3,
    });

    const res = await raw(sim, bot, `/projects/${app.id}/repository/branches?search=%5Etopic-1&per_page=4`);
    assert.equal(res.headers.get("x-total"), "10");
    assert.equal(res.headers.get("x-next-page"), "2");
    assert.equal(res.headers.get("x-prev-page"), "");
    const next = /<([^>]+)>; rel="next"/.exec(res.headers.get("link") ?? "")?.[1] ?? "";
    assert.deepEqual(Object.fromEntries(new URL(next).searchParams), { search: "^topic-1", per_page: "4", page: "2" });
    const big = await raw(sim, bot, `/projects/${app.id}/repository/branches?per_page=500`);
    assert.equal(big.headers.get("x-per-page"), "100", "per_page is capped at 100");
  });
});

describe("commit statuses (Ci::CreateCommitStatusService)", () => {
  test("the same running/pending state twice is GitLab's 400; a finished status is replaced, not updated", async (t) => {
    const { sim, bot, contributor, app, fork } = await seedWorld();
    t.after(() => sim.stop());
    const { after: sha } = sim.push(fork.id, "f", { userId: contributor.id });
    const mr = sim.openMergeRequest({ sourceProjectId: fork.id, sourceBranch: "f", authorId: contributor.id });
    const api = client(sim, bot);
    const ref = `refs/merge-requests/${mr.iid}/head`;
    const opts = { name: "trusted-ci", ref, targetUrl: "http://ci.example/1", description: "waiting" };

    const first = await api.Commits.editStatus(app.id, sha, "pending", opts);
    assert.equal(first.status, "pending");
    await rejectsWith(
      api.Commits.editStatus(app.id, sha, "pending", opts),
      400,
      'Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via "enqueue")',
    );
    await api.Commits.editStatus(app.id, sha, "running", opts);
    await rejectsWith(
      api.Commits.editStatus(app.id, sha, "running", opts),
      400,
      /Cannot transition status via :run from :running/,
    );
    await api.Commits.editStatus(app.id, sha, "success", opts);
    const again = await api.Commits.editStatus(app.id, sha, "success", opts);
    assert.notEqual(again.id, first.id);

    const external = sim.pipelines(app.id).filter((p) => p.source === "external");
    assert.equal(external.length, 1, "statuses attach to the external pipeline created by the first post");
    assert.equal(external[0]?.ref, ref);
    assert.equal(external[0]?.status, "success");
    assert.equal((await api.Commits.allStatuses(app.id, sha, { name: "trusted-ci" })).length, 1);
    assert.equal((await api.Commits.allStatuses(app.id, sha, { name: "trusted-ci", all: true })).length, 2);
  });

  test("a description over 255 characters is a validation error (inferred)", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    const sha = sim.branch(app.id, "main")!.sha;
    await rejectsWith(
      client(sim, bot).Commits.editStatus(app.id, sha, "pending", { description: "x".repeat(256) }),
      400,
      JSON.stringify({ description: ["is too long (maximum is 255 characters)"] }),
    );
    const ok = await client(sim, bot).Commits.editStatus(app.id, sha, "pending", { description: "x".repeat(255) });
    assert.equal(ok.ref, "main", "without a ref, the first branch containing the sha");
  });

  test("a status on a protected ref needs push or merge access there (403)", async (t) => {
    const { sim, bot, committer, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    const { after: sha } = sim.push(app.id, "trusted-x", { userId: bot.id });
    await rejectsWith(
      client(sim, committer).Commits.editStatus(app.id, sha, "running", { ref: "trusted-x", name: "mirror" }),
      403,
      "403 Forbidden",
    );
    const status = await client(sim, bot).Commits.editStatus(app.id, sha, "running", {
      ref: "trusted-x",
      name: "mirror",
    });
    assert.equal(status.status, "running");
    await rejectsWith(client(sim, bot).Commits.editStatus(app.id, "deadbeef", "running"), 404, "404 Commit Not Found");
  });
});

describe("pipelines", () => {
  test("creating a pipeline on a protected ref without push/merge access is refused like GitLab", async (t) => {
    const { sim, bot, committer, reporter, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    await client(sim, bot).Branches.create(app.id, "trusted-x", "main");

    // Ci::CreatePipelineService's chain error, rendered by `render_validation_error!` (lib/api/ci/pipelines.rb).
    await rejectsWith(
      client(sim, committer).Pipelines.create(app.id, "trusted-x"),
      400,
      JSON.stringify({ base: ["Insufficient permissions for protected ref 'trusted-x'"] }),
    );
    await rejectsWith(client(sim, reporter).Pipelines.create(app.id, "trusted-x"), 403, "403 Forbidden");
    const empty = await raw(sim, bot, `/projects/${app.id}/pipeline`, { method: "POST", body: JSON.stringify({}) });
    assert.equal(empty.status, 400);
    assert.deepEqual(await empty.json(), { error: "ref is missing" });

    const created = await client(sim, bot).Pipelines.create(app.id, "trusted-x", {
      variables: [{ key: "TRUSTED_MR_IID", value: "7" }],
    });
    assert.equal(created.status, "created");
    assert.equal(created.source, "api");
    const vars = await client(sim, bot).Pipelines.allVariables(app.id, created.id);
    assert.deepEqual(vars, [{ key: "TRUSTED_MR_IID", variable_type: "env_var", value: "7" }]);
    const jobs = await client(sim, bot).Jobs.all(app.id, { pipelineId: created.id });
    assert.deepEqual(jobs.map((j) => j.name).sort(), ["build", "test"]);
  });

  test("cancel and retry need update rights on the ref; retry replaces failed jobs", async (t) => {
    const { sim, bot, committer, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    await client(sim, bot).Branches.create(app.id, "trusted-x", "main");
    const p = await client(sim, bot).Pipelines.create(app.id, "trusted-x");

    sim.setJobStatus(app.id, p.id, "build", "running");
    assert.equal(sim.pipeline(app.id, p.id).status, "running");
    sim.setJobStatus(app.id, p.id, "build", "failed");
    assert.equal(sim.pipeline(app.id, p.id).status, "running", "created jobs keep a pipeline with a failure running");
    sim.setPipelineStatus(app.id, p.id, "failed");
    assert.deepEqual(
      sim.pipeline(app.id, p.id).jobs.map((j) => [j.name, j.status]),
      [
        ["build", "failed"],
        ["test", "skipped"],
      ],
    );

    await rejectsWith(client(sim, committer).Pipelines.retry(app.id, p.id), 403, "403 Forbidden");
    await rejectsWith(client(sim, committer).Pipelines.cancel(app.id, p.id), 403, "403 Forbidden");
    const retried = await client(sim, bot).Pipelines.retry(app.id, p.id);
    assert.equal(retried.status, "pending");
    const jobs = await client(sim, bot).Jobs.all(app.id, { pipelineId: p.id, includeRetried: true });
    assert.equal(jobs.length, 3);
    assert.equal(jobs.filter((j) => j.retried).length, 1);

    const canceled = await client(sim, bot).Pipelines.cancel(app.id, p.id);
    assert.equal(canceled.status, "canceled");

    const devPipeline = await client(sim, committer).Pipelines.create(app.id, "main");
    await client(sim, committer).Pipelines.cancel(app.id, devPipeline.id);
  });

  test("pipeline list filters and the test report summary", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    const api = client(sim, bot);
    const a = await api.Pipelines.create(app.id, "main");
    sim.push(app.id, "topic", { userId: bot.id });
    const b = await api.Pipelines.create(app.id, "topic");
    sim.setPipelineStatus(app.id, b.id, "success");
    sim.setTestReportSummary(app.id, b.id, {
      total: 10,
      success: 8,
      failed: 1,
      skipped: 1,
      error: 0,
      suites: [{ name: "unit", total: 10, failed: 1 }],
    });

    const onMain = await api.Pipelines.all(app.id, { ref: "main", source: "api" });
    assert.deepEqual(
      onMain.map((p) => p.id),
      [a.id],
    );
    const ok = await api.Pipelines.all(app.id, { status: "success" });
    assert.deepEqual(
      ok.map((p) => p.id),
      [b.id],
    );
    const summary = await api.Pipelines.showTestReportSummary(app.id, b.id);
    assert.deepEqual(summary.total, {
      time: 0.1,
      count: 10,
      success: 8,
      failed: 1,
      skipped: 1,
      error: 0,
      suite_error: null,
    });
    assert.equal((summary.test_suites as Array<{ failed_count: number }>)[0]?.failed_count, 1);
    const none = await api.Pipelines.showTestReportSummary(app.id, a.id);
    assert.equal(none.total.count, 0);
  });
});

describe("faults and the request log", () => {
  test("429 carries Retry-After (and RateLimit-* when asked); gitbeaker retries it on its own", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.setFaults({ rateLimitHeaders: true });
    sim.failNext(1, 429, { retryAfterSeconds: 7 });
    const res = await raw(sim, bot, `/projects/${app.id}`);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "7");
    assert.equal(res.headers.get("ratelimit-remaining"), "0");
    assert.ok(Number(res.headers.get("ratelimit-reset")) > Date.now() / 1000);

    sim.clearFaults();
    sim.failNext(2, 429, { route: /^GET \/projects\/:id$/ });
    sim.clearRequestLog();
    const project = await client(sim, bot).Projects.show(app.id);
    assert.equal(project.id, app.id);
    assert.deepEqual(
      sim.requestLog.map((r) => r.status),
      [429, 429, 200],
    );

    sim.setFaults({ rateLimitRate: 1 });
    const bare = await raw(sim, bot, "/user");
    assert.equal(bare.status, 429);
    assert.equal(bare.headers.get("ratelimit-limit"), null, "RateLimit-* only when rateLimitHeaders");
    sim.setFaults({ rateLimitRate: 0, errorRate: 1, errorStatus: 503 });
    assert.equal((await raw(sim, bot, "/user")).status, 503);
    sim.clearFaults();
    sim.failNext(1, 409, { route: /statuses/, message: "Another update to this commit status is in progress" });
    await rejectsWith(
      client(sim, bot).Commits.editStatus(app.id, sim.branch(app.id, "main")!.sha, "running"),
      409,
      "Another update to this commit status is in progress",
    );
  });

  test("an unknown route is 501 and logged, so a test can fail on it", async (t) => {
    const sim = await GitLabSimulator.start();
    t.after(() => sim.stop());
    const user = sim.addUser({ username: "u" });
    const res = await raw(sim, user, "/projects/1/issues?state=opened");
    assert.equal(res.status, 501);
    assert.deepEqual(await res.json(), { message: "501 Not Implemented: GET /projects/1/issues" });
    assert.deepEqual(
      sim.requestLog.map(({ method, route, path, status, userId }) => ({ method, route, path, status, userId })),
      [{ method: "GET", route: "UNKNOWN", path: "/projects/1/issues?state=opened", status: 501, userId: user.id }],
    );
  });

  test("every request is logged with its route template and caller", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    sim.clearRequestLog();
    await client(sim, bot).Branches.show("org/app", "main");
    assert.deepEqual(
      sim.requestLog.map(({ method, route, path, status, userId }) => ({ method, route, path, status, userId })),
      [
        {
          method: "GET",
          route: "GET /projects/:id/repository/branches/:branch",
          path: "/projects/org%2Fapp/repository/branches/main",
          status: 200,
          userId: bot.id,
        },
      ],
    );
    assert.equal(app.pathWithNamespace, "org/app");
  });
});
