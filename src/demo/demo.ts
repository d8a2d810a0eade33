/**
 * `trusted-mr-bot demo`: the whole trust workflow, end to end, on the embedded defaults. It starts a private
 * redis-server, the bundled GitLab simulator and the bot (receiver + worker, talking to the simulator over HTTP
 * exactly as to GitLab, webhooks coming back over HTTP), then plays a fork MR through open, `/trust`, a failing
 * pipeline, a fix (stale trust), `/trust` again, success, merge and cleanup, printing what a committer would see.
 */
import { randomBytes } from "node:crypto";
import { loadConfig } from "../config/config.js";
import { startLocalRedis } from "../local-redis.js";
import { createLogger, type Logger } from "../logger.js";
import { startService } from "../runtime.js";
import { AccessLevel, GitLabSimulator } from "../simulator/gitlab-simulator.js";
import { trustedBranchName } from "../trust/decide.js";
import { isStickyNoteBody } from "../trust/state.js";

export interface DemoOptions {
  out: NodeJS.WritableStream;
  /** Bot log level; the bot's JSON logs go to stderr so the transcript stays readable. */
  logLevel?: string;
  /** Use this Redis instead of starting a private redis-server. */
  redisUrl?: string;
}

const PREFIX = "trusted-";
const STATUS = "trusted-pipeline";
/** Every wait in the demo is for the bot to converge; generous, since CI machines are shared. */
const WAIT_MS = 30_000;

export async function runDemo(options: DemoOptions): Promise<void> {
  const say = (line = "") => options.out.write(`${line}\n`);
  const logger = createLogger({ level: options.logLevel ?? "warn", destination: process.stderr });
  const cleanups: Array<() => Promise<void>> = [];
  /** What to print when a wait times out: the last webhooks and pipelines, to tell a bot bug from a lost event. */
  let diagnostics: (() => string) | undefined;
  try {
    const redis = options.redisUrl ? undefined : await startLocalRedis();
    if (redis) cleanups.push(() => redis.stop());
    const sim = await GitLabSimulator.start();
    cleanups.push(() => sim.stop());

    // The world: group acme with a maintainer, an outside contributor with a fork, and the bot's own user.
    const acme = sim.addGroup({ path: "acme" });
    const maria = sim.addUser({ username: "maria", name: "Maria (maintainer)" });
    const carl = sim.addUser({ username: "carl", name: "Carl (contributor)" });
    const bot = sim.addUser({ username: "trusted-mr-bot", name: "Trusted MR Bot", bot: true });
    sim.addMember({ groupId: acme.id }, maria.id, AccessLevel.Maintainer);
    sim.addMember({ groupId: acme.id }, bot.id, AccessLevel.Maintainer);
    const project = sim.addProject({
      path: "acme/rocket",
      namespaceGroupId: acme.id,
      ciJobs: [
        { name: "check-trusted-sha", stage: ".pre" },
        { name: "unit-tests", stage: "test" },
        { name: "cloud-integration", stage: "test" },
      ],
      // The CI template's `workflow: rules` create no pipeline for pushes to trusted branches.
      pipelineOnPushFilter: (ref) => !ref.startsWith(PREFIX),
      // GitLab.com's default for new projects (17.7+): nobody may set pipeline variables, not even the bot.
      ciPipelineVariablesMinimumOverrideRole: "no_one_allowed",
    });
    const fork = sim.fork(project.id, { ownerId: carl.id, path: "carl/rocket" });
    diagnostics = () =>
      [
        ...sim.deliveryLog.slice(-30).map((d) => `  webhook ${d.event} -> ${d.status} (${d.idempotencyKey})`),
        ...sim.pipelines(project.id).map((p) => `  pipeline #${p.id} ${p.ref} ${short(p.sha)} ${p.status} ${p.source}`),
        ...sim
          .pipelines(project.id)
          .flatMap((p) =>
            sim
              .statuses(project.id, p.sha)
              .map((st) => `  status ${st.name} ${st.ref} ${st.status} -> pipeline #${st.pipelineId}`),
          ),
      ].join("\n");
    const names = new Map([maria, carl, bot].map((u) => [u.id, u.id === bot.id ? "bot" : `@${u.username}`]));

    const secret = randomBytes(16).toString("hex");
    const { config } = loadConfig({
      env: {},
      defaults: {
        gitlab: { url: sim.url, token: bot.token },
        webhook: { secret },
        redis: { url: options.redisUrl ?? redis!.url, prefix: `tmr-demo-${randomBytes(4).toString("hex")}` },
        server: { host: "127.0.0.1", port: 0 },
        worker: { backoff_base_ms: 100, backoff_max_ms: 2000 },
        sweep: { interval_seconds: 0, grace_seconds: 0 },
        log: { level: options.logLevel ?? "warn" },
      },
    });
    const service = await startService({ config, logger, roles: { receiver: true, worker: true } });
    cleanups.push(() => service.close());
    const webhookUrl = `${service.receiverUrl}/webhook`;

    say("trusted-mr-bot demo");
    say(`  GitLab simulator  ${sim.url}   (project acme/rocket, fork carl/rocket)`);
    say(`  bot receiver      ${webhookUrl}`);
    say(`  redis             ${config.redis.url}`);
    say();

    step(say, 1, "A maintainer runs `trusted-mr-bot setup --project acme/rocket`");
    const { runSetup } = await import("../trust/setup.js");
    await runSetup({
      config,
      logger,
      projectPath: "acme/rocket",
      dryRun: false,
      webhookUrl,
      out: { write: (text: string) => options.out.write(text.replace(/^(?=.)/gm, "  ")) },
    });
    say();

    step(say, 2, "Carl pushes a branch to his fork and opens a merge request");
    sim.push(fork.id, "fix-parser", { userId: carl.id, message: "Fix the config parser" });
    const mr = sim.openMergeRequest({
      sourceProjectId: fork.id,
      sourceBranch: "fix-parser",
      targetProjectId: project.id,
      authorId: carl.id,
      title: "Fix the config parser",
    });
    const comment = () => stickyComment(sim, project.id, mr.iid, bot.id);
    const trustedBranch = trustedBranchName(PREFIX, mr);
    await until("the bot's comment on the new MR", () => comment() !== undefined);
    await sim.idle();
    showMr(say, sim, project.id, mr.iid, names);

    step(say, 3, "Maria reviews the code and comments `/trust`");
    const head1 = sim.mergeRequest(project.id, mr.iid).sha;
    const trustNote = sim.comment(project.id, mr.iid, maria.id, "Looks good to me.\n\n/trust");
    const pipeline1 = await until("the trusted pipeline", () => trustedPipeline(sim, project.id, head1));
    say(`  trusted branch ${trustedBranch} -> ${short(head1)}; protected pipeline #${pipeline1.id} created`);
    const creator = pipeline1.userId === bot.id ? `@${bot.username}` : `user ${pipeline1.userId}`;
    say(
      `  started by ${creator} through the API (source ${pipeline1.source}) on the trusted commit ${short(pipeline1.sha)}`,
    );
    say(
      `  pipeline variables: ${
        pipeline1.variables.length > 0
          ? pipeline1.variables.map((v) => `${v.key}=${v.value}`).join(" ")
          : "none (the project allows none: no_one_allowed, GitLab.com's default)"
      }`,
    );
    say(`  jobs: ${pipeline1.jobs.map((j) => `${j.name} (${j.stage})`).join(", ")}`);
    say(
      `  check-trusted-sha passes a pipeline that ${creator} started through the API on the protected trusted branch`,
    );
    say(`  (CI template input bot-username: ${bot.username}); any other pipeline there is checked against the MR`);
    sim.setPipelineStatus(project.id, pipeline1.id, "running");
    await untilStatus(sim, project.id, mr.iid, head1, "running");
    // The bot acknowledges the command after the note says what it did.
    await until(
      "the bot's emoji on the /trust comment",
      () => sim.awardEmoji(project.id, mr.iid, trustNote.id).length > 0,
    );
    showMr(say, sim, project.id, mr.iid, names);

    step(say, 4, "The protected integration tests fail");
    sim.setJobStatus(project.id, pipeline1.id, "check-trusted-sha", "success");
    sim.setJobStatus(project.id, pipeline1.id, "unit-tests", "success");
    sim.setTestReportSummary(project.id, pipeline1.id, {
      total: 42,
      success: 40,
      failed: 2,
      skipped: 0,
      error: 0,
      suites: [{ name: "cloud-integration", total: 12, failed: 2 }],
    });
    sim.setJobStatus(project.id, pipeline1.id, "cloud-integration", "failed");
    await untilStatus(sim, project.id, mr.iid, head1, "failed");
    // The rendered lines, not the hidden record (whose JSON can say "failed" a moment before the text does).
    await until("the comment to show the failure", () => /Failed jobs: /.test(comment() ?? ""));
    showMr(say, sim, project.id, mr.iid, names);

    step(say, 5, "Carl pushes a fix: the trust is stale until a committer reviews the new commit");
    sim.push(fork.id, "fix-parser", { userId: carl.id, message: "Handle empty sections" });
    const head2 = sim.mergeRequest(project.id, mr.iid).sha;
    await until(
      "the stale notice",
      () => (comment() ?? "").includes(short(head2)) && /stale|review again/i.test(comment() ?? ""),
    );
    await sim.idle();
    say(`  trusted pipelines for the new commit: ${countTrusted(sim, project.id, head2)} (nothing runs with secrets)`);
    showMr(say, sim, project.id, mr.iid, names);

    step(say, 6, "Maria reviews the increment and trusts the new commit, naming it: `/trust <sha>`");
    sim.comment(project.id, mr.iid, maria.id, `/trust ${head2}`);
    const pipeline2 = await until("the second trusted pipeline", () => trustedPipeline(sim, project.id, head2));
    sim.setPipelineStatus(project.id, pipeline2.id, "running");
    sim.setTestReportSummary(project.id, pipeline2.id, { total: 42, success: 42, failed: 0, skipped: 0, error: 0 });
    for (const job of ["check-trusted-sha", "unit-tests", "cloud-integration"]) {
      sim.setJobStatus(project.id, pipeline2.id, job, "success");
    }
    await untilStatus(sim, project.id, mr.iid, head2, "success");
    await until("the comment to show success", () => /\*\*success\*\*/.test(comment() ?? ""));
    showMr(say, sim, project.id, mr.iid, names);

    step(
      say,
      7,
      "Maria comments `/merge-trusted`: the bot merges through GitLab's merge API pinned to the trusted commit, then deletes the trusted branch",
    );
    sim.comment(project.id, mr.iid, maria.id, "/merge-trusted");
    await until("the trusted branch to be deleted", () => !sim.branch(project.id, trustedBranch));
    await sim.idle();
    showMr(say, sim, project.id, mr.iid, names);

    const apiCalls = sim.requestLog.filter((r) => r.userId === bot.id).length;
    const errors = sim.requestLog.filter((r) => r.status >= 500 && r.status !== 503);
    say("Done.");
    say(`  The bot made ${apiCalls} GitLab API calls; ${sim.deliveryLog.length} webhooks were delivered.`);
    say(`  Trusted pipelines: ${countTrusted(sim, project.id)} (one per trusted commit).`);
    if (errors.length) throw new Error(`the simulator answered ${errors.length} requests with 5xx (unknown routes?)`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    logger.flush?.();
  }

  async function until<T>(what: string, probe: () => T | undefined | false): Promise<T> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const value = probe();
      if (value) return value;
      if (Date.now() > deadline) {
        const recent = diagnostics?.() ?? "";
        throw new Error(`demo: timed out waiting for ${what}${recent ? `\n${recent}` : ""}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async function untilStatus(sim: GitLabSimulator, projectId: number, iid: number, sha: string, state: string) {
    await until(`commit status ${state} on ${short(sha)}`, () =>
      sim.statuses(projectId, sha).some((s) => s.name === STATUS && s.status === state),
    );
    await sim.idle();
    void iid;
  }
}

function trustedPipeline(sim: GitLabSimulator, projectId: number, sha: string) {
  return sim.pipelines(projectId).find((p) => p.ref.startsWith(PREFIX) && p.sha === sha);
}

function countTrusted(sim: GitLabSimulator, projectId: number, sha?: string): number {
  return sim.pipelines(projectId).filter((p) => p.ref.startsWith(PREFIX) && (!sha || p.sha === sha)).length;
}

function stickyComment(sim: GitLabSimulator, projectId: number, iid: number, botId: number): string | undefined {
  return sim.notes(projectId, iid).find((n) => n.authorId === botId && isStickyNoteBody(n.body))?.body;
}

/** What a committer sees on the MR page: the commit status on the head and the bot's notes, as plain text. */
function showMr(
  say: (line?: string) => void,
  sim: GitLabSimulator,
  projectId: number,
  iid: number,
  names: Map<number, string>,
) {
  const mr = sim.mergeRequest(projectId, iid);
  const status = sim
    .statuses(projectId, mr.sha)
    .filter((s) => s.name === STATUS)
    .at(-1);
  say(`  MR !${iid} [${mr.state}] head ${short(mr.sha)}  labels: ${mr.labels.join(", ") || "-"}`);
  say(`  commit status ${STATUS}: ${status ? `${status.status} — ${status.description ?? ""}` : "(none)"}`);
  for (const note of sim.notes(projectId, iid).filter((n) => !n.system)) {
    const who = names.get(note.authorId) ?? `user ${note.authorId}`;
    const emoji = sim
      .awardEmoji(projectId, iid, note.id)
      .map((e) => `:${e.name}:`)
      .join(" ");
    // The command list folds away on GitLab's page as well (<details>); show it as its summary line.
    const text = note.body
      .replace(/<!--[\s\S]*?-->/g, "")
      .replace(/<details><summary>([^<]*)<\/summary>[\s\S]*?<\/details>/g, "▸ $1 (folded)")
      .trim();
    say(`  ┌ ${who}${emoji ? `  ${emoji}` : ""}`);
    for (const line of text.split("\n")) say(`  │ ${line}`);
    say("  └");
  }
  say();
}

function step(say: (line?: string) => void, n: number, title: string) {
  say(`── ${n}. ${title}`);
}

function short(sha: string): string {
  return sha.slice(0, 8);
}

export type { Logger };
