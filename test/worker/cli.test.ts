/**
 * The CLI: `check-config` and argument errors in-process through `main`, and `receiver` as a real process
 * (config file + env, a webhook over HTTP, SIGTERM → exit 0).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { main } from "../../src/cli.js";
import { GitLabSimulator } from "../../src/simulator/gitlab-simulator.js";
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from "../support/redis.js";
import { waitFor } from "../support/wait.js";
import { commandNote, postWebhook } from "../support/webhook-client.js";

const CLI = new URL("../../src/cli.ts", import.meta.url).pathname;

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

async function run(argv: string[], env: NodeJS.ProcessEnv) {
  const stdout = sink();
  const stderr = sink();
  const code = await main(argv, { stdout: stdout.stream, stderr: stderr.stream, env });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

function configFile(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), "tmr-cli-"));
  const path = join(dir, "trusted-mr-bot.yml");
  writeFileSync(path, stringify(content));
  return path;
}

const SECRETS = { GITLAB_TOKEN: "glpat-cli-test-token", GITLAB_WEBHOOK_SECRET: "cli-test-webhook-secret" };

describe("cli", () => {
  it("check-config prints the effective config with secrets masked", async () => {
    const path = configFile({ trust: { committer_users: ["alice"] }, worker: { concurrency: 2 } });
    const yaml = await run(["check-config", "--config", path], { ...SECRETS, PORT: "9999" });
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /^# effective configuration: .*trusted-mr-bot\.yml \+ environment; secrets masked/);
    assert.match(yaml.stdout, /token: "\*{8}"/);
    assert.match(yaml.stdout, /port: 9999/);
    assert.match(yaml.stdout, /concurrency: 2/);
    assert.match(yaml.stdout, /- alice/);
    const json = await run(["check-config", "-c", path, "--format", "json"], SECRETS);
    assert.equal(json.code, 0);
    const parsed = JSON.parse(json.stdout) as { gitlab: { token: string }; webhook: { secret: string } };
    assert.equal(parsed.gitlab.token, "********");
    assert.equal(parsed.webhook.secret, "********");
    for (const out of [yaml.stdout, json.stdout]) {
      for (const secret of Object.values(SECRETS)) assert.ok(!out.includes(secret));
    }
  });

  it("exits 2 with the key, the source and what is expected on a configuration error", async () => {
    const missing = await run(["check-config"], { GITLAB_TOKEN: SECRETS.GITLAB_TOKEN });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /webhook\.secret \(\(no file\) or env GITLAB_WEBHOOK_SECRET\): required/);
    const badPort = await run(["check-config"], { ...SECRETS, PORT: "eighty" });
    assert.equal(badPort.code, 2);
    assert.match(badPort.stderr, /PORT: expected an integer, got "eighty"/);
    const path = configFile({ worker: { concurency: 2 } });
    const typo = await run(["check-config", "--config", path], SECRETS);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /worker\.concurency .*unknown key/);
  });

  it("leak: check-config masks a password in a URL query string", async () => {
    const leaks = [
      "redis-query-pass",
      "redis-userinfo-pass",
      "glpat-query-private",
      "glpat-userinfo-token",
      "hook-query-token",
      "hook-fragment-token",
    ];
    const path = configFile({
      gitlab: { url: "https://glpat-userinfo-token@gitlab.example.com/?private_token=glpat-query-private" },
      redis: { url: "redis://:redis-userinfo-pass@redis.example.com:6379/0?password=redis-query-pass&db=2" },
      server: {
        public_url: "https://bot.example.com/webhook?access_token=hook-query-token&v=1#token=hook-fragment-token",
      },
    });
    const yaml = await run(["check-config", "--config", path], SECRETS);
    assert.equal(yaml.code, 0, yaml.stderr);
    const json = await run(["check-config", "--config", path, "--format", "json"], SECRETS);
    assert.equal(json.code, 0, json.stderr);
    for (const out of [yaml.stdout, json.stdout]) {
      for (const secret of leaks) assert.ok(!out.includes(secret), `check-config printed ${secret}:\n${out}`);
    }
    // What is not secret stays readable, so the output still answers "which Redis, which GitLab?".
    const parsed = JSON.parse(json.stdout) as {
      gitlab: { url: string };
      redis: { url: string };
      server: { public_url: string };
    };
    assert.equal(parsed.redis.url, "redis://:********@redis.example.com:6379/0?password=********&db=2");
    assert.equal(parsed.gitlab.url, "https://********@gitlab.example.com/?private_token=********");
    assert.equal(parsed.server.public_url, "https://bot.example.com/webhook?access_token=********&v=1#token=********");
  });

  it("leak: a YAML error does not echo a token", async () => {
    // A stray quote in the file: the yaml package's message quotes the offending lines, here the token's.
    const dir = mkdtempSync(join(tmpdir(), "tmr-cli-"));
    const path = join(dir, "trusted-mr-bot.yml");
    writeFileSync(
      path,
      'gitlab:\n  url: https://gitlab.example.com\n  token: "glpat-yaml-leak-1\nwebhook:\n  secret: hook-yaml-leak-2\n',
    );
    const child = spawn(process.execPath, ["--import", "tsx", CLI, "check-config", "--config", path], {
      env: { ...process.env, GITLAB_TOKEN: "", GITLAB_WEBHOOK_SECRET: "", TMR_CONFIG: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      output += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      output += d;
    });
    const [code] = await once(child, "exit");
    assert.equal(code, 2, output);
    assert.match(output, /is not valid YAML/);
    assert.match(output, /line \d+, column \d+/, "still says where");
    assert.match(output, /gitlab\.token/, "still names the key");
    for (const secret of ["glpat-yaml-leak-1", "hook-yaml-leak-2"]) {
      assert.ok(!output.includes(secret), `printed ${secret}:\n${output}`);
    }
  });

  it("exits 2 on an unknown command or option, 0 for --help", async () => {
    assert.equal((await run(["bogus"], SECRETS)).code, 2);
    const badFlag = await run(["serve", "--nope"], SECRETS);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Unknown option '--nope'/);
    const help = await run(["--help"], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: trusted-mr-bot/);
  });

  it("`receiver` runs as a process, queues a webhook, and exits 0 on SIGTERM", async () => {
    const prefix = uniquePrefix();
    const path = configFile({ redis: { prefix }, server: { host: "127.0.0.1", port: 0 }, log: { level: "info" } });
    const child = spawn(process.execPath, ["--import", "tsx", CLI, "receiver", "--config", path], {
      env: { ...process.env, ...SECRETS, REDIS_URL, PORT: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = once(child, "exit");
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const redis = testRedis();
    try {
      const url = await waitFor(
        "the receiver to listen",
        () => /"msg":"HTTP server listening"/.test(stdout) && /"url":"(http:[^"]+)"/.exec(stdout)?.[1],
        20_000,
      );
      const res = await postWebhook(url, commandNote("/trust"), {
        event: "Note Hook",
        token: SECRETS.GITLAB_WEBHOOK_SECRET,
      });
      assert.equal(res.status, 202, stderr);
      child.kill("SIGTERM");
      const [code] = await exited;
      assert.equal(code, 0, stderr);
      assert.match(stdout, /"msg":"service stopped"/);
      for (const secret of Object.values(SECRETS)) assert.ok(!stdout.includes(secret), "secret in the log");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await deletePrefix(redis, prefix);
      await redis.quit();
    }
  });
});

describe("check-config --gitlab", () => {
  /** A simulated GitLab with the bot's user, as given `setInstance`. */
  async function gitlab(instance: Parameters<GitLabSimulator["setInstance"]>[0]) {
    const sim = await GitLabSimulator.start();
    sim.setInstance(instance);
    const bot = sim.addUser({ username: "trusted-bot", bot: true });
    return { sim, env: { GITLAB_URL: sim.url, GITLAB_TOKEN: bot.token, GITLAB_WEBHOOK_SECRET: "s" } };
  }

  it("reports the URL, version, edition, bot user and the behaviours that depend on them", async (t) => {
    const { sim, env } = await gitlab({ version: "19.0.1-ee", enterprise: true });
    t.after(() => sim.stop());
    const { code, stdout, stderr } = await run(["check-config", "--gitlab", "-c", configFile({})], env);
    assert.equal(code, 0, stderr);
    assert.equal(
      stdout,
      [
        `GitLab: ${sim.url}`,
        "version: 19.0.1-ee",
        "edition: Enterprise Edition, tier unknown (the license is visible to administrators only)",
        "bot user: @trusted-bot (id 1)",
        "webhook signing: supported (19.0+, unless the webhook_signing_token feature flag is off; setup checks the hook); not configured",
        "pipeline variables: per project (a project setting); see `trusted-mr-bot setup --project <path> --dry-run`",
        "merge gating: same-project MRs: the trusted status in the MR's head pipeline (blocks merging with \"Pipelines must succeed\"); every MR: /merge-trusted (merges once the trusted pipeline for the head passed)",
        "",
      ].join("\n"),
    );
  });

  it("names a signing token that an 18.x GitLab will never use, and exits 1", async (t) => {
    const { sim, env } = await gitlab({ version: "18.11.0", enterprise: false, webhookSigning: false });
    t.after(() => sim.stop());
    const signing = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;
    const { code, stdout } = await run(["check-config", "--gitlab", "-c", configFile({})], {
      ...env,
      GITLAB_WEBHOOK_SIGNING_TOKEN: signing,
    });
    assert.equal(code, 1);
    assert.match(stdout, /^edition: Community Edition \(Free features\)$/m);
    assert.match(
      stdout,
      /^\[PROBLEM\] webhook signing: this GitLab \(version 18\.11\.0\) does not sign webhooks; unset webhook\.signing_token/m,
    );
  });
});
