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
 *
 * Reconciles of one MR are coalesced (src/queue/queue.ts), so a reconcile's own data (`reason`) is only for logs:
 * whatever an event said that observe must know is a durable hint in Redis (store.ts), written before the
 * reconcile is enqueued and cleared only by a pass that succeeded after reading it.
 */
import type { Config } from "../config/config.js";
import { ConfigError, PermanentError } from "../errors.js";
import { failureBrief } from "../gitlab/classify-error.js";
import { createCallBudget } from "../gitlab/call-budget.js";
import { GitbeakerAdapter } from "../gitlab/gitbeaker-adapter.js";
import type { GitLabPort, MergeRequest, MergeRequestVersion, User } from "../gitlab/port.js";
import type {
  CommandJob,
  JobContext,
  MrKey,
  PipelineJob,
  PushJob,
  ReconcileJob,
  ReconcileOptions,
  SweepJob,
  WorkflowHandlers,
} from "../queue/jobs.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { Redis } from "../redis.js";
import { applyActions, completePending, deferredAction, type PendingAction, pendingKey } from "./apply.js";
import { type AuditLog, createAuditLog } from "./audit.js";
import type { Authorization } from "./authorize.js";
import { Committers, REFUSAL_REPLY_WINDOW_SECONDS } from "./committers.js";
import { decide, parseTrustedBranchName } from "./decide.js";
import { DEFERRED_ACTIONS, type Observed, type Trigger } from "./model.js";
import { observe, observePipelines, type PipelineWants, pipelineHintIsNews } from "./observe.js";
import { type CommandName, type ParsedComment, parseComment } from "./parse-command.js";
import { type EffectiveTrust, Policies } from "./policy.js";
import { code, escapeText } from "./render.js";
import { decodeState } from "./state.js";
import { type CommandIntent, type Hints, hasHints, type MrCache, type MrRecord, TrustStore } from "./store.js";
import { runSweep } from "./sweep.js";

/** A comment job whose body parsed as a command. */
interface ParsedCommandJob {
  job: CommandJob;
  parsed: Extract<ParsedComment, { kind: "command" }>;
  /**
   * The commenter's authorization, asked by `command` before or alongside the pass. A promise runs in parallel with
   * the MR read; it resolves to `undefined` for a refused commenter who was answered on this MR already (say nothing).
   */
  authorization?: Authorization | Promise<Authorization | undefined>;
}

/** Rounds of decide/apply per job; more means decide does not converge (a bug), so the job stops and says so. */
const MAX_ROUNDS = 6;

/** How long a process keeps the bot's user as read (store.ts keeps it an hour in Redis). */
const BOT_USER_MEMO_MS = 5 * 60_000;

/** Passes per MR job when events keep arriving during them; then the job hands the MR over to a new reconcile. */
const MAX_PASSES = 3;

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
  const { config, redis } = deps;
  const budget = createCallBudget({
    redis,
    prefix: config.redis.prefix,
    gitlabUrl: config.gitlab.url,
    limit: config.gitlab.rate_limit_per_minute,
    onNoLeases: (error) =>
      deps.logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        "GitLab call budget: Redis refused its pause channel, so every GitLab call asks Redis for its slot (README, Scaling)",
      ),
  });
  const port = new GitbeakerAdapter({ config, metrics: deps.metrics, budget });
  const workflow = createWorkflowWithPort({ ...deps, port });
  return {
    ...workflow,
    async close() {
      await workflow.close();
      // The budget's pub/sub connection (its leases); the Redis connection itself belongs to the caller.
      await budget.close();
    },
  };
}

/** The workflow against any {@link GitLabPort} (tests, benchmarks). */
export function createWorkflowWithPort(deps: WorkflowDeps & { port: GitLabPort; now?: () => Date }): Workflow {
  const { config, port } = deps;
  const trust = config.trust;
  const store = new TrustStore(deps.redis, config.redis.prefix);
  const audit: AuditLog = createAuditLog(deps.redis, config.redis.prefix, deps.logger);
  const now = deps.now ?? (() => new Date());
  /**
   * The token's user, read from Redis (or GitLab) once per {@link BOT_USER_MEMO_MS} in this process: every command
   * asks for it, twice, before its first GitLab call, and a Redis round trip each time was latency for nothing
   * (issue 10). A failed read is not kept.
   */
  let botUserRead: { at: number; user: Promise<User> } | undefined;
  const botUser = (): Promise<User> => {
    if (!botUserRead || Date.now() - botUserRead.at > BOT_USER_MEMO_MS) {
      const read = { at: Date.now(), user: store.botUser(() => port.currentUser()) };
      read.user.catch(() => {
        if (botUserRead === read) botUserRead = undefined;
      });
      botUserRead = read;
    }
    return botUserRead.user;
  };
  /** Each project's settings: the server's, with its policy file on the default branch over them (policy.ts). */
  const policies = new Policies({ port, config, redis: deps.redis, logger: deps.logger });
  /** Who is a committer: one per process, so `trust.committer_users` names are resolved once. */
  const committers = new Committers({
    port,
    config: trust,
    configFor: async (projectId) => (await policies.effective(projectId)).trust,
    store,
    logger: deps.logger,
  });

  /**
   * Converges an MR: a pass (observe, decide, apply, record), then a look at the hints that arrived meanwhile.
   * While it runs, a pass marker tells pipeline jobs that this job will see their hints (store.ts), so the echo of
   * its own writes costs nothing; a hint that tells something the record does not have gets another pass here,
   * still under the MR's lock.
   */
  async function converge(
    key: MrKey,
    ctx: JobContext,
    reason: string,
    command?: ParsedCommandJob,
    job: ReconcileOptions = {},
  ): Promise<void> {
    const log = ctx.log;
    const ttl = config.worker.mr_lock_ttl_ms;
    // The marker and the read of the record in one step: a pipeline job that does not see the marker wrote its hint
    // before this pass reads.
    // The target project's settings (never the source project's: a fork supplies no policy) are read alongside.
    const [begun, firstSettings] = await Promise.all([store.beginPass(key, ttl), policies.effective(key.projectId)]);
    const token = begun.token;
    let record = begun.record;
    let settings = firstSettings;
    try {
      for (let passes = 1; ; passes++) {
        const done = await pass(key, log, reason, record, settings, passes === 1 ? command : undefined, job);
        const recorded = done?.state;
        let late = await store.endPass(key, record.hints, token, done?.remember);
        // The echo of this pass's own write (the pipeline it created or cancelled): the record says so already.
        for (let echoes = 0; hasHints(late) && !tellsNews(late, recorded) && echoes < MAX_PASSES; echoes++) {
          late = await store.endPass(key, late, token);
        }
        if (!hasHints(late)) return; // the marker went with the last hint
        if (passes === MAX_PASSES) break;
        log.debug({ hints: Object.keys(late.raw) }, "hints arrived during the pass; another pass");
        await store.renewPass(key, ttl, token);
        [record, settings] = await Promise.all([store.record(key), policies.effective(key.projectId)]);
      }
    } catch (error) {
      // This job stops looking at hints: those pipeline jobs left for it (seeing the marker) get a reconcile of
      // their own, as they would have without the marker. The job's retry, if any, reads them too.
      const left = await store.abandonPass(key, token).catch(() => undefined);
      if (left && hasHints(left)) await ctx.enqueueReconcile(key, "hints left by a failed pass").catch(() => undefined);
      throw error;
    }
    log.info({ passes: MAX_PASSES }, "events keep arriving during the passes; the MR is reconciled again later");
    if (hasHints(await store.abandonPass(key, token))) await ctx.enqueueReconcile(key, "hints after the last pass");
  }

  /** Whether hints that arrived during a pass ask for another: anything but a pipeline status already recorded. */
  function tellsNews(late: Hints, recorded: Observed["state"] | undefined): boolean {
    if (!recorded) return false; // the MR is gone: nothing to mirror
    return (
      late.full || late.branch !== undefined || late.pipelines.some((h) => pipelineHintIsNews(recorded.pipeline, h))
    );
  }

  /** Observe, decide and apply until converged; returns the state recorded, `undefined` when the MR is gone. */
  async function pass(
    key: MrKey,
    log: Logger,
    reason: string,
    record: MrRecord,
    settings: EffectiveTrust,
    command?: ParsedCommandJob,
    job: ReconcileOptions = {},
  ): Promise<PassResult | undefined> {
    // A command's write-ahead intent is in the record (only this MR's jobs write it, under the lock this job holds).
    const { cache, hints } = record;
    let intent = record.intent;
    const { trust, problem: policyProblem } = settings;
    const bot = await botUser();
    const known = command || intent ? undefined : knownMr(record, job);
    // A bare `/trust` needs to know when the head became the head and when the comment was written: read in
    // parallel with the MR, they cost no extra round trip.
    const timing = command && isBareTrust(command) ? commentTiming(key, command.job.noteId) : undefined;
    timing?.catch(() => undefined); // awaited below; an early MR-read failure must not leave it unhandled
    const authorize = (projectId: number, user: User) => committers.authorize(projectId, user);
    const observed = await observe(
      { port, config: trust, bot, now: now().toISOString(), authorize },
      key,
      cache,
      hints,
      { ...(known ? { known } : {}), ...(job.listed ? { listed: job.listed } : {}) },
    );
    if (!observed) {
      log.info({ reason }, "merge request not found; nothing to do");
      return undefined;
    }
    let o: Observed = intent ? { ...observed, intent } : observed;
    if (policyProblem !== undefined) o = { ...o, policyProblem };
    let trigger = command ? await commandTrigger(command, o) : undefined;
    if (command && !trigger)
      log.info(
        { noteId: command.job.noteId },
        "note by a non-committer who was answered on this merge request already; ignored",
      );
    if (trigger && timing) trigger = { ...trigger, headPrecedesComment: headPrecedes(o.mr.sha, await timing) };
    const wants: PipelineWants = {
      // A cold cache reads the note again, not the pipelines: the bot's own record of a finished pipeline stands,
      // and one recorded as running is read anyway (observe.ts).
      full: hints.full,
      // `/retest` and `/merge` decide from the trusted pipeline's status: read now, not as last recorded.
      fresh: trigger?.command === "retest" || trigger?.command === "merge",
      hinted: hints.pipelines,
    };
    const deferred: PendingAction[] = [];
    const applyContext = {
      branchPrefix: trust.branch_prefix,
      writeIntent: async (written: CommandIntent) => {
        await store.writeIntent(key, written);
        intent = written;
      },
    };
    for (let round = 0; ; round++) {
      if (round === MAX_ROUNDS) {
        throw new PermanentError(
          `decide did not converge for ${key.projectId}!${key.mrIid} after ${MAX_ROUNDS} rounds`,
          "this is a bug in trusted-mr-bot; please report it with this log line",
        );
      }
      o = await observePipelines(port, o, wants);
      const actions = decide(o, trust, round === 0 ? trigger : undefined);
      for (const a of actions) {
        if (a.type === "reply" || a.type === "award" || a.type === "audit") {
          const action = deferredAction(a, command?.job.internal === true);
          deferred.push({ key: pendingKey(a, command?.job.noteId, deferred.length), action });
        }
      }
      const effects = actions.filter((a) => !DEFERRED_ACTIONS.has(a.type));
      log.debug({ round, reason, actions: effects.map((a) => a.type) }, "decided");
      // Write-ahead: the deferred actions are stored before the note that records their transition is written, so
      // a job that dies after that write leaves them for the next pass (never skipped because the note is handled).
      if (effects.some((a) => a.type === "ensureNote")) await store.putPending(key, deferred);
      o = await applyActions(port, o, effects, applyContext);
      if (effects.every((a) => a.type === "record")) break;
    }
    await store.putPending(key, deferred);
    // The intent goes once the note records what became of it (carried out, superseded or refused).
    const toRemember = {
      cache: cacheOf(o, hints.full ? now().getTime() : cache?.verifiedAt),
      ...(intent && o.state.handled?.includes(intent.noteId) ? { doneIntent: intent } : {}),
    };
    // Pending actions are read only when there may be any: this pass's, or those the record said were left. What
    // the note now says is cached before they run: a retry after one of them failed must see the transition as
    // recorded (and only finish what is pending), not decide it again from a stale note. Without any, the cache is
    // written with the end of the pass (`endPass`), in the same round trip.
    if (deferred.length > 0 || record.pending) {
      await store.remember(key, toRemember.cache, toRemember.doneIntent);
      await completePending(port, audit, store, key, (await store.pending(key)) as PendingAction[]);
      return { state: o.state };
    }
    return { state: o.state, remember: toRemember };
  }

  /** When the comment was written (GitLab's note time) and the MR's diff versions, for a bare `/trust`. */
  async function commentTiming(key: MrKey, noteId: number): Promise<CommentTiming> {
    const [versions, note] = await Promise.all([
      port.listMergeRequestVersions(key.projectId, key.mrIid),
      port.getNote(key.projectId, key.mrIid, noteId),
    ]);
    return { versions, commentedAt: note?.createdAt };
  }

  /** The command as decide sees it, with the commenter's authorization when the command needs a committer. */
  async function commandTrigger(
    { job, parsed, authorization: asked }: ParsedCommandJob,
    o: Observed,
  ): Promise<Trigger | undefined> {
    // Awaited whatever the command needs, as when it was asked before the pass: the refusal answer is claimed then.
    const authorization = await asked;
    if (asked !== undefined && authorization === undefined) return undefined;
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
    return {
      ...trigger,
      authorization: authorization ?? (await committers.authorize(o.mr.projectId, job.author)),
    };
  }

  /** What a pass saw and wrote, cached for the next pass of the same MR and for the sweep's comparison. */
  function cacheOf(o: Observed, verifiedAt: number | undefined): MrCache {
    return {
      noteId: o.note?.id ?? null,
      noteBody: o.note?.body ?? null,
      committerBranch: o.committerBranch,
      sourceBranch: o.mr.sourceBranch,
      // As read at the start of the pass: a change since then shows up on the sweep's next list page.
      mr: o.mr,
      ...(verifiedAt !== undefined ? { verifiedAt } : {}),
    };
  }

  /** The MR a trusted branch belongs to: its name says (decide.ts, `parseTrustedBranchName`); no API call. */
  function mrForTrustedBranch(projectId: number, branch: string): MrKey[] {
    const parsed = parseTrustedBranchName(trust.branch_prefix, branch);
    return parsed ? [{ projectId, mrIid: parsed.iid }] : [];
  }

  /**
   * Answers a command the worker could not carry out (worker.ts): `delayed` when GitLab failed it `worker.attempts`
   * times and it is retried until it is carried out, `failed` when it never can be. One answer of each kind per note
   * (store.ts), given back when posting it fails so the next attempt posts it. A note that is no command, the bot's
   * own, or one by a user whose refusal is cached gets none: the refusal is that user's answer, and a non-committer's
   * note flood must not become a flood of replies.
   */
  async function answerCommand(job: CommandJob, error: unknown, kind: "delayed" | "failed", log: Logger) {
    const parsed = parseComment(job.body);
    if (job.system || job.action === "update" || parsed.kind !== "command") return;
    if (await store.commandAnswered(job, job.noteId, kind)) return;
    if ((await store.cachedRefusal(job.projectId, job.author.id)) !== undefined) return;
    if (job.author.id === (await botUser()).id) return;
    // Already carried out (the note records it): only deferred actions such as the award are left, and they are
    // pending (apply.ts `completePending`); "not carried out yet" would be untrue.
    const recorded = decodeState((await store.getMrCache(job))?.noteBody ?? undefined);
    if (kind === "delayed" && recorded.handled?.includes(job.noteId)) return;
    if (!(await store.claimCommandAnswer(job, job.noteId, kind))) return;
    try {
      await port.postNote(job.projectId, job.mrIid, commandAnswerText(parsed.command, error, kind), replyOptions(job));
    } catch (postError) {
      await store.releaseCommandAnswer(job, job.noteId, kind).catch(() => undefined);
      throw postError;
    }
    log.info({ noteId: job.noteId, answer: kind }, `command answered: ${kind}`);
  }

  return {
    async reconcile(job: ReconcileJob, ctx: JobContext) {
      await converge(job, ctx, job.reason, undefined, job);
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
      if (ignored || parsed.kind === "ignore") {
        ctx.log.info({ noteId: job.noteId, why: ignored }, "note ignored");
        return;
      }
      const bot = await botUser();
      if (job.author.id === bot.id) {
        ctx.log.debug({ noteId: job.noteId }, "note by the bot itself ignored");
        return;
      }
      // A non-committer gets one answer per MR per REFUSAL_REPLY_WINDOW_SECONDS, whatever they wrote (a refused
      // command, a malformed one, `/help`), and while the refusal is cached (committers.ts) each further note costs
      // no GitLab call at all. So a note flood from a non-committer ends in one reply (see also `screen`).
      // Without a cached refusal (a committer, most likely), the member check runs alongside the MR read: the
      // refusal answer is claimed when the pass awaits it, before anything is decided.
      if (parsed.kind === "command" && (await store.cachedRefusal(job.projectId, job.author.id)) === undefined) {
        let claimed = false;
        const authorization = committers.authorize(job.projectId, job.author).then(async (a) => {
          if (a.committer) return a;
          claimed = await store.claimRefusalAnswer(job, job.author.id, REFUSAL_REPLY_WINDOW_SECONDS);
          return claimed ? a : undefined;
        });
        authorization.catch(() => undefined); // awaited in the pass, or below when the pass ends before it
        try {
          await converge(job, ctx, `command:${job.noteId}`, { job, parsed, authorization });
          await authorization; // the MR was gone, say: settle it before the job ends
        } catch (error) {
          // Not answered after all: the job's retry (or the user's next command) answers.
          await authorization.catch(() => undefined);
          if (claimed) await store.releaseRefusalAnswer(job, job.author.id).catch(() => undefined);
          throw error;
        }
        return;
      }
      const authorization = await committers.authorize(job.projectId, job.author);
      const refused = !authorization.committer;
      if (refused && !(await store.claimRefusalAnswer(job, job.author.id, REFUSAL_REPLY_WINDOW_SECONDS))) {
        ctx.log.info(
          { noteId: job.noteId, userId: job.author.id, command: parsed.kind === "command" ? parsed.command : "reply" },
          "note by a non-committer who was answered on this merge request already; ignored",
        );
        return;
      }
      try {
        if (parsed.kind === "reply") await port.postNote(job.projectId, job.mrIid, parsed.text, replyOptions(job));
        else await converge(job, ctx, `command:${job.noteId}`, { job, parsed, authorization });
      } catch (error) {
        // Not answered after all: the job's retry (or the user's next command) answers.
        if (refused) await store.releaseRefusalAnswer(job, job.author.id).catch(() => undefined);
        throw error;
      }
    },

    async screen(job: CommandJob, ctx: JobContext) {
      // Redis only, before the MR lock: while a refusal is cached, a command from a user who has had (or is
      // getting) their answer on this MR is dropped here, so a flood's queued notes neither wait for the lock of
      // the MR they flood nor take worker slots from other MRs. Everything else is for `command`.
      if (job.system || job.action === "update") return true;
      const parsed = parseComment(job.body);
      if (parsed.kind === "ignore") return true;
      if ((await store.cachedRefusal(job.projectId, job.author.id)) === undefined) return true;
      if (!(await store.refusalAnswered(job, job.author.id))) return true;
      ctx.log.info(
        { noteId: job.noteId, userId: job.author.id, command: parsed.kind === "command" ? parsed.command : "reply" },
        "note by a non-committer who was answered on this merge request already; ignored",
      );
      return false;
    },

    async commandDelayed(job: CommandJob, error: unknown, ctx: JobContext) {
      await answerCommand(job, error, "delayed", ctx.log);
    },

    async commandFailed(job: CommandJob, error: unknown, ctx: JobContext) {
      await answerCommand(job, error, "failed", ctx.log);
    },

    async push(job: PushJob, ctx: JobContext) {
      // The push only says when to look: the policy is read from the default branch the API names (policy.ts).
      if (job.policyFile && policies.enabled) {
        await policies.refresh(job.projectId);
        ctx.log.info({ projectId: job.projectId }, "project policy read again after a push that touched it");
      }
      if (!job.branch.startsWith(trust.branch_prefix)) return;
      const bot = await botUser();
      if (job.userId === bot.id) return; // the bot's own grant, move or revoke: already recorded
      const pusher = job.userId !== undefined ? await port.getUser(job.userId) : undefined;
      for (const mr of mrForTrustedBranch(job.projectId, job.branch)) {
        await store.hintBranch(mr, pusher);
        await ctx.enqueueReconcile(mr, `push:${job.branch}`);
      }
    },

    async pipeline(job: PipelineJob, ctx: JobContext) {
      const mrs =
        job.mrIid !== undefined
          ? [{ projectId: job.projectId, mrIid: job.mrIid }]
          : job.ref.startsWith(trust.branch_prefix)
            ? mrForTrustedBranch(job.projectId, job.ref)
            : [];
      const said = { id: job.pipelineId, status: job.status };
      for (const mr of mrs) {
        // The hint first, whatever happens next: it is what outlives the coalescing of the MR's reconciles. A pass
        // running now looks at the hints again before it ends (converge): the echo of its own write stops there.
        const { hint, passRunning, cache } = await store.hintPipeline(mr, said.id, said.status);
        if (passRunning) continue;
        const recorded = decodeState(cache?.noteBody ?? undefined).pipeline;
        if (pipelineHintIsNews(recorded, said)) {
          await ctx.enqueueReconcile(mr, `pipeline:${said.id}:${said.status}`, { mirror: true });
        } else await store.withdrawHint(mr, hint);
      }
    },

    async sweep(job: SweepJob, ctx: JobContext) {
      await runSweep({ port, config, store, audit, now, refreshPolicy: (id) => policies.refresh(id) }, job, ctx);
    },

    async close() {
      // The Redis connection belongs to the caller; the adapter holds no sockets of its own.
    },
  };
}

/** A pass's outcome: the state it recorded, and the cache for `endPass` to write unless the pass wrote it itself. */
interface PassResult {
  state: Observed["state"];
  remember?: { cache: MrCache; doneIntent?: CommandIntent };
}

/**
 * The MR a pass may start from instead of reading it (observe.ts), for a reconcile that carries no command and no
 * intent (a command needs a fresh look), else `undefined`:
 * - mirroring a pipeline (a job only pipeline events asked for, and only their hints): the MR as last read. What it
 *   decides from the MR is only what the pipeline's status means for the grant the record holds; an MR event that
 *   came meanwhile has a reconcile of its own, which reads the MR;
 * - the sweep's look (`listed`): the MR as listed, unless the record holds a newer answer (a pass since the list
 *   was read: GitLab's `updated_at` moves with every change). Not for an open same-project MR: the list leaves out
 *   its head pipeline, which its commit status goes into (decide.ts `gatedPipeline`). An MR event that came
 *   meanwhile has a reconcile of its own here too.
 */
export function knownMr(record: MrRecord, job: ReconcileOptions): MergeRequest | undefined {
  const { cache, hints } = record;
  const mirrorsOnly = !hints.full && !hints.branch && hints.pipelines.length > 0;
  if (job.mirror) return mirrorsOnly && cache?.mr?.state === "opened" ? cache.mr : undefined;
  const listed = job.listed?.mr;
  if (!listed || (listed.state === "opened" && listed.sourceProjectId === listed.projectId)) return undefined;
  const last = cache?.mr;
  return !last || Date.parse(last.updatedAt) <= Date.parse(listed.updatedAt) ? listed : undefined;
}

interface CommentTiming {
  versions: MergeRequestVersion[];
  commentedAt: string | undefined;
}

/** A bare `/trust` by someone not (yet) known to be refused: only then are its timing reads worth making. */
function isBareTrust({ parsed, authorization }: ParsedCommandJob): boolean {
  // Still being asked (in parallel with the MR read): not known to be refused.
  const known = authorization instanceof Promise ? undefined : authorization;
  return parsed.command === "trust" && parsed.sha === undefined && known?.committer !== false;
}

/**
 * Whether `head` was already the MR's head when the comment was written: the newest diff versions (newest first)
 * are the current head's, and GitLab created the first of that run (its clock, not the commit's author's) no later
 * than the note. A head GitLab has not recorded yet, or a note it no longer has, is not known to precede the comment.
 */
export function headPrecedes(head: string, timing: CommentTiming): boolean {
  let first: MergeRequestVersion | undefined;
  for (const version of timing.versions) {
    if (version.headSha !== head) break;
    first = version;
  }
  if (!first || !timing.commentedAt) return false;
  const since = Date.parse(first.createdAt);
  const commented = Date.parse(timing.commentedAt);
  return Number.isFinite(since) && Number.isFinite(commented) && since <= commented;
}

/** `502 on POST /projects/:id/...` with the route as code (it is built from the request path). */
function briefText(brief: string): string {
  const match = /^(\d{3}) on (.+)$/.exec(brief);
  return match ? `${match[1]} on ${code(match[2] ?? "")}` : escapeText(brief);
}

/**
 * How the bot answers a command: a command written as an internal note gets internal notes back, so the answer does
 * not make a confidential discussion public. The sticky note stays public: it is the MR's status.
 */
function replyOptions(job: CommandJob): { internal: true } | undefined {
  return job.internal ? { internal: true } : undefined;
}

/** Longest hint quoted in a reply: one sentence, not a dump. */
const MAX_HINT_CHARS = 300;

/**
 * The reply to a command the worker could not carry out: one sentence saying why, from the error's class (never
 * its message, which may hold GitLab's raw answer), and for `delayed` that it will be.
 */
export function commandAnswerText(command: CommandName, error: unknown, kind: "delayed" | "failed"): string {
  const name = `\`/${command}\``;
  if (kind === "delayed") {
    const brief = failureBrief(error);
    const why =
      brief === undefined
        ? `${name} is not carried out yet: something failed that should pass when tried again.`
        : `GitLab is not answering right now${brief === "no answer" ? "" : ` (${briefText(brief)})`}, so ${name} is not carried out yet.`;
    return `${why} It will be retried until it is; this merge request will show the result.`;
  }
  const hint =
    error instanceof PermanentError && error.hint
      ? error.hint
      : error instanceof ConfigError
        ? "the bot's configuration needs fixing; its log says what"
        : "GitLab refused it";
  const short = hint.length > MAX_HINT_CHARS ? `${hint.slice(0, MAX_HINT_CHARS - 1)}…` : hint;
  // Escaped: a hint may quote GitLab's answer, which may quote a branch name a contributor chose.
  return `${name} could not be carried out: ${escapeText(short)}.`;
}
