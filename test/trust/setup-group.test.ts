/**
 * `trusted-mr-bot setup --group` through the CLI (`main`, with a config file) against the simulator: every project of
 * the group and its subgroups, one failing without stopping the others, the summary table, the exit code.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { main } from "../../src/cli.js";
import { AccessLevel, GitLabSimulator, type SimProject, type SimUser } from "../../src/simulator/gitlab-simulator.js";

function sink(): { stream: Writable; text(): string } {
  let text = "";
  return {
    stream: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString("utf8");
        callback();
      },
    }),
    text: () => text,
  };
}

describe("setup --group", () => {
  let sim: GitLabSimulator;
  let bot: SimUser;
  let api: SimProject;
  let cli: SimProject;
  let web: SimProject;
  let outside: SimProject;
  let configPath: string;
  let acmeId: number;

  before(async () => {
    sim = await GitLabSimulator.start();
    bot = sim.addUser({ username: "trusted-bot", bot: true });
    const acme = sim.addGroup({ path: "acme" });
    acmeId = acme.id;
    sim.addMember({ groupId: acme.id }, bot.id, AccessLevel.Maintainer);
    sim.addGroup({ path: "tools", parentId: acme.id });
    api = sim.addProject({ path: "acme/api" });
    cli = sim.addProject({ path: "acme/tools/cli" });
    web = sim.addProject({ path: "acme/web" });
    // A protected `*` rule letting Developers push: trusted branches would be open to them.
    sim.protectBranch(web.id, { name: "*", pushAccessLevel: 30, mergeAccessLevel: 40 });
    const other = sim.addGroup({ path: "other" });
    sim.addMember({ groupId: other.id }, bot.id, AccessLevel.Maintainer);
    outside = sim.addProject({ path: "other/app" });
    const dir = mkdtempSync(join(tmpdir(), "tmr-setup-group-"));
    configPath = join(dir, "trusted-mr-bot.yml");
    writeFileSync(
      configPath,
      stringify({
        gitlab: { url: sim.url },
        server: { public_url: "https://bot.example.com/webhook" },
        trust: { state_labels: { enabled: false } },
      }),
    );
  });
  after(() => sim.stop());

  async function setup(...args: string[]) {
    const stdout = sink();
    const stderr = sink();
    const code = await main(["setup", "--config", configPath, ...args], {
      stdout: stdout.stream,
      stderr: stderr.stream,
      env: { GITLAB_TOKEN: bot.token, GITLAB_WEBHOOK_SECRET: "s3cret" },
    });
    return { code, stdout: stdout.text(), stderr: stderr.text() };
  }

  /** The summary table's row for a project, as `[changes, problems, result]`. */
  function row(stdout: string, project: SimProject): string[] {
    const summary = stdout.slice(stdout.lastIndexOf("\nproject "));
    const line = summary.split("\n").find((l) => l.startsWith(`${project.pathWithNamespace} `));
    assert.ok(line, `no summary row for ${project.pathWithNamespace}:\n${stdout}`);
    return line
      .slice(project.pathWithNamespace.length)
      .trim()
      .split(/\s{2,}/);
  }

  it("--project and --group together, or neither, is a usage error", async () => {
    const both = await setup("--project", "acme/api", "--group", "acme");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--project and --group exclude each other/);
    const neither = await setup();
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /--project <group\/project> or --group <group> is required/);
  });

  it("--dry-run plans every project of the group and changes nothing", async () => {
    const plan = await setup("--group", "acme", "--dry-run");
    assert.equal(plan.code, 1, plan.stderr);
    assert.deepEqual(row(plan.stdout, api), ["would 3 create", "0", "ready"]);
    assert.deepEqual(row(plan.stdout, web), ["would 1 create", "1", "FAILED"]);
    for (const project of [api, cli, web]) {
      assert.deepEqual(sim.hooks(project.id), []);
      assert.deepEqual(sim.labels(project.id), []);
    }
  });

  it("setup --group over a group with three projects", async () => {
    const first = await setup("--group", "acme");
    assert.equal(first.code, 1, first.stdout);
    // The instance is reported once, then each project's steps under its name.
    assert.equal(first.stdout.match(/\[ok\] instance:/g)?.length, 1);
    assert.match(first.stdout, /\nacme\/tools\/cli\n {2}\[ok\] bot access:/);
    assert.match(
      first.stdout,
      /\nacme\/web\n(?: {2}\[.*\n)* {2}\[PROBLEM\] protected branches \*: .*Developers may push/,
    );
    assert.match(first.stderr, /setup failed for 1 of 3 project\(s\): acme\/web/);
    // The failing project does not stop the others (acme/web sorts between them).
    assert.deepEqual(row(first.stdout, api), ["3 create", "0", "set up"]);
    assert.deepEqual(row(first.stdout, cli), ["3 create", "0", "set up"]);
    // Its own trusted-* rule is created (it only restricts); the `*` rule is the problem.
    assert.deepEqual(row(first.stdout, web), ["1 create", "1", "FAILED"]);
    for (const project of [api, cli]) {
      assert.deepEqual(
        sim.hooks(project.id).map((h) => h.url),
        ["https://bot.example.com/webhook"],
      );
    }
    // The bot stays off the project whose trusted branches are open; a project outside the group is untouched.
    assert.deepEqual(sim.hooks(web.id), []);
    assert.deepEqual(sim.hooks(outside.id), []);
    assert.doesNotMatch(first.stdout, /other\/app/);

    // Again: nothing to create; the hook is saved again only because GitLab never shows its secret.
    const second = await setup("--group", String(acmeId));
    assert.equal(second.code, 1, second.stdout);
    assert.deepEqual(row(second.stdout, api), ["1 update", "0", "set up"]);
    assert.deepEqual(row(second.stdout, cli), ["1 update", "0", "set up"]);
    assert.deepEqual(row(second.stdout, web), ["none", "1", "FAILED"]);
    assert.equal(sim.hooks(api.id).length, 1);
  });

  it("an unknown group is an error naming it", async () => {
    const missing = await setup("--group", "nope");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /group nope not found/);
  });
});
