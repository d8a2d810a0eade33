/**
 * `createPipeline` where the project does not let the bot set pipeline variables (GitLab.com's default for new
 * projects, `no_one_allowed`): GitLab's 400 creates nothing, the adapter creates the pipeline once without them and
 * skips them for that project from then on; projects that allow them still get them. And `getProject` reads the
 * setting, which GitLab shows to Maintainers only.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { configSchema } from "../../src/config/config.js";
import { GitbeakerAdapter } from "../../src/gitlab/gitbeaker-adapter.js";
import { AccessLevel, GitLabSimulator, type SimProject, type SimUser } from "../../src/simulator/gitlab-simulator.js";
import type { PipelineVariablesRole } from "../../src/simulator/model.js";

const VARIABLES = [
  { key: "TRUSTED_MR_IID", value: "7" },
  { key: "TRUSTED_SOURCE_SHA", value: "a".repeat(40) },
];
const ROUTE = "POST /projects/:id/pipeline";

describe("GitbeakerAdapter: pipeline variables", () => {
  let sim: GitLabSimulator;
  let bot: SimUser;
  let adapter: GitbeakerAdapter;
  let projects = 0;

  before(async () => {
    sim = await GitLabSimulator.start();
    bot = sim.addUser({ username: "trusted-bot", bot: true });
    const org = sim.addGroup({ path: "org" });
    sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
    sim.webhookMode = "drop";
    adapter = new GitbeakerAdapter({ config: configSchema.parse({ gitlab: { url: sim.url, token: bot.token } }) });
  });
  after(() => sim.stop());

  function project(role?: PipelineVariablesRole): SimProject {
    const app = sim.addProject({
      path: `org/app-${++projects}`,
      // The CI template's workflow rules: a push to a trusted branch starts no pipeline.
      pipelineOnPushFilter: (ref) => !ref.startsWith("trusted-"),
      ...(role ? { ciPipelineVariablesMinimumOverrideRole: role } : {}),
    });
    sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
    return app;
  }

  async function trustedBranch(app: SimProject, name: string): Promise<string> {
    const { after: sha } = sim.push(app.id, name.replace(/^trusted-/, ""), { userId: bot.id });
    await adapter.ensureTrustedBranch(app.id, name, sha);
    return sha;
  }

  /** The bot's pipeline-creation requests to `app`, as GitLab answered them. */
  function creations(app: SimProject): number[] {
    return sim.requestLog
      .filter((r) => r.route === ROUTE && r.userId === bot.id && r.path.startsWith(`/projects/${app.id}/`))
      .map((r) => r.status);
  }

  it("no_one_allowed: GitLab's 400 creates nothing; the pipeline is created once without variables", async () => {
    const app = project("no_one_allowed");
    const sha = await trustedBranch(app, "trusted-a-mr1");
    adapter.resetApiCalls();
    const result = await adapter.createPipeline(app.id, "trusted-a-mr1", VARIABLES);
    assert.ok("created" in result, JSON.stringify(result));
    assert.equal(result.withoutVariables, true);
    assert.equal(result.created.sha, sha);
    const pipelines = sim.pipelines(app.id).filter((p) => p.ref === "trusted-a-mr1");
    assert.equal(pipelines.length, 1, "exactly one pipeline");
    assert.deepEqual(pipelines[0]?.variables, []);
    assert.equal(pipelines[0]?.userId, bot.id);
    assert.deepEqual(creations(app), [400, 201]);
    assert.deepEqual(
      adapter.apiCalls().map((c) => [c.route, c.status, c.count]),
      [
        [ROUTE, 400, 1],
        [ROUTE, 201, 1],
      ],
    );
  });

  it("remembers the refusal for that project: the next pipeline there costs one request", async () => {
    const app = project("no_one_allowed");
    await trustedBranch(app, "trusted-b-mr1");
    await trustedBranch(app, "trusted-b-mr2");
    await adapter.createPipeline(app.id, "trusted-b-mr1", VARIABLES);
    const second = await adapter.createPipeline(app.id, "trusted-b-mr2", VARIABLES);
    assert.ok("created" in second && second.withoutVariables);
    assert.deepEqual(creations(app), [400, 201, 201]);
  });

  it("a project that allows the bot's role still gets the variables, whatever another project refused", async () => {
    const locked = project("no_one_allowed");
    await trustedBranch(locked, "trusted-c-mr1");
    await adapter.createPipeline(locked.id, "trusted-c-mr1", VARIABLES);

    const open = project("maintainer");
    await trustedBranch(open, "trusted-c-mr2");
    const result = await adapter.createPipeline(open.id, "trusted-c-mr2", VARIABLES);
    assert.ok("created" in result);
    assert.equal(result.withoutVariables, undefined);
    assert.deepEqual(
      sim.pipeline(open.id, result.created.id).variables.map((v) => v.key),
      ["TRUSTED_MR_IID", "TRUSTED_SOURCE_SHA"],
    );
    assert.deepEqual(creations(open), [201]);
  });

  it("owner: above the bot's Maintainer role, so the same fallback", async () => {
    const app = project("owner");
    await trustedBranch(app, "trusted-d-mr1");
    const result = await adapter.createPipeline(app.id, "trusted-d-mr1", VARIABLES);
    assert.ok("created" in result && result.withoutVariables);
    assert.deepEqual(creations(app), [400, 201]);
  });

  it("another refusal after the fallback stays GitLab's refusal, and a refusal with variables is not retried", async () => {
    const locked = project("no_one_allowed");
    const result = await adapter.createPipeline(locked.id, "no-such-ref", VARIABLES);
    assert.ok("refused" in result, JSON.stringify(result));
    // Variables are checked first (the chain's Build step); without them, the ref is.
    assert.match(result.refused, /Reference not found/);
    assert.deepEqual(creations(locked), [400, 400]);

    const open = project("maintainer");
    const refused = await adapter.createPipeline(open.id, "no-such-ref", VARIABLES);
    assert.ok("refused" in refused);
    assert.match(refused.refused, /Reference not found/);
    assert.deepEqual(creations(open), [400], "one request: nothing about variables was refused");
  });

  it("getProject reads the setting (GitLab shows it to Maintainers and up)", async () => {
    const app = project("no_one_allowed");
    const seen = await adapter.getProject(app.id);
    assert.equal(seen?.pipelineVariablesMinimumRole, "no_one_allowed");
    assert.equal(seen?.restrictUserDefinedVariables, true);
    assert.equal((await adapter.getProject(project().id))?.pipelineVariablesMinimumRole, "maintainer");

    const dev = sim.addUser({ username: "dev" });
    sim.addMember({ projectId: app.id }, dev.id, AccessLevel.Developer);
    const asDeveloper = new GitbeakerAdapter({
      config: configSchema.parse({ gitlab: { url: sim.url, token: dev.token } }),
    });
    const hidden = await asDeveloper.getProject(app.id);
    assert.equal(hidden?.id, app.id);
    assert.equal(hidden?.pipelineVariablesMinimumRole, undefined);
    assert.equal(hidden?.restrictUserDefinedVariables, undefined);
  });
});
