/**
 * The sweep: heals whatever events were missed (GitLab does not retry failed deliveries, FACTS.md).
 *
 * For every project it covers (`sweep.projects`, or every project in `scope` where the bot is a Maintainer):
 * - every open MR gets a full reconcile (the "full" hint makes observe read the note, the trusted branch and its
 *   pipelines again instead of trusting caches);
 * - every trusted branch that no open MR owns is deleted once the MR its name gives (`parseTrustedBranchName`) has
 *   been merged or closed for `sweep.grace_seconds`, or, when its name gives no existing MR, once the sweep has seen
 *   it orphaned for that long; the MR is then reconciled so its sticky comment says so. Only names under the
 *   trusted prefix are ever listed, so nothing else is ever deleted.
 * A project, MR or branch that fails is logged and counted and the pass goes on (`SweepFailures`).
 */
import type { Config } from "../config/config.js";
import { PermanentError, RateLimitedError } from "../errors.js";
import type { Branch, GitLabPort, MergeRequest, Project } from "../gitlab/port.js";
import type { JobContext, SweepJob } from "../queue/jobs.js";
import { isServed } from "../receiver/route-event.js";
import type { AuditLog } from "./audit.js";
import { parseTrustedBranchName, trustedBranchName } from "./decide.js";
import type { TrustStore } from "./store.js";

export interface SweepDeps {
  port: GitLabPort;
  config: Config;
  store: TrustStore;
  audit: AuditLog;
  now: () => Date;
}

/** The bot must be at least Maintainer where it sweeps: it deletes protected branches. */
const SWEEP_MIN_ACCESS_LEVEL = 40;

export async function runSweep(deps: SweepDeps, job: SweepJob, ctx: JobContext): Promise<void> {
  const { port } = deps;
  const failures = new SweepFailures(ctx);
  const projects = await sweepProjects(deps, ctx, failures);
  let reconciles = 0;
  let deleted = 0;
  for (const project of projects) {
    let open: MergeRequest[];
    try {
      open = await port.listOpenMergeRequests(project.id);
    } catch (error) {
      // Without the open MRs, no trusted branch of the project is known to be unowned: skip its branches too.
      failures.add(error, { projectId: project.id }, "could not list the project's open merge requests");
      continue;
    }
    for (const mr of open) {
      const key = { projectId: project.id, mrIid: mr.iid };
      try {
        await deps.store.hintFull(key);
        await ctx.enqueueReconcile(key, `sweep:${job.reason}`);
        reconciles++;
      } catch (error) {
        failures.add(error, { projectId: project.id, mrIid: mr.iid }, "could not queue the merge request's reconcile");
      }
    }
    deleted += await sweepBranches(deps, project, open, ctx, failures);
  }
  const summary = { projects: projects.length, reconciles, deleted, failed: failures.count };
  if (failures.count > 0) ctx.log.error(summary, "sweep done; some projects, merge requests or branches failed");
  else ctx.log.info(summary, "sweep done");
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
  ctx: JobContext,
  failures: SweepFailures,
) {
  const { port, config } = deps;
  const prefix = config.trust.branch_prefix;
  const owned = new Set(open.map((mr) => trustedBranchName(prefix, mr)));
  let branches: Branch[];
  try {
    branches = await port.listBranches(project.id, prefix);
  } catch (error) {
    failures.add(error, { projectId: project.id }, "could not list the project's trusted branches");
    return 0;
  }
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
  if (mr) {
    const key = { projectId: project.id, mrIid: mr.iid };
    await store.hintFull(key);
    await ctx.enqueueReconcile(key, "sweep:cleanup");
  }
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
