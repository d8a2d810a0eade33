/** `setup --project` against the simulator: the plan, the writes, idempotence, and the problems it names. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { configSchema } from "../../src/config/config.js";
import { ConfigError, PermanentError } from "../../src/errors.js";
import {
  AccessLevel,
  GitLabSimulator,
  type ProtectBranchInput,
  type SimProject,
  type SimUser,
} from "../../src/simulator/gitlab-simulator.js";
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
        ["instance", "ok"],
        ["bot access", "ok"],
        ["pipeline variables", "ok"],
        ["protected branches trusted-*", "create"],
        ["label no-detached-pipeline", "create"],
        ["label trust::waiting", "create"],
        ["label trust::trusted", "create"],
        ["label trust::stale", "create"],
        ["label trust::failed", "create"],
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
      ["no-detached-pipeline", "trust::waiting", "trust::trusted", "trust::stale", "trust::failed"],
    );
    assert.equal(sim.labels(app.id).find((l) => l.name === "trust::failed")?.color, "#dd2b0e");
    const again = await run("org/app", false).result;
    assert.deepEqual(
      again.map((s) => s.action),
      ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "update"],
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

  // ---- every protected-branch rule that can match a trusted branch (the most permissive one wins) ----

  let projects = 0;
  /** A fresh project in `org` (the bot is Maintainer there) with these protected-branch rules. */
  function projectWith(...rules: ProtectBranchInput[]): SimProject {
    const project = sim.addProject({ path: `org/guarded-${++projects}` });
    for (const rule of rules) sim.protectBranch(project.id, rule);
    return project;
  }
  const maintainersOnly = { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 };

  /** Setup refuses: a PermanentError whose hint names the fix, and no webhook (the bot stays off the project). */
  async function assertRefused(project: SimProject, fix: RegExp, over?: Record<string, unknown>) {
    const { lines, result } = run(project.pathWithNamespace, false, over);
    await assert.rejects(result, (e: unknown) => {
      assert.ok(e instanceof PermanentError, String(e));
      assert.match(e.hint ?? "", fix);
      return true;
    });
    assert.match(lines.join(""), /\[PROBLEM\] protected branches /);
    assert.deepEqual(sim.hooks(project.id), [], "no webhook while trusted branches are open");
  }

  it("attack: setup refuses a trusted-* rule that lets Developers push", async () => {
    const project = projectWith({ name: "trusted-*", pushAccessLevel: 30, mergeAccessLevel: 40 });
    await assertRefused(
      project,
      /protected branches trusted-\*: Developers may push; fix: set "Allowed to push" to Maintainers/,
    );
  });

  it("attack: setup refuses a trusted-* rule that lets Developers merge", async () => {
    const project = projectWith({ name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 30 });
    await assertRefused(project, /Developers may merge; fix: set "Allowed to merge" to Maintainers/);
  });

  it("attack: setup refuses a trusted-* rule that allows force push", async () => {
    const project = projectWith({ ...maintainersOnly, allowForcePush: true });
    await assertRefused(project, /force push is allowed; fix: disable "Allowed to force push"/);
  });

  it("attack: setup refuses a broader `*` rule that lets Developers push", async () => {
    const project = projectWith(maintainersOnly, { name: "*", pushAccessLevel: 30, mergeAccessLevel: 30 });
    await assertRefused(
      project,
      /protected branches \*: matches trusted branches too .*Developers may push; Developers may merge; fix: remove rule \* .* or set "Allowed to push and merge" to Maintainers/,
    );
    // A dry run names the same problem; and without a trusted-* rule, creating one does not make `*` safe.
    await assert.rejects(run(project.pathWithNamespace, true).result, PermanentError);
    const bare = projectWith({ name: "*-mr*", pushAccessLevel: 30, mergeAccessLevel: 40 });
    await assertRefused(bare, /protected branches \*-mr\*: matches trusted branches too/);
  });

  it("attack: setup refuses an exact trusted-name rule with a named user", async () => {
    const dave = sim.addUser({ username: "dave" });
    const project = projectWith(maintainersOnly, {
      name: "trusted-feature-mr3",
      pushAccessLevel: 0,
      mergeAccessLevel: 40,
      allowedToPushUserIds: [dave.id],
    });
    sim.addMember({ projectId: project.id }, dave.id, AccessLevel.Developer);
    await assertRefused(
      project,
      /protected branches trusted-feature-mr3: .*"Allowed to push" names @dave, who is neither the bot nor in trust\.committer_users; fix: .*remove @dave from "Allowed to push"/,
    );
  });

  it("attack: group, deploy-key and named-user grants made through the API are problems", async () => {
    const devs = sim.addGroup({ path: "devs" });
    const erin = sim.addUser({ username: "erin" });
    const project = projectWith();
    sim.addMember({ projectId: project.id }, erin.id, AccessLevel.Developer);
    // As a Premium admin would: `POST /protected_branches` with `allowed_to_push` / `allowed_to_merge` entries.
    const response = await fetch(`${sim.url}/api/v4/projects/${project.id}/protected_branches`, {
      method: "POST",
      headers: { "PRIVATE-TOKEN": bot.token, "Content-Type": "application/json" },
      body: JSON.stringify({
        name: "trusted-*",
        push_access_level: 40,
        merge_access_level: 40,
        allowed_to_push: [{ deploy_key_id: 7 }],
        allowed_to_merge: [{ group_id: devs.id }, { user_id: erin.id }],
      }),
    });
    assert.equal(response.status, 201);
    await assertRefused(
      project,
      /fix: remove deploy key 7 from "Allowed to push"; remove @erin from "Allowed to merge"; remove group \d+ from "Allowed to merge"/,
    );
  });

  it("reads every page of protected-branch rules", async () => {
    const rules = Array.from({ length: 120 }, (_, i) => ({
      name: `release-${i}`,
      pushAccessLevel: 30,
      mergeAccessLevel: 30,
    }));
    const project = projectWith(maintainersOnly, ...rules, {
      name: "*-mr*",
      pushAccessLevel: 30,
      mergeAccessLevel: 40,
    });
    await assertRefused(project, /protected branches \*-mr\*: matches trusted branches too/);
  });

  it("setup accepts Maintainer-only trusted-* rule", async () => {
    const carol = sim.addUser({ username: "carol" });
    const project = projectWith(
      { ...maintainersOnly, allowedToPushUserIds: [bot.id, carol.id] },
      // Rules that match no trusted branch are none of setup's business.
      { name: "main", pushAccessLevel: 30, mergeAccessLevel: 30, allowForcePush: true },
      { name: "release/*", pushAccessLevel: 30, mergeAccessLevel: 30 },
      // Another rule that matches trusted branches is fine when it is as strict.
      { name: "trusted-*-mr*", pushAccessLevel: 0, mergeAccessLevel: 40 },
    );
    const steps = await run(project.pathWithNamespace, false, { trust: { committer_users: ["@Carol"] } }).result;
    assert.deepEqual(
      steps.filter((s) => s.what.startsWith("protected")).map((s) => [s.what, s.action]),
      [
        ["protected branches trusted-*", "ok"],
        ["protected branches trusted-*-mr*", "ok"],
      ],
    );
    assert.equal(sim.hooks(project.id).length, 1);
  });

  it("an unknown project is a clear error", async () => {
    await assert.rejects(
      run("org/nope", true).result,
      (e: unknown) => e instanceof PermanentError && /not found/.test(e.message),
    );
  });
});
