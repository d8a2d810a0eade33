/**
 * The trust workflow end to end, for scenario tests and the API-call benchmark: the GitLab simulator over HTTP,
 * the service (receiver + worker) from `src/runtime.ts` with the real workflow and a real Redis under a fresh key
 * prefix, and a project hook pointing the simulator's webhooks at the receiver.
 *
 * The cast: `org/app` with the bot and Maya as Maintainers (Maya is a committer), Dev a Developer (not a committer),
 * Dave and Erin contributors without membership who work in forks. Pushes to `trusted-*` start no pipeline by
 * themselves, as the CI templates' `workflow: rules` arrange (`pipelineOnPushFilter`), unless asked.
 */
import { afterEach } from "node:test";
import { Gitlab } from "@gitbeaker/rest";
import type { Config } from "../../src/config/config.js";
import type { Logger } from "../../src/logger.js";
import type { Redis } from "../../src/redis.js";
import { type Service, startService } from "../../src/runtime.js";
import {
  AccessLevel,
  GitLabSimulator,
  type SimMergeRequest,
  type SimNote,
  type SimPipeline,
  type SimProject,
  type SimUser,
} from "../../src/simulator/gitlab-simulator.js";
import type { PipelineVariablesRole } from "../../src/simulator/model.js";
import { readAudit } from "../../src/trust/audit.js";
import { trustedBranchName } from "../../src/trust/decide.js";
import { STICKY_MARKER } from "../../src/trust/state.js";
import { captureLogger } from "./capture-logger.js";
import { deletePrefix, testRedis, uniquePrefix } from "./redis.js";
import { TEST_SECRET, testConfig } from "./service-config.js";
import { waitFor } from "./wait.js";

export interface TrustWorldOptions {
  /** Config sections merged over the test defaults. */
  config?: Parameters<typeof testConfig>[1];
  /** GitLab also starts a push pipeline when a `trusted-*` branch is pushed (no `workflow: rules` stop it). */
  pipelinesOnTrustedPush?: boolean;
  /**
   * org/app's "Minimum role to use pipeline variables" (`ci_pipeline_variables_minimum_override_role`); the
   * simulator's default is `maintainer` (self-managed), GitLab.com gives new projects `no_one_allowed`.
   */
  pipelineVariablesRole?: PipelineVariablesRole;
  /** Run the periodic sweep scheduler in the service. */
  scheduler?: boolean;
  logLevel?: string;
}

export interface TrustWorld {
  sim: GitLabSimulator;
  service: Service;
  config: Config;
  prefix: string;
  redis: Redis;
  logger: Logger;
  /** Every log line so far, parsed (at `logLevel`). */
  logLines: Array<Record<string, unknown>>;
  bot: SimUser;
  maya: SimUser;
  dev: SimUser;
  dave: SimUser;
  erin: SimUser;
  app: SimProject;
  daveFork: SimProject;
  erinFork: SimProject;
  /** Waits until no webhook is in flight and no job is waiting, delayed or running, a few times in a row. */
  settle(timeoutMs?: number): Promise<void>;
  /** Dave pushes `branch` in his fork and opens an MR into org/app. */
  openForkMr(branch?: string, author?: SimUser, fork?: SimProject): SimMergeRequest;
  /** A gitbeaker client acting as `user` (for what a person does through the API, e.g. a hand-made branch). */
  as(user: SimUser): InstanceType<typeof Gitlab>;
  /** The MR as GitLab has it now. */
  mr(iid: number): SimMergeRequest;
  /** The MR's trusted branch name (the naming rule: `trusted-<source branch>-mr<iid>`). */
  trustedBranch(mr: Pick<SimMergeRequest, "sourceBranch" | "iid">): string;
  /** The bot's sticky notes on the MR (the workflow keeps exactly one). */
  stickyNotes(iid: number): SimNote[];
  /** Notes by the bot other than the sticky one (replies). */
  replies(iid: number): SimNote[];
  /** Pipelines on `ref` in org/app, oldest first. */
  pipelinesOn(ref: string): SimPipeline[];
  /** The bot's current commit status on `sha` in org/app (the newest; older ones were superseded). */
  status(sha: string): { status: string; description: string | null; ref: string } | undefined;
  audit(): Promise<Array<Record<string, string>>>;
  close(): Promise<void>;
}

export async function startTrustWorld(options: TrustWorldOptions = {}): Promise<TrustWorld> {
  const sim = await GitLabSimulator.start();
  const bot = sim.addUser({ username: "trusted-bot", name: "Trusted Bot", bot: true });
  const maya = sim.addUser({ username: "maya", name: "Maya Maintainer" });
  const dev = sim.addUser({ username: "dev", name: "Dev Developer" });
  const dave = sim.addUser({ username: "dave", name: "Dave Contributor" });
  const erin = sim.addUser({ username: "erin", name: "Erin Contributor" });
  const org = sim.addGroup({ path: "org" });
  sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
  sim.addMember({ groupId: org.id }, maya.id, AccessLevel.Maintainer);
  sim.addMember({ groupId: org.id }, dev.id, AccessLevel.Developer);
  const app = sim.addProject({
    path: "org/app",
    ciJobs: [
      { name: "build", stage: "build" },
      { name: "test", stage: "test" },
    ],
    ...(options.pipelinesOnTrustedPush ? {} : { pipelineOnPushFilter: (ref: string) => !ref.startsWith("trusted-") }),
    ...(options.pipelineVariablesRole ? { ciPipelineVariablesMinimumOverrideRole: options.pipelineVariablesRole } : {}),
  });
  sim.protectBranch(app.id, { name: "main", pushAccessLevel: 40, mergeAccessLevel: 30 });
  sim.protectBranch(app.id, { name: "release/*", pushAccessLevel: 40, mergeAccessLevel: 40 });
  sim.protectBranch(app.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
  const daveFork = sim.fork(app.id, { ownerId: dave.id, path: "dave/app" });
  const erinFork = sim.fork(app.id, { ownerId: erin.id, path: "erin/app" });

  const prefix = uniquePrefix();
  const config = testConfig(prefix, {
    log: { level: options.logLevel ?? "warn" },
    ...options.config,
    // Other `gitlab` keys (e.g. `rate_limit_per_minute`) merge over the simulator's URL and the bot's token.
    gitlab: { url: sim.url, token: bot.token, ...options.config?.gitlab },
    sweep: { interval_seconds: 0, grace_seconds: 0, projects: [app.id], ...options.config?.sweep },
  });
  const { logger, lines: logLines } = captureLogger(options.logLevel ?? "warn");
  const service = await startService({
    config,
    logger,
    roles: { receiver: true, worker: true, scheduler: options.scheduler ?? false },
  });
  sim.addHook(app.id, {
    url: `${service.receiverUrl}/webhook`,
    token: TEST_SECRET,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
    // As setup subscribes it: internal notes come as `Confidential Note Hook`.
    confidentialNoteEvents: true,
    pipelineEvents: true,
  });
  const redis = testRedis();

  const world: TrustWorld = {
    sim,
    service,
    config,
    prefix,
    redis,
    logger,
    logLines,
    bot,
    maya,
    dev,
    dave,
    erin,
    app,
    daveFork,
    erinFork,
    async settle(timeoutMs = 20_000) {
      let quiet = 0;
      await waitFor(
        "webhooks delivered and the queue drained",
        async () => {
          await sim.idle();
          const counts = await service.queue.getJobCounts("waiting", "delayed", "active", "prioritized");
          const busy = Object.values(counts).reduce((a, b) => a + b, 0);
          quiet = busy === 0 ? quiet + 1 : 0;
          return quiet >= 4;
        },
        timeoutMs,
        25,
      );
    },
    openForkMr(branch = "feature", author = dave, fork = daveFork) {
      sim.push(fork.id, branch, { userId: author.id });
      return sim.openMergeRequest({
        sourceProjectId: fork.id,
        sourceBranch: branch,
        authorId: author.id,
        targetProjectId: app.id,
      });
    },
    as(user) {
      return new Gitlab({ host: sim.url, token: user.token });
    },
    mr(iid) {
      return sim.mergeRequest(app.id, iid);
    },
    trustedBranch(mr) {
      return trustedBranchName(config.trust.branch_prefix, mr);
    },
    stickyNotes(iid) {
      return sim.notes(app.id, iid).filter((n) => n.authorId === bot.id && n.body.startsWith(STICKY_MARKER));
    },
    replies(iid) {
      return sim.notes(app.id, iid).filter((n) => n.authorId === bot.id && !n.body.startsWith(STICKY_MARKER));
    },
    pipelinesOn(ref) {
      return sim
        .pipelines(app.id)
        .filter((p) => p.ref === ref)
        .sort((a, b) => a.id - b.id);
    },
    status(sha) {
      const s = sim
        .statuses(app.id, sha)
        .filter((x) => x.name === config.trust.status_name)
        .at(-1);
      return s ? { status: s.status, description: s.description, ref: s.ref } : undefined;
    },
    audit() {
      return readAudit(redis, prefix);
    },
    async close() {
      await service.close({ timeoutMs: 5000 });
      await sim.stop();
      await deletePrefix(redis, prefix);
      await redis.quit();
    },
  };
  return world;
}

/**
 * For a test file: returns `start(options)`, which starts a world for the current test; it is closed after the
 * test whatever the outcome.
 */
export function worldPerTest(): (options?: TrustWorldOptions) => Promise<TrustWorld> {
  let current: TrustWorld | undefined;
  afterEach(async () => {
    const world = current;
    current = undefined;
    await world?.close();
  });
  return async (options) => {
    const world = await startTrustWorld(options);
    current = world;
    return world;
  };
}
