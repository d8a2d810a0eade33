/**
 * Apply: the writes after decide (STYLE.md §4), through the port, in the order decide gave. Each write's result is
 * folded back into the observation, so the next decide round sees GitLab as it now is (the created pipeline's id,
 * the branch where it now points) without reading it again.
 */
import { PermanentError } from "../errors.js";
import type { GitLabPort, Pipeline } from "../gitlab/port.js";
import type { AuditLog } from "./audit.js";
import type { Action, Observed } from "./model.js";
import { STICKY_MARKER } from "./state.js";

/**
 * Executes the non-deferred actions and returns the observation updated with their results. `branchPrefix` is the
 * configured trusted prefix: whatever decide asks, the only branch written or deleted is this MR's trusted branch.
 */
export async function applyActions(
  port: GitLabPort,
  observed: Observed,
  actions: readonly Action[],
  branchPrefix: string,
): Promise<Observed> {
  let o = observed;
  const { projectId, iid } = o.mr;
  for (const a of actions) {
    if (a.type === "ensureBranch" || a.type === "deleteBranch") assertOwnBranch(o, a.name, branchPrefix);
    switch (a.type) {
      case "record":
        o = { ...o, state: a.state };
        break;
      case "ensureBranch": {
        const result = await port.ensureTrustedBranch(projectId, a.name, a.sha, a.lastSeen);
        // A branch that already pointed there may already have a pipeline (a retried job): list before creating.
        const { pipelines: _p, trustedPipeline: _t, ...rest } = o;
        o = {
          ...rest,
          branch: { sha: a.sha, fresh: true },
          ...(result.outcome === "unchanged" ? {} : { pipelines: [] }),
        };
        break;
      }
      case "deleteBranch": {
        await port.deleteBranch(projectId, a.name);
        const { pipelines: _p, trustedPipeline: _t, ...rest } = o;
        o = { ...rest, branch: { sha: null, fresh: true } };
        break;
      }
      case "createPipeline": {
        const result = await port.createPipeline(projectId, a.ref, a.variables);
        if ("created" in result) {
          const pipeline = result.created;
          o = { ...o, trustedPipeline: { pipeline }, pipelines: [pipeline, ...(o.pipelines ?? [])] };
        } else {
          // GitLab refused the pipeline itself (e.g. `workflow: rules` filtered it out): the note says so.
          o = { ...o, pipelineError: result.refused };
        }
        break;
      }
      case "retryPipeline": {
        const pipeline = await port.retryPipeline(projectId, a.pipelineId);
        o = withPipeline({ ...o, trustedPipeline: { pipeline } }, pipeline);
        break;
      }
      case "cancelPipeline": {
        const result = await port.cancelPipeline(projectId, a.pipelineId);
        const known = o.pipelines?.find((p) => p.id === a.pipelineId) ?? o.trustedPipeline?.pipeline;
        const recorded = o.state.pipeline?.id === a.pipelineId ? o.state.pipeline : undefined;
        const pipeline: Pipeline | undefined =
          result ??
          (known?.id === a.pipelineId ? { ...known, status: "canceled" } : undefined) ??
          (recorded
            ? {
                id: recorded.id,
                projectId,
                ref: o.branchName,
                sha: recorded.sha,
                status: "canceled",
                source: "api",
                webUrl: recorded.url,
              }
            : undefined);
        if (!pipeline) break;
        o = withPipeline(o, pipeline);
        if (recorded || o.trustedPipeline?.pipeline.id === pipeline.id) o = { ...o, trustedPipeline: { pipeline } };
        break;
      }
      case "addLabels":
        await port.addLabels(projectId, iid, a.labels);
        o = { ...o, mr: { ...o.mr, labels: [...new Set([...o.mr.labels, ...a.labels])] } };
        break;
      case "ensureStatus":
        await port.ensureStatus(projectId, a.sha, a.status);
        break;
      case "ensureNote": {
        const note = await port.ensureStickyNote(projectId, iid, STICKY_MARKER, a.body, o.note);
        o = { ...o, note: { id: note.id, body: a.body } };
        break;
      }
      case "reply":
      case "award":
      case "audit":
        throw new Error(`${a.type} is deferred; use applyDeferred`);
    }
  }
  return o;
}

/** Replies, emoji and audit entries: after the note recorded the transition, so a retried job does not repeat them. */
export async function applyDeferred(
  port: GitLabPort,
  audit: AuditLog,
  mr: { projectId: number; iid: number },
  actions: readonly Action[],
): Promise<void> {
  for (const a of actions) {
    switch (a.type) {
      case "reply":
        await port.postNote(mr.projectId, mr.iid, a.body);
        break;
      case "award":
        await port.awardEmoji(mr.projectId, mr.iid, a.noteId, a.name);
        break;
      case "audit":
        await audit.record(a.entry);
        break;
      default:
        throw new Error(`${a.type} is not deferred; use applyActions`);
    }
  }
}

/**
 * The last line of defence for protected branches: a branch write or delete names this MR's trusted branch (the
 * naming rule's name, under the trusted prefix), or it is a bug, never carried out. A record or an event that
 * slipped another name past decide (`release/1.0`, another MR's grant) stops here.
 */
function assertOwnBranch(o: Observed, name: string, branchPrefix: string): void {
  if (name === o.branchName && name.startsWith(branchPrefix)) return;
  throw new PermanentError(
    `refused to write or delete branch ${JSON.stringify(name)} for ${o.mr.projectId}!${o.mr.iid}: it is not this merge request's trusted branch ${JSON.stringify(o.branchName)}`,
    "this is a bug in trusted-mr-bot (or a forged record it did not catch); please report it with this log line",
  );
}

function withPipeline(o: Observed, pipeline: Pipeline): Observed {
  if (!o.pipelines) return o;
  return { ...o, pipelines: o.pipelines.map((p) => (p.id === pipeline.id ? pipeline : p)) };
}
