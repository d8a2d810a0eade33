/**
 * The sweep: heals whatever events were missed (GitLab does not retry failed deliveries, FACTS.md).
 *
 * For every project it covers (`sweep.projects`, or every project where the bot is a Maintainer):
 * - every open MR gets a full reconcile (the "full" hint makes observe read the note, the trusted branch and its
 *   pipelines again instead of trusting caches);
 * - every trusted branch that no open MR owns is deleted once the MR its name gives (`parseTrustedBranchName`) has
 *   been merged or closed for `sweep.grace_seconds`, or, when its name gives no existing MR, once the sweep has seen
 *   it orphaned for that long; the MR is then reconciled so its sticky comment says so. Only names under the
 *   trusted prefix are ever listed, so nothing else is ever deleted.
 */
import type { Config } from "../config/config.js";
import type { GitLabPort, MergeRequest, Project } from "../gitlab/port.js";
import type { JobContext, SweepJob } from "../queue/jobs.js";
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
  const projects = await sweepProjects(deps, ctx);
  let reconciles = 0;
  let deleted = 0;
  for (const project of projects) {
    const open = await port.listOpenMergeRequests(project.id);
    for (const mr of open) {
      const key = { projectId: project.id, mrIid: mr.iid };
      await deps.store.hintFull(key);
      await ctx.enqueueReconcile(key, `sweep:${job.reason}`);
      reconciles++;
    }
    deleted += await sweepBranches(deps, project, open, ctx);
  }
  ctx.log.info({ projects: projects.length, reconciles, deleted }, "sweep done");
}

async function sweepProjects(deps: SweepDeps, ctx: JobContext): Promise<Project[]> {
  const configured = deps.config.sweep.projects;
  if (configured.length === 0) return deps.port.listMemberProjects(SWEEP_MIN_ACCESS_LEVEL);
  const projects: Project[] = [];
  for (const ref of configured) {
    const project = await deps.port.getProject(ref);
    if (project) projects.push(project);
    else ctx.log.warn({ project: ref }, "sweep.projects names a project the bot cannot see; skipped");
  }
  return projects;
}

/** Deletes trusted branches no open MR owns, after the grace period; returns how many. */
async function sweepBranches(deps: SweepDeps, project: Project, open: MergeRequest[], ctx: JobContext) {
  const { port, store, config } = deps;
  const prefix = config.trust.branch_prefix;
  const grace = config.sweep.grace_seconds * 1000;
  const nowMs = deps.now().getTime();
  const owned = new Set(open.map((mr) => trustedBranchName(prefix, mr)));
  let deleted = 0;
  for (const branch of await port.listBranches(project.id, prefix)) {
    if (owned.has(branch.name)) {
      await store.forgetOrphan(project.id, branch.name);
      continue;
    }
    const mr = await mergeRequestOf(port, project.id, prefix, branch.name);
    if (mr?.state === "opened") continue; // opened since the list was read: its reconcile decides
    const since = mr
      ? Date.parse(mr.mergedAt ?? mr.closedAt ?? mr.updatedAt)
      : await store.orphanSince(project.id, branch.name, nowMs, config.sweep.grace_seconds + 24 * 3600);
    if (!(nowMs - (Number.isNaN(since) ? nowMs : since) >= grace)) continue;
    if (await port.deleteBranch(project.id, branch.name)) {
      deleted++;
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
