/**
 * `setup` reads the project's "Minimum role to use pipeline variables" and says what it means for the trusted
 * pipeline: never a problem (the bot starts the pipeline either way), only whether the bot passes its TRUSTED_*
 * variables or the CI template needs `bot-username` to recognize the bot's pipelines.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { configSchema } from "../../src/config/config.js";
import { ACCESS_LEVEL, type Project } from "../../src/gitlab/port.js";
import { AccessLevel, GitLabSimulator, type SimUser } from "../../src/simulator/gitlab-simulator.js";
import type { PipelineVariablesRole } from "../../src/simulator/model.js";
import { pipelineVariablesReport, runSetup } from "../../src/trust/setup.js";
import { captureLogger } from "../support/capture-logger.js";

const bot = { id: 1, username: "trusted-bot" };
const base: Project = {
  id: 7,
  pathWithNamespace: "org/app",
  webUrl: "https://gitlab.example.com/org/app",
  defaultBranch: "main",
};

describe("pipelineVariablesReport", () => {
  const report = (over: Partial<Project>, level: number = ACCESS_LEVEL.maintainer) =>
    pipelineVariablesReport({ ...base, ...over }, level, bot);

  it("no_one_allowed (GitLab.com's default): without variables, checked by the bot's user", () => {
    const text = report({ pipelineVariablesMinimumRole: "no_one_allowed", restrictUserDefinedVariables: true });
    assert.match(text, /^no_one_allowed \(GitLab\.com's default for new projects\): nobody may set pipeline variables/);
    assert.match(text, /the bot starts trusted pipelines without variables/);
    assert.match(text, /input bot-username: trusted-bot/);
  });

  it("a role the bot has: it passes its variables", () => {
    for (const role of ["developer", "maintainer"] as const) {
      const text = report({ pipelineVariablesMinimumRole: role, restrictUserDefinedVariables: true });
      assert.match(
        text,
        new RegExp(`^${role}: @trusted-bot is Maintainer, so the bot passes its TRUSTED_\\* variables`),
      );
      assert.match(text, /bot-username: trusted-bot as well/);
    }
  });

  it("a role above the bot's: without variables", () => {
    const text = report({ pipelineVariablesMinimumRole: "owner", restrictUserDefinedVariables: true });
    assert.match(
      text,
      /^owner: more than @trusted-bot's Maintainer, so the bot starts trusted pipelines without variables/,
    );
    const developerBot = report(
      { pipelineVariablesMinimumRole: "maintainer", restrictUserDefinedVariables: true },
      ACCESS_LEVEL.developer,
    );
    assert.match(developerBot, /^maintainer: more than @trusted-bot's Developer/);
  });

  it("restrict_user_defined_variables off: variables for everyone, whatever the role", () => {
    const text = report({ pipelineVariablesMinimumRole: "no_one_allowed", restrictUserDefinedVariables: false });
    assert.match(text, /^not restricted \(restrict_user_defined_variables is off\).*passes its TRUSTED_\* variables/);
  });

  it("GitLab before 17.1 (no role), a value the bot does not know, or nothing shown", () => {
    assert.match(
      report({ restrictUserDefinedVariables: true }),
      /^restricted to Maintainers \(GitLab before 17\.1\): @trusted-bot is Maintainer, so the bot passes/,
    );
    assert.match(
      report({ pipelineVariablesMinimumRole: "unknown" }),
      /tries its TRUSTED_\* variables, and where GitLab refuses them the bot starts trusted pipelines without variables/,
    );
    assert.match(report({}), /^GitLab does not say: the bot tries its TRUSTED_\* variables/);
  });
});

describe("runSetup reports the project's pipeline-variable setting", () => {
  let sim: GitLabSimulator;
  let user: SimUser;
  let projects = 0;
  const logger = captureLogger("warn").logger;

  before(async () => {
    sim = await GitLabSimulator.start();
    user = sim.addUser({ username: "trusted-mr-bot", bot: true });
    const org = sim.addGroup({ path: "org" });
    sim.addMember({ groupId: org.id }, user.id, AccessLevel.Maintainer);
  });
  after(() => sim.stop());

  async function setup(role?: PipelineVariablesRole) {
    const project = sim.addProject({
      path: `org/app-${++projects}`,
      ...(role ? { ciPipelineVariablesMinimumOverrideRole: role } : {}),
    });
    const lines: string[] = [];
    const config = configSchema.parse({
      gitlab: { url: sim.url, token: user.token },
      webhook: { secret: "s3cret" },
      server: { public_url: "https://bot.example.com/webhook" },
    });
    const steps = await runSetup({
      config,
      logger,
      projectPath: project.pathWithNamespace,
      dryRun: true,
      out: { write: (t: string) => lines.push(t) },
    });
    return { steps, output: lines.join("") };
  }

  it("no_one_allowed: an [ok] line saying the bot starts pipelines without variables and what to set", async () => {
    const { steps, output } = await setup("no_one_allowed");
    assert.deepEqual(
      steps.filter((s) => s.what === "pipeline variables").map((s) => s.action),
      ["ok"],
    );
    assert.match(
      output,
      /^\[ok\] pipeline variables: no_one_allowed \(GitLab\.com's default for new projects\): nobody may set pipeline variables, so the bot starts trusted pipelines without variables, and the CI template checks them by the bot's user \(set the CI template's input bot-username: trusted-mr-bot\)$/m,
    );
  });

  it("maintainer (the self-managed default): the bot passes its variables", async () => {
    const { output } = await setup();
    assert.match(
      output,
      /^\[ok\] pipeline variables: maintainer: @trusted-mr-bot is Maintainer, so the bot passes its TRUSTED_\* variables/m,
    );
  });
});
