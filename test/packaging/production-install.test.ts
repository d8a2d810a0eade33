/**
 * What the production image runs, run here: `tsc` builds `dist/` into a temporary directory outside the checkout,
 * `npm ci --omit=dev` installs production dependencies only beside it (the Dockerfile's `deps` stage runs the same
 * command), and `node dist/cli.js serve` (the image's ENTRYPOINT, and `npm start`) runs the bot from there against
 * the GitLab simulator and a real Redis, through a whole `/trust`. No tsx and no dev dependency can be reached: the
 * directory is outside the repository, so Node's module resolution never climbs into its node_modules.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { stringify as toYaml } from "yaml";
import { AccessLevel, GitLabSimulator } from "../../src/simulator/gitlab-simulator.js";
import { trustedBranchName } from "../../src/trust/decide.js";
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from "../support/redis.js";
import { TEST_SECRET } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tmr-production-"));
  // `npm run build` with another outDir, without its type check (the suite's `tsc --noEmit` does that): the same
  // JavaScript, in half the time.
  const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
  await run(process.execPath, [tsc, "-p", "tsconfig.build.json", "--noCheck", "--outDir", join(dir, "dist")], {
    cwd: ROOT,
  });
  for (const file of ["package.json", "package-lock.json"]) await cp(join(ROOT, file), join(dir, file));
  await run("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
    cwd: dir,
    env: withoutNpmConfig(process.env),
  });
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `npm test` exports its own settings as npm_config_*; the install here must be an ordinary one. */
function withoutNpmConfig(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.toLowerCase().startsWith("npm_")));
}

describe("production install", () => {
  it("has no dev dependency: neither tsx nor typescript is installed", async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      devDependencies: Record<string, string>;
      scripts: Record<string, string>;
    };
    for (const name of Object.keys(pkg.devDependencies)) {
      await assert.rejects(readFile(join(dir, "node_modules", name, "package.json")), `${name} was installed`);
    }
    assert.equal(pkg.scripts["start"], "node dist/cli.js serve", "npm start runs the built output");
  });

  it("node dist/cli.js serve serves /healthz, /readyz and /metrics and carries out a /trust on a fork MR", async () => {
    const sim = await GitLabSimulator.start();
    const redis = testRedis();
    const prefix = uniquePrefix();
    let bot: ChildProcess | undefined;
    try {
      // The cast of test/support/trust-world.ts, reduced to one committer and one contributor with a fork.
      const botUser = sim.addUser({ username: "trusted-bot", name: "Trusted Bot", bot: true });
      const maya = sim.addUser({ username: "maya", name: "Maya Maintainer" });
      const dave = sim.addUser({ username: "dave", name: "Dave Contributor" });
      const org = sim.addGroup({ path: "org" });
      sim.addMember({ groupId: org.id }, botUser.id, AccessLevel.Maintainer);
      sim.addMember({ groupId: org.id }, maya.id, AccessLevel.Maintainer);
      const app = sim.addProject({
        path: "org/app",
        ciJobs: [{ name: "test", stage: "test" }],
        pipelineOnPushFilter: (ref: string) => !ref.startsWith("trusted-"),
      });
      sim.protectBranch(app.id, { name: "main", pushAccessLevel: 40, mergeAccessLevel: 30 });
      sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
      const fork = sim.fork(app.id, { ownerId: dave.id, path: "dave/app" });

      // A config file as an operator writes one, secrets from the environment (as the Kubernetes manifests do).
      const configPath = join(dir, "trusted-mr-bot.yml");
      await writeFile(
        configPath,
        toYaml({
          gitlab: { url: sim.url },
          redis: { prefix },
          server: { host: "127.0.0.1", port: 0 },
          sweep: { interval_seconds: 0 },
          log: { level: "info" },
        }),
      );
      // What the image's ENTRYPOINT runs (`npm start` runs the same, but npm does not pass SIGTERM on and wait).
      const child = spawn(process.execPath, ["dist/cli.js", "serve"], {
        cwd: dir,
        env: {
          ...withoutNpmConfig(process.env),
          NODE_ENV: "production",
          TMR_CONFIG: configPath,
          GITLAB_TOKEN: botUser.token,
          GITLAB_WEBHOOK_SECRET: TEST_SECRET,
          REDIS_URL,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      bot = child;
      const exited = once(child, "exit");
      let output = "";
      child.stdout?.setEncoding("utf8").on("data", (d: string) => {
        output += d;
      });
      child.stderr?.setEncoding("utf8").on("data", (d: string) => {
        output += d;
      });
      const url = await Promise.race([
        waitFor(
          "the bot to listen",
          () => logLine(output, "HTTP server listening")?.["url"] as string | undefined,
          20_000,
        ),
        exited.then(([code]) => {
          throw new Error(`the bot exited with ${code} before listening:\n${output}`);
        }),
      ]);

      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
      assert.match(await (await fetch(`${url}/metrics`)).text(), /^# TYPE tmr_webhooks_total counter$/m);

      sim.addHook(app.id, {
        url: `${url}/webhook`,
        token: TEST_SECRET,
        pushEvents: true,
        mergeRequestsEvents: true,
        noteEvents: true,
        confidentialNoteEvents: true,
        pipelineEvents: true,
      });
      sim.push(fork.id, "feature", { userId: dave.id });
      const mr = sim.openMergeRequest({
        sourceProjectId: fork.id,
        sourceBranch: "feature",
        authorId: dave.id,
        targetProjectId: app.id,
      });
      await waitFor(
        "the bot's pending status",
        () => sim.statuses(app.id, mr.sha).some((s) => s.status === "pending"),
        20_000,
      );

      sim.comment(app.id, mr.iid, maya.id, "/trust");
      const trusted = trustedBranchName("trusted-", mr);
      const pipeline = await waitFor(
        "the trusted pipeline",
        () => sim.pipelines(app.id).find((p) => p.ref === trusted),
        20_000,
      );
      assert.equal(pipeline.sha, mr.sha);
      assert.equal(pipeline.protectedRef, true);
      assert.equal(sim.branch(app.id, trusted)?.sha, mr.sha);

      // As `docker stop` and Kubernetes stop it: SIGTERM, an orderly shutdown, exit 0.
      child.kill("SIGTERM");
      const [code, signal] = await exited;
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, output);
      assert.ok(logLine(output, "shutting down"), "the bot saw the signal");
      assert.ok(logLine(output, "service stopped"), "the bot closed everything");
      bot = undefined;
    } finally {
      if (bot?.exitCode === null) bot.kill("SIGKILL");
      await sim.stop();
      await deletePrefix(redis, prefix);
      await redis.quit();
    }
  });
});

/** The first pino line (JSON) whose msg is `msg`. */
function logLine(output: string, msg: string): Record<string, unknown> | undefined {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed["msg"] === msg) return parsed;
    } catch {
      // A line still being written.
    }
  }
  return undefined;
}
