/**
 * The sweep: heals whatever events were missed (GitLab does not retry failed deliveries, FACTS.md), at the cost of
 * list pages, not of a read per MR.
 *
 * One pass at a time (a Redis claim across processes). For every project it covers (`sweep.projects`, or every
 * project in `scope` where the bot is a Maintainer) it reads, 100 per page:
 * - the open MRs, the trusted branches (`search=^<prefix>`) and, after its first pass, the MRs closed or merged
 *   since the previous pass started (`updated_after`: a close or merge whose webhook was lost);
 * and compares them with the bot's cache of GitLab's last answer per MR (store.ts `MrCache`: the head, state and
 * update time the last pass read, and the note's record of the trusted branch and its pipeline), the way an
 * informer resyncs. Only these MRs are reconciled:
 * - nothing cached (a cold cache): the note is read again; what the lists said goes along with the reconcile
 *   (`ListedFacts`): the MR as listed (a fork MR's pass need not read it again), the trusted branch as listed (a
 *   record it confirms needs no branch read) and, for many cold same-project MRs, whether their source branch is
 *   protected, from the project's branch list;
 * - the head, the state, the source or target branch or the labels differ from what the last pass saw;
 * - the trusted branch differs from the record (moved or deleted by hand, or made without the bot): a full look;
 * - the recorded trusted pipeline is still running (its end may have been missed);
 * - the rota: of the MRs not verified within `sweep.verify_interval_seconds` (or never), at most
 *   `ceil(N × interval_seconds / verify_interval_seconds)` per pass, those verified longest ago first, get a full look
 *   (every read again): every open MR is verified about once per interval, and the cost is spread over the passes
 *   instead of bursting (after a cold start too, when no MR has been verified yet).
 * Every trusted branch that no open MR owns is deleted once the MR its name gives (`parseTrustedBranchName`) has
 * been merged or closed for `sweep.grace_seconds`, or, when its name gives no existing MR, once the sweep has seen
 * it orphaned for that long; the MR is then reconciled so its sticky comment says so. Only names under the trusted
 * prefix are ever listed, so nothing else is ever deleted.
 *
 * Reconciles go through the queue at the sweep's priority (commands first) and are coalesced per MR, so a pass
 * whose reconciles are still queued when the next one starts costs nothing twice.
 * A project, MR or branch that fails is logged and counted and the pass goes on (`SweepFailures`).
 */
import type { Config } from "../config/config.js";
import { PermanentError, RateLimitedError } from "../errors.js";
import type { Branch, GitLabPort, MergeRequest, Project } from "../gitlab/port.js";
import type { JobContext, ListedFacts, MrKey, ReconcileOptions, SweepJob } from "../queue/jobs.js";
import { isServed } from "../receiver/route-event.js";
import type { AuditLog } from "./audit.js";
import { parseTrustedBranchName, trustedBranchName } from "./decide.js";
import { isActive } from "./model.js";
import { decodeState } from "./state.js";
import type { MrCache, TrustStore } from "./store.js";

export interface SweepDeps {
  port: GitLabPort;
  config: Config;
  store: TrustStore;
  audit: AuditLog;
  now: () => Date;
  /** Reads the project's policy file again (policy.ts); called once per project per pass. */
  refreshPolicy?: (projectId: number) => Promise<void>;
}

/** The bot must be at least Maintainer where it sweeps: it deletes protected branches. */
const SWEEP_MIN_ACCESS_LEVEL = 40;

/**
 * How far before the previous pass's start the "updated since" list reaches back: the pass reads GitLab's times
 * against the bot's clock, and an MR updated while the previous pass was listing must not fall between two passes.
 */
const UPDATED_AFTER_MARGIN_MS = 10 * 60 * 1000;

/** How long the sweep's claim lasts without renewal (renewed every third of it while the pass runs). */
const SWEEP_CLAIM_MS = 60_000;

/** The pass interval the rota assumes when passes are not periodic (the `sweep` subcommand, from cron). */
const DEFAULT_PASS_SECONDS = 900;

/** Why the sweep reconciles an MR (logged, counted). */
export type SweepReason = "cold" | "moved" | "branch" | "running" | "rota" | "closed";

export interface SweepSummary {
  projects: number;
  reconciles: Partial<Record<SweepReason, number>>;
  deleted: number;
  failed: number;
}

export async function runSweep(deps: SweepDeps, job: SweepJob, ctx: JobContext): Promise<SweepSummary | undefined> {
  const { store } = deps;
  // Held while this pass lists and compares, renewed while it runs: it expires soon after its process dies, so a
  // worker killed mid-pass holds up the next pass (or the `sweep` subcommand) for a minute, not for ten.
  const claim = await store.claimSweep(SWEEP_CLAIM_MS);
  if (!claim) {
    ctx.log.info({ reason: job.reason }, "a sweep pass is running already; this one is skipped");
    return undefined;
  }
  const renew = setInterval(() => {
    store.renewSweep(claim, SWEEP_CLAIM_MS).then(
      (held) => {
        if (!held) ctx.log.warn("the sweep's claim expired during the pass (the process stalled?); passes may overlap");
      },
      () => undefined, // Redis unreachable: the pass fails on its own next call
    );
  }, SWEEP_CLAIM_MS / 3);
  try {
    const failures = new SweepFailures(ctx);
    const projects = await sweepProjects(deps, ctx, failures);
    const summary: SweepSummary = { projects: projects.length, reconciles: {}, deleted: 0, failed: 0 };
    for (const project of projects) await sweepProject(deps, project, job, ctx, failures, summary);
    summary.failed = failures.count;
    if (failures.count > 0) ctx.log.error(summary, "sweep done; some projects, merge requests or branches failed");
    else ctx.log.info(summary, "sweep done");
    return summary;
  } finally {
    clearInterval(renew);
    await store.releaseSweep(claim).catch(() => undefined);
  }
}

async function sweepProject(
  deps: SweepDeps,
  project: Project,
  job: SweepJob,
  ctx: JobContext,
  failures: SweepFailures,
  summary: SweepSummary,
): Promise<void> {
  const { port, store, config } = deps;
  const prefix = config.trust.branch_prefix;
  const startedAt = deps.now();
  if (deps.refreshPolicy) {
    await deps
      .refreshPolicy(project.id)
      .catch((e) => failures.add(e, { projectId: project.id }, "could not read the project's policy"));
  }
  const previous = await store.lastSweep(project.id);
  const [open, branches, updated] = await Promise.all([
    port.listOpenMergeRequests(project.id).catch((e: unknown) => {
      failures.add(e, { projectId: project.id }, "could not list the project's open merge requests");
      return undefined;
    }),
    port.listBranches(project.id, prefix).catch((e: unknown) => {
      failures.add(e, { projectId: project.id }, "could not list the project's trusted branches");
      return undefined;
    }),
    previous === undefined
      ? Promise.resolve([])
      : recentlyEnded(port, project.id, new Date(Date.parse(previous) - UPDATED_AFTER_MARGIN_MS).toISOString()).catch(
          (e: unknown) => {
            failures.add(e, { projectId: project.id }, "could not list the project's recently updated merge requests");
            return undefined;
          },
        ),
  ]);
  // Without the open MRs, no trusted branch of the project is known to be unowned, and no MR can be compared.
  if (!open) return;
  const listed = branches ? new Map(branches.map((b) => [b.name, b.sha])) : undefined;

  const reconcile = async (
    mr: MergeRequest,
    reason: SweepReason,
    hint?: (key: MrKey) => Promise<void>,
    options?: ReconcileOptions,
  ) => {
    const key = { projectId: project.id, mrIid: mr.iid };
    try {
      await hint?.(key);
      await ctx.enqueueReconcile(key, `sweep:${job.reason}:${reason}`, options);
      summary.reconciles[reason] = (summary.reconciles[reason] ?? 0) + 1;
    } catch (error) {
      failures.add(error, key, "could not queue the merge request's reconcile");
    }
  };

  const caches = await store.getMrCaches(open.map((mr) => ({ projectId: project.id, mrIid: mr.iid })));
  const reasons = open.map((mr, i) => {
    const name = trustedBranchName(prefix, mr);
    const listedSha = listed ? (listed.get(name) ?? null) : undefined;
    return { listedSha, reason: compare(mr, caches[i], name, listedSha) };
  });
  const protectedBranches = await sourceBranchProtection(
    deps,
    project,
    open.filter((mr, i) => reasons[i]?.reason === "cold" && mr.sourceProjectId === project.id).length,
    failures,
  );
  const rota: Array<{ mr: MergeRequest; verifiedAt: number }> = [];
  for (const [i, mr] of open.entries()) {
    const cache = caches[i];
    const { listedSha, reason } = reasons[i] ?? {};
    if (reason === "cold") {
      const committerBranch = mr.sourceProjectId === project.id ? protectedBranches?.get(mr.sourceBranch) : undefined;
      const listed: ListedFacts = {
        mr,
        ...(listedSha !== undefined ? { branchSha: listedSha } : {}),
        ...(committerBranch !== undefined ? { committerBranch } : {}),
      };
      await reconcile(mr, reason, undefined, { listed });
    } else if (reason === "branch") {
      await reconcile(mr, reason, (k) => store.hintFull(k));
    } else if (reason !== undefined) {
      await reconcile(mr, reason);
    } else {
      rota.push({ mr, verifiedAt: cache?.verifiedAt ?? 0 });
    }
  }
  // The rota: a steady share of the project's open MRs per pass, those verified longest ago first.
  // Without a periodic sweep (`interval_seconds: 0`, passes run by the `sweep` subcommand), one every 15 min is assumed.
  const every = config.sweep.interval_seconds > 0 ? config.sweep.interval_seconds : DEFAULT_PASS_SECONDS;
  const verifyMs = config.sweep.verify_interval_seconds * 1000;
  const share = Math.ceil((open.length * every * 1000) / verifyMs);
  const dueBefore = startedAt.getTime() - verifyMs;
  const due = rota.filter((r) => r.verifiedAt <= dueBefore).sort((a, b) => a.verifiedAt - b.verifiedAt);
  for (const { mr } of due.slice(0, share)) await reconcile(mr, "rota", (k) => store.hintFull(k));

  // MRs closed or merged with the event lost: the cache still says what the last pass saw.
  const openIids = new Set(open.map((mr) => mr.iid));
  /** Trusted branches of the MRs reconciled as closed: their reconcile decides, the next pass cleans up. */
  const closing = new Set<string>();
  const gone = (updated ?? []).filter((mr) => mr.state !== "opened" && !openIids.has(mr.iid));
  const goneCaches = await store.getMrCaches(gone.map((mr) => ({ projectId: project.id, mrIid: mr.iid })));
  for (const [i, mr] of gone.entries()) {
    const cache = goneCaches[i];
    const recorded = cache ? decodeState(cache.noteBody ?? undefined).pipeline : undefined;
    if (cache && (cache.mr?.state !== mr.state || (recorded && isActive(recorded.status)))) {
      // A full look: the reconcile deletes the trusted branch it owns, which the record alone may not show.
      // The MR is read again, not taken from the list: this pass may delete its trusted branch.
      await reconcile(mr, "closed", (k) => store.hintFull(k));
      closing.add(trustedBranchName(prefix, mr));
    }
  }

  if (branches) {
    const left = branches.filter((b) => !closing.has(b.name));
    summary.deleted += await sweepBranches(deps, project, open, left, ctx, failures);
  }
  // The next pass lists what changed since this one started (only once this one got its lists).
  if (updated) await store.putLastSweep(project.id, startedAt.toISOString()).catch(() => undefined);
}

/** Cold same-project MRs from which on the project's branch list is read instead of one branch per MR. */
const BRANCH_LIST_MIN_COLD = 50;

/**
 * Whether each branch of the project is protected, when enough same-project MRs have a cold cache that paging
 * through the project's branches (100 per page, at most one page per 10 such MRs) is cheaper than reading their
 * source branches one by one; `undefined` otherwise. A branch it does not reach is read on its own by observe.
 */
async function sourceBranchProtection(
  deps: SweepDeps,
  project: Project,
  coldSameProject: number,
  failures: SweepFailures,
): Promise<Map<string, boolean> | undefined> {
  if (coldSameProject < BRANCH_LIST_MIN_COLD) return undefined;
  try {
    const branches = await deps.port.listAllBranches(project.id, Math.ceil(coldSameProject / 10));
    return new Map(branches.map((b) => [b.name, b.protected]));
  } catch (error) {
    failures.add(error, { projectId: project.id }, "could not list the project's branches");
    return undefined;
  }
}

/**
 * The MRs closed or merged (or updated while so) since `since`: two lists, so the open MRs updated meanwhile, which
 * the open list has already, are not paged through again.
 */
async function recentlyEnded(port: GitLabPort, projectId: number, since: string): Promise<MergeRequest[]> {
  const [closed, merged] = await Promise.all([
    port.listMergeRequests(projectId, { state: "closed", updatedAfter: since }),
    port.listMergeRequests(projectId, { state: "merged", updatedAfter: since }),
  ]);
  return [...closed, ...merged];
}

/**
 * Why an open MR needs a reconcile, comparing GitLab's list answer with the cache; `undefined` when they agree.
 * `listedSha`: the trusted branch's SHA per the branch list, `null` when the list has no such branch, `undefined`
 * when the list could not be read.
 */
export function compare(
  mr: MergeRequest,
  cache: MrCache | undefined,
  branchName: string,
  listedSha: string | null | undefined,
): SweepReason | undefined {
  if (!cache || cache.sourceBranch !== mr.sourceBranch) return "cold";
  // Head, state, target branch and labels (the trust-state labels a person may have taken off) as the last pass
  // left them.
  const last = cache.mr;
  if (
    last?.sha !== mr.sha ||
    last.state !== mr.state ||
    last.targetBranch !== mr.targetBranch ||
    !sameLabels(last.labels, mr.labels)
  ) {
    return "moved";
  }
  const record = decodeState(cache.noteBody ?? undefined, { branch: branchName });
  // A committer branch's MR needs no trust: whatever is under its trusted branch name is not its grant, and the
  // rota's full look is what notices the source branch losing its protection.
  if (!cache.committerBranch && listedSha !== undefined && listedSha !== (record.branchSha ?? null)) return "branch";
  if (record.pipeline && isActive(record.pipeline.status)) return "running";
  return undefined;
}

/**
 * What went wrong in one sweep pass. The sweep isolates failures: a project, an MR or a branch that cannot be handled
 * is logged with what it is (and counted) and the pass goes on with the rest, so one MR GitLab answers strangely
 * about never keeps every other one from being reconciled or cleaned up. Only a 429 ends the pass at once: every
 * further call would be refused too, and the worker waits as long as GitLab asks.
 *
 * A pass with failures still completes: the next periodic sweep is its retry. Failing the job instead would redo
 * the whole pass `worker.attempts` times for one MR that keeps failing, and would stop the `sweep` subcommand
 * before it reconciles the MRs the pass found. The "sweep done" line is logged at error level with the count.
 */
class SweepFailures {
  count = 0;

  constructor(private readonly ctx: JobContext) {}

  add(error: unknown, where: { projectId?: number | string; mrIid?: number; branch?: string }, what: string): void {
    if (error instanceof RateLimitedError) throw error;
    this.count++;
    const hint = error instanceof PermanentError ? error.hint : undefined;
    this.ctx.log.error({ ...where, err: errorText(error), ...(hint ? { hint } : {}) }, `sweep: ${what}; going on`);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function sweepProjects(deps: SweepDeps, ctx: JobContext, failures: SweepFailures): Promise<Project[]> {
  const configured = deps.config.sweep.projects;
  // Without a project list there is nothing to go on with: a failure here fails the job.
  // Of those, only the projects the bot serves (`scope`): a project outside it gets no webhooks acted on either.
  if (configured.length === 0) {
    const member = await deps.port.listMemberProjects(SWEEP_MIN_ACCESS_LEVEL);
    return member.filter((p) => isServed(deps.config.scope, p.id, p.pathWithNamespace));
  }
  const projects: Project[] = [];
  for (const ref of configured) {
    let project: Project | undefined;
    try {
      project = await deps.port.getProject(ref);
    } catch (error) {
      failures.add(error, { projectId: ref }, "could not read a project of sweep.projects");
      continue;
    }
    if (project) projects.push(project);
    else ctx.log.warn({ project: ref }, "sweep.projects names a project the bot cannot see; skipped");
  }
  return projects;
}

/** Deletes trusted branches no open MR owns, after the grace period; returns how many. */
async function sweepBranches(
  deps: SweepDeps,
  project: Project,
  open: MergeRequest[],
  branches: Branch[],
  ctx: JobContext,
  failures: SweepFailures,
) {
  const prefix = deps.config.trust.branch_prefix;
  const owned = new Set(open.map((mr) => trustedBranchName(prefix, mr)));
  let deleted = 0;
  for (const branch of branches) {
    try {
      if (await sweepBranch(deps, project, branch, owned, ctx)) deleted++;
    } catch (error) {
      const parsed = parseTrustedBranchName(prefix, branch.name);
      const where = { projectId: project.id, branch: branch.name, ...(parsed ? { mrIid: parsed.iid } : {}) };
      failures.add(error, where, "could not clean up a trusted branch");
    }
  }
  return deleted;
}

/** One trusted branch: deleted when no open MR owns it and the grace period is over; `true` when deleted. */
async function sweepBranch(
  deps: SweepDeps,
  project: Project,
  branch: Branch,
  owned: ReadonlySet<string>,
  ctx: JobContext,
): Promise<boolean> {
  const { port, store, config } = deps;
  const prefix = config.trust.branch_prefix;
  const grace = config.sweep.grace_seconds * 1000;
  const nowMs = deps.now().getTime();
  if (owned.has(branch.name)) {
    await store.forgetOrphan(project.id, branch.name);
    return false;
  }
  const mr = await mergeRequestOf(port, project.id, prefix, branch.name);
  if (mr?.state === "opened") return false; // opened since the list was read: its reconcile decides
  const since = mr
    ? Date.parse(mr.mergedAt ?? mr.closedAt ?? mr.updatedAt)
    : await store.orphanSince(project.id, branch.name, nowMs, config.sweep.grace_seconds + 24 * 3600);
  if (!(nowMs - (Number.isNaN(since) ? nowMs : since) >= grace)) return false;
  const deleted = await port.deleteBranch(project.id, branch.name);
  if (deleted) {
    await deps.audit.record({
      event: "cleanup",
      projectId: project.id,
      ...(mr ? { mrIid: mr.iid } : {}),
      sha: branch.sha,
      by: "sweep",
      reason: mr ? `merge request ${mr.state}` : "its name names no merge request",
      branch: branch.name,
      at: deps.now().toISOString(),
    });
  }
  await store.forgetOrphan(project.id, branch.name);
  // The MR as just read and the branch as just deleted: its pass needs neither read again (observe.ts).
  if (mr)
    await ctx.enqueueReconcile({ projectId: project.id, mrIid: mr.iid }, "sweep:cleanup", {
      listed: { mr, cleanedUp: true },
    });
  return deleted;
}

/** The MR a trusted branch was made for, as its name says (`parseTrustedBranchName`), if that MR exists. */
async function mergeRequestOf(
  port: GitLabPort,
  projectId: number,
  prefix: string,
  name: string,
): Promise<MergeRequest | undefined> {
  const parsed = parseTrustedBranchName(prefix, name);
  if (!parsed) return undefined;
  const mr = await port.getMergeRequest(projectId, parsed.iid);
  return mr?.sourceBranch === parsed.sourceBranch ? mr : undefined;
}

function sameLabels(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((l) => set.has(l));
}
