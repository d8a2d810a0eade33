/** `setup --project` against the simulator: the plan, the writes, idempotence, and the problems it names. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { configSchema } from "../../src/config/config.js";
import { ConfigError, PermanentError } from "../../src/errors.js";
import { AccessLevel, GitLabSimulator, type SimProject, type SimUser } from "../../src/simulator/gitlab-simulator.js";
import { runSetup } from "../../src/trust/setup.js";
import { captureLogger } from "../support/capture-logger.js";

describe("runSetup", () => {
  let sim: GitLabSimulator;
  let bot: SimUser;
  let app: SimProject;
  let weak: SimProject;
  const logger = captureLogger("warn").logger;

  before(async () => {
    sim = await GitLabSimulator.start();
    bot = sim.addUser({ username: "trusted-bot", bot: true });
    const org = sim.addGroup({ path: "org" });
    sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
    app = sim.addProject({ path: "org/app" });
    const other = sim.addGroup({ path: "other" });
    sim.addMember({ groupId: other.id }, bot.id, AccessLevel.Developer);
    weak = sim.addProject({ path: "other/lib" });
  });
  after(() => sim.stop());

  const config = (over: Record<string, unknown> = {}) =>
    configSchema.parse({
      gitlab: { url: sim.url, token: bot.token },
      webhook: { secret: "s3cret" },
      server: { public_url: "https://bot.example.com/webhook" },
      ...over,
    });

  function run(projectPath: string, dryRun: boolean, over?: Record<string, unknown>) {
    const lines: string[] = [];
    const out = { write: (t: string) => lines.push(t) };
    return { lines, result: runSetup({ config: config(over), logger, projectPath, dryRun, out }) };
  }

  it("--dry-run prints the plan and changes nothing", async () => {
    const { lines, result } = run("org/app", true);
    const steps = await result;
    assert.deepEqual(
      steps.map((s) => [s.what, s.action]),
      [
        ["bot access", "ok"],
        ["protected branches trusted-*", "create"],
        ["label no-detached-pipeline", "create"],
        ["webhook https://bot.example.com/webhook", "create"],
      ],
    );
    assert.match(lines.join(""), /\[would create\] protected branches trusted-\*/);
    assert.deepEqual(sim.hooks(app.id), []);
    assert.deepEqual(sim.labels(app.id), []);
  });

  it("configures the project, and a second run changes nothing but re-saving the hook", async () => {
    await run("org/app", false).result;
    const [hook] = sim.hooks(app.id);
    assert.ok(hook);
    assert.deepEqual(
      [hook.url, hook.token, hook.pushEvents, hook.mergeRequestsEvents, hook.noteEvents, hook.pipelineEvents],
      ["https://bot.example.com/webhook", "s3cret", true, true, true, true],
    );
    assert.deepEqual(
      sim.labels(app.id).map((l) => l.name),
      ["no-detached-pipeline"],
    );
    const again = await run("org/app", false).result;
    assert.deepEqual(
      again.map((s) => s.action),
      ["ok", "ok", "ok", "update"],
    );
    assert.equal(sim.hooks(app.id).length, 1);
  });

  it("names the problem when the bot is not a Maintainer", async () => {
    await assert.rejects(
      run("other/lib", false).result,
      (e: unknown) => e instanceof PermanentError && /needs Maintainer/.test(e.hint ?? ""),
    );
    assert.deepEqual(sim.hooks(weak.id), []);
  });

  it("without a webhook URL it says where to set one", async () => {
    await assert.rejects(
      run("org/app", true, { server: {} }).result,
      (e: unknown) => e instanceof ConfigError && /--webhook-url or set server.public_url/.test(e.message),
    );
  });

  it("an unknown project is a clear error", async () => {
    await assert.rejects(
      run("org/nope", true).result,
      (e: unknown) => e instanceof PermanentError && /not found/.test(e.message),
    );
  });
});
