/**
 * The simulator's GraphQL endpoint (`POST /api/graphql`) over real HTTP: the schema subset the bot reads (a
 * pipeline's status, its jobs with trigger jobs, its test report summary) answers as GitLab's `app/graphql` types
 * do, authenticates like GitLab's GraphqlController, is logged and faulted like any route, and can be turned off.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GitLabSimulator, type SimUser } from "../../src/simulator/gitlab-simulator.js";
import { client, raw, seedWorld } from "./helpers.js";

interface GqlAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are walked by the tests, shape per query.
  body: any;
}

/** One GraphQL request as a client sends it: JSON body, the user's token as `PRIVATE-TOKEN` unless `headers` say. */
async function gql(
  sim: GitLabSimulator,
  user: SimUser | undefined,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = user ? { "PRIVATE-TOKEN": user.token } : {},
): Promise<GqlAnswer> {
  const res = await fetch(`${sim.url}/api/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ query, ...(variables ? { variables } : {}) }),
  });
  const text = await res.text();
  return { status: res.status, body: res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

const PIPELINE_QUERY = `
  query pipelineSummary($fullPath: ID!, $id: CiPipelineID!, $retried: Boolean, $statuses: [CiJobStatus!]) {
    project(fullPath: $fullPath) {
      id
      fullPath
      pipeline(id: $id) {
        id
        iid
        status
        jobs(statuses: $statuses, retried: $retried) {
          count
          nodes { id name status allowFailure webPath kind retried stage { name } }
        }
        testReportSummary { total { count success failed skipped error time suiteError } }
      }
    }
  }`;

/**
 * `org/app` with a build job, a test job, an allowed-to-fail lint and a trigger job (a bridge), driven to a failed
 * pipeline: `unit` failed, was retried and failed again; `lint` (allowed to fail) and the bridge `docs` failed.
 */
async function failedPipeline() {
  const w = await seedWorld({
    ciJobs: [
      { name: "compile", stage: "build" },
      { name: "unit", stage: "test" },
      { name: "lint", stage: "test", allowFailure: true },
      { name: "docs", stage: "deploy", trigger: "org/docs" },
    ] as Array<{ name: string; stage: string }>,
  });
  const { sim, bot, app } = w;
  const p = sim.runPipeline(app.id, "main", { userId: bot.id });
  sim.setJobStatus(app.id, p.id, "compile", "success");
  sim.setJobStatus(app.id, p.id, "unit", "failed");
  await client(sim, bot).Pipelines.retry(app.id, p.id);
  sim.setJobStatus(app.id, p.id, "unit", "failed");
  sim.setJobStatus(app.id, p.id, "lint", "failed");
  sim.setJobStatus(app.id, p.id, "docs", "failed");
  const jobs = sim.pipeline(app.id, p.id).jobs;
  const id = (name: string, retried: boolean) => jobs.find((j) => j.name === name && j.retried === retried)!.id;
  return {
    ...w,
    p,
    ids: {
      compile: id("compile", false),
      unit: id("unit", false),
      oldUnit: id("unit", true),
      lint: id("lint", false),
      docs: id("docs", false),
    },
  };
}

describe("GraphQL: one request reads a pipeline's status, failed jobs and test report", () => {
  test("failed build, failed bridge, allowed-to-fail and retried jobs; retried: false keeps the latest of each", async (t) => {
    const { sim, bot, app, p, ids } = await failedPipeline();
    t.after(() => sim.stop());
    assert.equal(sim.pipeline(app.id, p.id).status, "failed");

    const failed = await gql(sim, bot, PIPELINE_QUERY, {
      fullPath: "org/app",
      id: `gid://gitlab/Ci::Pipeline/${p.id}`,
      retried: false,
      statuses: ["FAILED"],
    });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.errors, undefined);
    const project = failed.body.data.project;
    assert.deepEqual([project.id, project.fullPath], [`gid://gitlab/Project/${app.id}`, "org/app"]);
    assert.deepEqual(
      [project.pipeline.id, project.pipeline.iid, project.pipeline.status],
      [`gid://gitlab/Ci::Pipeline/${p.id}`, String(p.iid), "FAILED"],
    );
    // Newest first (`statuses_order_id_desc`); the bridge is there, unlike in REST's `.../jobs`; the retried `unit`
    // is not.
    assert.deepEqual(project.pipeline.jobs.nodes, [
      {
        id: `gid://gitlab/Ci::Build/${ids.unit}`,
        name: "unit",
        status: "FAILED",
        allowFailure: false,
        webPath: `/org/app/-/jobs/${ids.unit}`,
        kind: "BUILD",
        retried: false,
        stage: { name: "test" },
      },
      {
        id: `gid://gitlab/Ci::Bridge/${ids.docs}`,
        name: "docs",
        status: "FAILED",
        allowFailure: false,
        webPath: null,
        kind: "BRIDGE",
        retried: false,
        stage: { name: "deploy" },
      },
      {
        id: `gid://gitlab/Ci::Build/${ids.lint}`,
        name: "lint",
        status: "FAILED",
        allowFailure: true,
        webPath: `/org/app/-/jobs/${ids.lint}`,
        kind: "BUILD",
        retried: false,
        stage: { name: "test" },
      },
    ]);
    assert.equal(project.pipeline.jobs.count, 3);
    const rest = await client(sim, bot).Jobs.all(app.id, { pipelineId: p.id, scope: "failed" });
    assert.deepEqual(rest.map((j) => j.name).sort(), ["lint", "unit"], "REST's .../jobs has no bridge");

    const everyFailed = await gql(sim, bot, PIPELINE_QUERY, {
      fullPath: "org/app",
      id: `gid://gitlab/Ci::Pipeline/${p.id}`,
      statuses: ["FAILED"],
    });
    const names = everyFailed.body.data.project.pipeline.jobs.nodes.map((j: { name: string; retried: boolean }) => [
      j.name,
      j.retried,
    ]);
    assert.deepEqual(
      names.sort(),
      [
        ["docs", false],
        ["lint", false],
        ["unit", false],
        ["unit", true],
      ],
      "retried omitted: all",
    );

    const all = await gql(sim, bot, PIPELINE_QUERY, {
      fullPath: "org/app",
      id: `gid://gitlab/Ci::Pipeline/${p.id}`,
      retried: false,
    });
    assert.deepEqual(
      all.body.data.project.pipeline.jobs.nodes.map((j: { name: string }) => j.name),
      ["unit", "docs", "lint", "compile"],
    );
  });

  test("retried: true, jobKind, iid and sha arguments, and keyset pages", async (t) => {
    const { sim, bot, p, ids } = await failedPipeline();
    t.after(() => sim.stop());
    const q = `query($iid: ID, $sha: String, $kind: CiJobKind, $retried: Boolean, $after: String) {
      project(fullPath: "org/app") {
        byIid: pipeline(iid: $iid) { id }
        bySha: pipeline(sha: $sha) { id }
        pipeline(iid: $iid) {
          retriedJobs: jobs(retried: $retried) { nodes { id } }
          kinds: jobs(jobKind: $kind) { count nodes { name kind } }
          page: jobs(first: 2, after: $after) { count(limit: 3) nodes { name } pageInfo { hasNextPage hasPreviousPage endCursor } }
        }
      }
    }`;
    const first = await gql(sim, bot, q, { iid: String(p.iid), sha: p.sha, kind: "BRIDGE", retried: true });
    assert.equal(first.body.errors, undefined, JSON.stringify(first.body.errors));
    const project = first.body.data.project;
    assert.equal(project.byIid.id, `gid://gitlab/Ci::Pipeline/${p.id}`);
    assert.equal(project.bySha.id, `gid://gitlab/Ci::Pipeline/${p.id}`);
    assert.deepEqual(project.pipeline.retriedJobs.nodes, [{ id: `gid://gitlab/Ci::Build/${ids.oldUnit}` }]);
    assert.deepEqual(project.pipeline.kinds, { count: 1, nodes: [{ name: "docs", kind: "BRIDGE" }] });
    assert.deepEqual(project.pipeline.page.nodes, [{ name: "unit" }, { name: "docs" }]);
    assert.equal(project.pipeline.page.count, 4, "5 jobs, counted up to limit + 1");
    assert.deepEqual(
      [project.pipeline.page.pageInfo.hasNextPage, project.pipeline.page.pageInfo.hasPreviousPage],
      [true, false],
    );

    const next = await gql(sim, bot, q, {
      iid: String(p.iid),
      kind: "BUILD",
      after: project.pipeline.page.pageInfo.endCursor,
    });
    assert.deepEqual(next.body.data.project.pipeline.page.nodes, [{ name: "lint" }, { name: "unit" }]);
    assert.equal(next.body.data.project.pipeline.kinds.count, 4, "BUILD: every job but the bridge");
    const last = await gql(sim, bot, q, {
      iid: String(p.iid),
      after: next.body.data.project.pipeline.page.pageInfo.endCursor,
    });
    assert.deepEqual(last.body.data.project.pipeline.page.nodes, [{ name: "compile" }]);
    assert.equal(last.body.data.project.pipeline.page.pageInfo.hasNextPage, false);
  });

  test("status maps to GitLab's upper-case enums, for pipelines and jobs", async (t) => {
    const { sim, bot, app } = await seedWorld();
    t.after(() => sim.stop());
    const p = sim.runPipeline(app.id, "main", { userId: bot.id });
    const q = `query($id: CiPipelineID!) { project(fullPath: "org/app") { pipeline(id: $id) { status jobs { nodes { name status } } } } }`;
    const read = async () =>
      (await gql(sim, bot, q, { id: `gid://gitlab/Ci::Pipeline/${p.id}` })).body.data.project.pipeline;
    const seen: string[] = [];
    for (const status of ["created", "pending", "running", "success", "failed", "canceled"] as const) {
      sim.setPipelineStatus(app.id, p.id, status);
      const pipeline = await read();
      assert.equal(pipeline.status, sim.pipeline(app.id, p.id).status.toUpperCase());
      for (const job of sim.pipeline(app.id, p.id).jobs) {
        assert.equal(
          pipeline.jobs.nodes.find((j: { name: string }) => j.name === job.name).status,
          job.status.toUpperCase(),
        );
      }
      seen.push(pipeline.status);
    }
    assert.deepEqual(seen, ["CREATED", "PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELED"]);

    const types = await gql(
      sim,
      bot,
      `{ p: __type(name: "PipelineStatusEnum") { enumValues { name } } j: __type(name: "CiJobStatus") { enumValues { name } } k: __type(name: "CiJobKind") { enumValues { name } } }`,
    );
    const names = (t: { enumValues: Array<{ name: string }> }) => t.enumValues.map((v) => v.name);
    const expected = [
      "CREATED",
      "WAITING_FOR_RESOURCE",
      "PREPARING",
      "WAITING_FOR_CALLBACK",
      "PENDING",
      "RUNNING",
      "SUCCESS",
      "FAILED",
      "CANCELING",
      "CANCELED",
      "SKIPPED",
      "MANUAL",
      "SCHEDULED",
    ];
    assert.deepEqual(names(types.body.data.p), expected);
    assert.deepEqual(names(types.body.data.j), expected);
    assert.deepEqual(names(types.body.data.k), ["BUILD", "BRIDGE"]);
  });

  test("the test report summary is the one REST's test_report_summary serves", async (t) => {
    const { sim, bot, app, p, ids } = await failedPipeline();
    t.after(() => sim.stop());
    sim.setTestReportSummary(app.id, p.id, {
      total: 12,
      success: 9,
      failed: 2,
      skipped: 1,
      error: 0,
      suites: [
        { name: "unit", total: 8, failed: 2 },
        { name: "integration", total: 4, failed: 0 },
      ],
    });
    const rest = (await (await raw(sim, bot, `/projects/${app.id}/pipelines/${p.id}/test_report_summary`)).json()) as {
      total: Record<string, unknown>;
      test_suites: Array<Record<string, unknown>>;
    };
    const answer = await gql(
      sim,
      bot,
      `query($id: CiPipelineID!) { project(fullPath: "org/app") { pipeline(id: $id) { testReportSummary {
        total { time count success failed skipped error suiteError }
        testSuites { count nodes { name totalTime totalCount successCount failedCount skippedCount errorCount suiteError buildIds } }
      } } } }`,
      { id: `gid://gitlab/Ci::Pipeline/${p.id}` },
    );
    const summary = answer.body.data.project.pipeline.testReportSummary;
    const { suite_error, ...totals } = rest.total;
    assert.deepEqual(summary.total, { ...totals, suiteError: suite_error });
    assert.equal(summary.total.failed, 2);
    assert.equal(summary.testSuites.count, 2);
    assert.deepEqual(
      summary.testSuites.nodes,
      rest.test_suites.map((s) => ({
        name: s["name"],
        totalTime: s["total_time"],
        totalCount: s["total_count"],
        successCount: s["success_count"],
        failedCount: s["failed_count"],
        skippedCount: s["skipped_count"],
        errorCount: s["error_count"],
        suiteError: s["suite_error"],
        buildIds: (s["build_ids"] as number[]).map(String),
      })),
    );
    assert.ok(summary.testSuites.nodes[0].buildIds.includes(String(ids.unit)), "IDs of the latest jobs");
  });
});

describe("GraphQL: access, errors, switch, log and faults", () => {
  test("a project the caller cannot read is null, as is another project's pipeline; no token is anonymous", async (t) => {
    const { sim, bot, contributor, app, fork } = await seedWorld();
    t.after(() => sim.stop());
    const secret = sim.addProject({ path: "org/secret", visibility: "private" });
    const hidden = sim.runPipeline(secret.id, "main", { userId: bot.id });
    const forkPipeline = sim.runPipeline(fork.id, "main", { userId: contributor.id });
    const q = `query($fullPath: ID!, $id: CiPipelineID) { project(fullPath: $fullPath) { fullPath pipeline(id: $id) { id } } }`;

    const denied = await gql(sim, contributor, q, {
      fullPath: "org/secret",
      id: `gid://gitlab/Ci::Pipeline/${hidden.id}`,
    });
    assert.deepEqual([denied.status, denied.body], [200, { data: { project: null } }]);
    const allowed = await gql(sim, bot, q, { fullPath: "org/secret", id: `gid://gitlab/Ci::Pipeline/${hidden.id}` });
    assert.deepEqual(allowed.body.data.project.pipeline, { id: `gid://gitlab/Ci::Pipeline/${hidden.id}` });
    assert.deepEqual((await gql(sim, bot, q, { fullPath: "org/nope" })).body, { data: { project: null } });

    const elsewhere = await gql(sim, bot, q, {
      fullPath: "org/app",
      id: `gid://gitlab/Ci::Pipeline/${forkPipeline.id}`,
    });
    assert.deepEqual(elsewhere.body, { data: { project: { fullPath: "org/app", pipeline: null } } });

    // GraphqlController lets a request without a token through as anonymous: public data only.
    assert.deepEqual(
      (await gql(sim, undefined, q, { fullPath: "org/app" })).body.data.project.fullPath,
      app.pathWithNamespace,
    );
    assert.deepEqual((await gql(sim, undefined, q, { fullPath: "org/secret" })).body, { data: { project: null } });
  });

  test("a bad token is 401 in GitLab's GraphQL error shape; Bearer works like PRIVATE-TOKEN", async (t) => {
    const { sim, bot } = await seedWorld();
    t.after(() => sim.stop());
    const q = `{ project(fullPath: "org/app") { fullPath } }`;
    for (const headers of [{ "PRIVATE-TOKEN": "glpat-wrong" }, { Authorization: "Bearer glpat-wrong" }] as Array<
      Record<string, string>
    >) {
      const bad = await gql(sim, undefined, q, undefined, headers);
      assert.deepEqual([bad.status, bad.body], [401, { errors: [{ message: "Invalid token" }] }]);
    }
    const bearer = await gql(sim, undefined, q, undefined, { Authorization: `Bearer ${bot.token}` });
    assert.deepEqual([bearer.status, bearer.body], [200, { data: { project: { fullPath: "org/app" } } }]);
  });

  test("errors in a query are HTTP 200 with errors: unknown field, bad argument, another model's id", async (t) => {
    const { sim, bot } = await seedWorld();
    t.after(() => sim.stop());
    const unknown = await gql(sim, bot, `{ project(fullPath: "org/app") { fullPath webUrl } }`);
    assert.equal(unknown.status, 200);
    assert.equal(unknown.body.data, undefined, "a query that fails validation does not run");
    assert.match(unknown.body.errors[0].message, /webUrl/);

    const notGid = await gql(sim, bot, `{ project(fullPath: "org/app") { pipeline(id: "7") { id } } }`);
    assert.deepEqual([notGid.status, notGid.body.errors[0].message], [200, '"7" is not a valid Global ID']);
    const project = await gql(
      sim,
      bot,
      `query($id: CiPipelineID) { project(fullPath: "org/app") { pipeline(id: $id) { id } } }`,
      {
        id: "gid://gitlab/Project/1",
      },
    );
    assert.equal(project.status, 200);
    assert.match(project.body.errors[0].message, /does not represent an instance of Ci::Pipeline/);

    const badEnum = await gql(
      sim,
      bot,
      `{ project(fullPath: "org/app") { pipeline { jobs(statuses: [failed]) { count } } } }`,
    );
    assert.equal(badEnum.status, 200);
    assert.ok(badEnum.body.errors.length > 0, "enum values are upper case");

    const both = await gql(sim, bot, `{ project(fullPath: "org/app") { pipeline(iid: "1", sha: "abc") { id } } }`);
    assert.equal(both.status, 200);
    assert.deepEqual(both.body.data, { project: { pipeline: null } }, "id, iid and sha are mutually exclusive");
    assert.deepEqual(both.body.errors[0].path, ["project", "pipeline"]);

    const empty = await gql(sim, bot, "");
    assert.deepEqual([empty.status, empty.body], [200, { errors: [{ message: "No query string was present" }] }]);
    const big = await gql(sim, bot, `{ project(fullPath: "${"x".repeat(10_001)}") { id } }`);
    assert.deepEqual([big.status, big.body], [422, { errors: [{ message: "Query too large" }] }]);
  });

  test("a GitLab before 16.11 (inferred: gitlab-org/gitlab!147168) refuses pipeline(id:) with 200 and errors; iid works", async (t) => {
    const { sim, bot, p } = await failedPipeline();
    t.after(() => sim.stop());
    sim.setInstance({ version: "16.10.2-ee" });
    const byId = await gql(sim, bot, PIPELINE_QUERY, { fullPath: "org/app", id: `gid://gitlab/Ci::Pipeline/${p.id}` });
    assert.equal(byId.status, 200);
    assert.equal(byId.body.data, undefined, "no data: the query did not validate");
    assert.deepEqual(
      byId.body.errors.map((e: { message: string; extensions: unknown }) => [e.message, e.extensions]),
      [
        [
          "Field 'pipeline' doesn't accept argument 'id'",
          { code: "argumentNotAccepted", name: "pipeline", typeName: "Field", argumentName: "id" },
        ],
      ],
    );
    const byIid = await gql(sim, bot, `{ project(fullPath: "org/app") { pipeline(iid: "${p.iid}") { status } } }`);
    assert.deepEqual(byIid.body, { data: { project: { pipeline: { status: "FAILED" } } } });
    sim.setInstance({ version: "16.11.0" });
    const later = await gql(sim, bot, PIPELINE_QUERY, { fullPath: "org/app", id: `gid://gitlab/Ci::Pipeline/${p.id}` });
    assert.equal(later.body.data.project.pipeline.status, "FAILED", "16.11 answers");
  });

  test("turned off, POST /api/graphql is 404 (a GitLab stand-in without GraphQL); on again, it answers", async (t) => {
    const { sim, bot } = await seedWorld();
    t.after(() => sim.stop());
    const q = `{ project(fullPath: "org/app") { fullPath } }`;
    assert.equal(sim.graphqlEnabled, true);
    sim.setGraphqlEnabled(false);
    const off = await gql(sim, bot, q);
    assert.deepEqual([off.status, off.body], [404, "Not Found\n"]);
    assert.equal((await raw(sim, bot, "/projects/org%2Fapp")).status, 200, "REST is unaffected");
    sim.setGraphqlEnabled(true);
    assert.equal((await gql(sim, bot, q)).status, 200);

    const without = await GitLabSimulator.start({ graphql: false });
    t.after(() => without.stop());
    const u = without.addUser({ username: "u" });
    assert.equal((await gql(without, u, q)).status, 404);
    assert.deepEqual(
      without.requestLog.map(({ method, route, path, status, userId }) => ({ method, route, path, status, userId })),
      [{ method: "POST", route: "UNKNOWN", path: "/api/graphql", status: 404, userId: u.id }],
    );
  });

  test("every request is in the request log with route POST /api/graphql; faults apply to it", async (t) => {
    const { sim, bot } = await seedWorld();
    t.after(() => sim.stop());
    sim.clearRequestLog();
    const q = `{ project(fullPath: "org/app") { fullPath } }`;
    await gql(sim, bot, q);
    await gql(sim, undefined, q, undefined, { "PRIVATE-TOKEN": "glpat-wrong" });
    assert.deepEqual(
      sim.requestLog.map(({ method, route, path, status, userId }) => ({ method, route, path, status, userId })),
      [
        { method: "POST", route: "POST /api/graphql", path: "/api/graphql", status: 200, userId: bot.id },
        { method: "POST", route: "POST /api/graphql", path: "/api/graphql", status: 401, userId: undefined },
      ],
    );

    sim.failNext(1, 502, { route: /^POST \/api\/graphql$/ });
    const badGateway = await gql(sim, bot, q);
    assert.deepEqual([badGateway.status, badGateway.body], [502, "502 Bad Gateway\n"]);
    sim.setFaults({ rateLimitRate: 1, retryAfterSeconds: 3 });
    const limited = await fetch(`${sim.url}/api/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", "PRIVATE-TOKEN": bot.token },
      body: JSON.stringify({ query: q }),
    });
    assert.deepEqual([limited.status, limited.headers.get("retry-after")], [429, "3"]);
    sim.setFaults({ rateLimitRate: 0, errorRate: 1, errorStatus: 500 });
    const failed = await gql(sim, bot, q);
    assert.deepEqual([failed.status, failed.body], [500, { message: "500 Internal Server Error" }]);
    sim.clearFaults();
    sim.setFaults({ latencyMs: 150 });
    const started = Date.now();
    assert.equal((await gql(sim, bot, q)).status, 200);
    assert.ok(Date.now() - started >= 140, "latency applies too");
    assert.deepEqual(
      sim.requestLog.slice(2).map((r) => [r.route, r.status]),
      [
        ["POST /api/graphql", 502],
        ["POST /api/graphql", 429],
        ["POST /api/graphql", 500],
        ["POST /api/graphql", 200],
      ],
    );
  });
});
