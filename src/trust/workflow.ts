/**
 * The trust workflow behind the worker (`WorkflowHandlers`, src/queue/jobs.ts): every MR job runs
 * observe -> decide -> apply (STYLE.md §4), in rounds until decide asks only to record what is already true.
 *
 * - `reconcile`: converge one MR (any MR event, a pipeline event naming its MR, a sweep).
 * - `command`: a comment; parsed first (most comments cost no API call), then the same pass with the command.
 * - `push` / `pipeline`: fan-out for trusted branches: find the MR the branch belongs to, leave a hint of what
 *   changed, and enqueue its reconcile. Pushes to other branches need nothing: GitLab sends an MR Hook `update`
 *   (with `oldrev`) for every open MR whose source branch moved, forks included (FACTS.md).
 * - `sweep`: see sweep.ts.
 */
import type { Config } from "../config/config.js";
import { PermanentError } from "../errors.js";
import { GitbeakerAdapter } from "../gitlab/gitbeaker-adapter.js";
import type { GitLabPort, User } from "../gitlab/port.js";
import type {
  CommandJob,
  JobContext,
  MrKey,
  PipelineJob,
  PushJob,
  ReconcileJob,
  SweepJob,
  WorkflowHandlers,
} from "../queue/jobs.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { Redis } from "../redis.js";
import { applyActions, applyDeferred } from "./apply.js";
import { type AuditLog, createAuditLog } from "./audit.js";
import { authorize, type CommitterFacts, factsNeeded } from "./authorize.js";
import { decide } from "./decide.js";
import { type Action, DEFERRED_ACTIONS, mirroredStatus, type Observed, type Trigger } from "./model.js";
import { observe, observePipelines, type PipelineWants } from "./observe.js";
import { type ParsedComment, parseComment } from "./parse-command.js";
import { decodeState } from "./state.js";
import { TrustStore } from "./store.js";
import { runSweep } from "./sweep.js";

/** A comment job whose body parsed as a command. */
interface ParsedCommandJob {
  job: CommandJob;
  parsed: Extract<ParsedComment, { kind: "command" }>;
}

/** Rounds of decide/apply per job; more means decide does not converge (a bug), so the job stops and says so. */
const MAX_ROUNDS = 6;

export interface WorkflowDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** A `durable` ioredis connection: caches, hints and the audit stream. */
  redis: Redis;
}

export type Workflow = WorkflowHandlers & { close(): Promise<void> };

/** The workflow against the GitLab of `config.gitlab`, through the gitbeaker adapter. */
export function createWorkflow(deps: WorkflowDeps): Workflow {
  const port = new GitbeakerAdapter({ config: deps.config, metrics: deps.metrics });
  return createWorkflowWithPort({ ...deps, port });
}

/** The workflow against any {@link GitLabPort} (tests, benchmarks). */
export function createWorkflowWithPort(deps: WorkflowDeps & { port: GitLabPort; now?: () => Date }): Workflow {
  const { config, port } = deps;
  const trust = config.trust;
  const store = new TrustStore(deps.redis, config.redis.prefix);
  const audit: AuditLog = createAuditLog(deps.redis, config.redis.prefix, deps.logger);
  const now = deps.now ?? (() => new Date());
  const botUser = (): Promise<User> => store.botUser(() => port.currentUser());

  async function converge(key: MrKey, log: Logger, reason: string, command?: ParsedCommandJob): Promise<void> {
    const bot = await botUser();
    const [cache, hints] = await Promise.all([store.getMrCache(key), store.readHints(key)]);
    let o = await observe({ port, config: trust, bot, now: now().toISOString() }, key, cache, hints);
    if (!o) {
      log.info({ reason }, "merge request not found; nothing to do");
      await store.clearHints(key, hints);
      return;
    }
    const trigger = command ? await commandTrigger(command, o) : undefined;
    const reasonStatus = /^Pipeline Hook:([a-z_]+)$/.exec(reason)?.[1];
    const wants: PipelineWants = {
      full: hints.full || !cache,
      fresh: trigger?.command === "retest",
      hinted: [...hints.pipelines, ...(reasonStatus ? [{ status: reasonStatus }] : [])],
    };
    const deferred: Action[] = [];
    for (let round = 0; ; round++) {
      if (round === MAX_ROUNDS) {
        throw new PermanentError(
          `decide did not converge for ${key.projectId}!${key.mrIid} after ${MAX_ROUNDS} rounds`,
          "this is a bug in trusted-mr-bot; please report it with this log line",
        );
      }
      o = await observePipelines(port, o, wants);
      const actions = decide(o, trust, round === 0 ? trigger : undefined);
      deferred.push(...actions.filter((a) => DEFERRED_ACTIONS.has(a.type)));
      const effects = actions.filter((a) => !DEFERRED_ACTIONS.has(a.type));
      log.debug({ round, reason, actions: effects.map((a) => a.type) }, "decided");
      o = await applyActions(port, o, effects);
      if (effects.every((a) => a.type === "record")) break;
    }
    await applyDeferred(port, audit, o.mr, deferred);
    await remember(key, o);
    await store.clearHints(key, hints);
  }

  /** The command as decide sees it, with the commenter's authorization when the command needs a committer. */
  async function commandTrigger({ job, parsed }: ParsedCommandJob, o: Observed): Promise<Trigger> {
    const trigger: Trigger = {
      kind: "command",
      command: parsed.command,
      ...(parsed.sha ? { sha: parsed.sha } : {}),
      noteId: job.noteId,
      ...(job.noteUrl ? { noteUrl: job.noteUrl } : {}),
      author: job.author,
      ...(job.seenSha ? { seenSha: job.seenSha } : {}),
    };
    const needsCommitter = parsed.command !== "help" && o.mr.state === "opened" && !o.committerBranch;
    if (!needsCommitter || o.state.handled?.includes(job.noteId)) return trigger;
    const facts: CommitterFacts = { username: job.author.username };
    for (let need = factsNeeded(facts, trust); need !== "none"; need = factsNeeded(facts, trust)) {
      if (need === "accessLevel") facts.accessLevel = await port.effectiveAccessLevel(o.mr.projectId, job.author.id);
      else {
        facts.memberOfGroups = [];
        for (const group of trust.committer_groups) {
          if (await port.isGroupMember(group, job.author.id)) {
            facts.memberOfGroups.push(group);
            break;
          }
        }
      }
    }
    return { ...trigger, authorization: authorize(facts, trust) };
  }

  /** Caches what this pass saw and wrote, for the next pass of the same MR and for mapping branches to MRs. */
  async function remember(key: MrKey, o: Observed): Promise<void> {
    await store.putMrCache(key, {
      noteId: o.note?.id ?? null,
      noteBody: o.note?.body ?? null,
      committerBranch: o.committerBranch,
      sourceBranch: o.mr.sourceBranch,
    });
    if (o.state.branch) await store.setBranchOwner(key.projectId, o.state.branch, key.mrIid);
  }

  /** The open MRs a trusted branch may belong to: the cached owner, else by name (`-mr<iid>` or source branch). */
  async function mrsForTrustedBranch(projectId: number, branch: string): Promise<MrKey[]> {
    const owner = await store.branchOwner(projectId, branch);
    if (owner !== undefined) return [{ projectId, mrIid: owner }];
    const rest = branch.slice(trust.branch_prefix.length);
    const keys = new Map<number, MrKey>();
    const suffixed = /^(.+)-mr(\d+)$/.exec(rest);
    if (suffixed?.[2]) keys.set(Number(suffixed[2]), { projectId, mrIid: Number(suffixed[2]) });
    for (const mr of await port.listOpenMergeRequests(projectId, { sourceBranch: rest })) {
      keys.set(mr.iid, { projectId, mrIid: mr.iid });
    }
    return [...keys.values()];
  }

  return {
    async reconcile(job: ReconcileJob, ctx: JobContext) {
      await converge(job, ctx.log, job.reason);
    },

    async command(job: CommandJob, ctx: JobContext) {
      // Never commands, whatever they say (STYLE.md §6): decided before any API call.
      const parsed = parseComment(job.body);
      const ignored = job.system
        ? "system note"
        : job.action === "update"
          ? "edited note: commands count only when first posted"
          : parsed.kind === "ignore"
            ? parsed.reason
            : undefined;
      if (ignored) {
        ctx.log.info({ noteId: job.noteId, why: ignored }, "note ignored");
        return;
      }
      const bot = await botUser();
      if (job.author.id === bot.id) {
        ctx.log.debug({ noteId: job.noteId }, "note by the bot itself ignored");
        return;
      }
      if (parsed.kind === "reply") {
        await port.postNote(job.projectId, job.mrIid, parsed.text);
        return;
      }
      if (parsed.kind === "command") await converge(job, ctx.log, `command:${job.noteId}`, { job, parsed });
    },

    async push(job: PushJob, ctx: JobContext) {
      if (!job.branch.startsWith(trust.branch_prefix)) return;
      const bot = await botUser();
      if (job.userId === bot.id) return; // the bot's own grant, move or revoke: already recorded
      const pusher = job.userId !== undefined ? (await port.getUser(job.userId))?.username : undefined;
      for (const mr of await mrsForTrustedBranch(job.projectId, job.branch)) {
        await store.hintBranch(mr, pusher);
        await ctx.enqueueReconcile(mr, `push:${job.branch}`);
      }
    },

    async pipeline(job: PipelineJob, ctx: JobContext) {
      if (!job.ref.startsWith(trust.branch_prefix)) return;
      for (const mr of await mrsForTrustedBranch(job.projectId, job.ref)) {
        const cache = await store.getMrCache(mr);
        const recorded = decodeState(cache?.noteBody ?? undefined).pipeline;
        if (recorded?.id === job.pipelineId && recorded.status === mirroredStatus(job.status)) continue; // nothing new
        await store.hintPipeline(mr, job.pipelineId, job.status);
        await ctx.enqueueReconcile(mr, `pipeline:${job.pipelineId}:${job.status}`);
      }
    },

    async sweep(job: SweepJob, ctx: JobContext) {
      await runSweep({ port, config, store, audit, now }, job, ctx);
    },

    async close() {
      // The Redis connection belongs to the caller; the adapter holds no sockets of its own.
    },
  };
}
