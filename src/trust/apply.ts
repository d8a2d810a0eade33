/**
 * Apply: the writes after decide (STYLE.md §4), through the port, in the order decide gave. Each write's result is
 * folded back into the observation, so the next decide round sees GitLab as it now is (the created pipeline's id,
 * the branch where it now points) without reading it again.
 */
import { createHash } from "node:crypto";
import { PermanentError } from "../errors.js";
import type { GitLabPort, Pipeline } from "../gitlab/port.js";
import type { AuditLog } from "./audit.js";
import type { Action, Observed } from "./model.js";
import type { MrKey } from "../queue/jobs.js";
import type { CommandIntent, TrustStore } from "./store.js";
import { STICKY_MARKER } from "./state.js";

export interface ApplyContext {
  /** The configured trusted prefix: whatever decide asks, the only branch written or deleted is this MR's own. */
  branchPrefix: string;
  /** Records a committer's command durably before its branch write (store.ts `writeIntent`). */
  writeIntent(intent: CommandIntent): Promise<void>;
}

/** Executes the non-deferred actions and returns the observation updated with their results. */
export async function applyActions(
  port: GitLabPort,
  observed: Observed,
  actions: readonly Action[],
  ctx: ApplyContext,
): Promise<Observed> {
  let o = observed;
  const { projectId, iid } = o.mr;
  for (const a of actions) {
    if (a.type === "ensureBranch" || a.type === "deleteBranch") assertOwnBranch(o, a.name, ctx.branchPrefix);
    switch (a.type) {
      case "record":
        o = { ...o, state: a.state };
        break;
      case "ensureBranch": {
        // An earlier attempt of this same grant may have written the branch and created its pipeline before it died.
        const retried = o.intent?.command === "trust" && o.intent.sha === a.sha;
        if (a.intent) await ctx.writeIntent(a.intent);
        const result = await port.ensureTrustedBranch(projectId, a.name, a.sha, a.lastSeen);
        // Pipelines on (branch, SHA) are listed before one is created whenever one may exist: the branch already
        // pointed there, or a previous attempt of this grant got as far as the branch. Only a branch this write
        // created or moved for a first attempt is known to have none (the fast path: no list call).
        const { pipelines: _p, trustedPipeline: _t, ...rest } = o;
        o = {
          ...rest,
          branch: { sha: a.sha, fresh: true },
          ...(result.outcome === "unchanged" || retried ? {} : { pipelines: [] }),
        };
        break;
      }
      case "deleteBranch": {
        if (a.intent) await ctx.writeIntent(a.intent);
        await port.deleteBranch(projectId, a.name);
        const { pipelines: _p, trustedPipeline: _t, ...rest } = o;
        o = { ...rest, branch: { sha: null, fresh: true } };
        break;
      }
      case "createPipeline": {
        const result = await port.createPipeline(projectId, a.ref, a.variables);
        if ("created" in result && result.created.sha !== a.sha) {
          // GitLab runs the branch's head: someone moved the trusted branch between the pin and this call. Such a
          // pipeline must not run, least of all without the bot's variables, where the CI template trusts a pipeline
          // because the bot started it (input `bot-username`). The push that moved the branch is observed next.
          const pipeline = result.created;
          await port.cancelPipeline(projectId, pipeline.id);
          o = {
            ...o,
            pipelineError: `the trusted branch moved to ${pipeline.sha.slice(0, 8)} before the pipeline started, so pipeline #${pipeline.id} was canceled`,
          };
        } else if ("created" in result) {
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
      case "editLabels": {
        await port.editLabels(projectId, iid, { add: a.add, remove: a.remove });
        const labels = [
          ...o.mr.labels.filter((l) => !a.remove.includes(l)),
          ...a.add.filter((l) => !o.mr.labels.includes(l)),
        ];
        o = { ...o, mr: { ...o.mr, labels } };
        break;
      }
      case "ensureStatus":
        await port.ensureStatus(projectId, a.sha, a.status);
        break;
      case "merge": {
        // Never sent twice (a lost answer fails the job; its retry observes the MR merged and stops there).
        const result = await port.mergeMergeRequest(projectId, iid, a.sha);
        o =
          "merged" in result
            ? { ...o, mr: result.merged }
            : { ...o, mergeRefusal: { sha: a.sha, by: a.by, reason: result.refused, message: result.message } };
        break;
      }
      case "approve":
        // A moved head (409) approves nothing: the push that moved it brings the next pass, which withdraws.
        await port.approveMergeRequest(projectId, iid, a.sha);
        break;
      case "unapprove":
        await port.unapproveMergeRequest(projectId, iid);
        break;
      case "statusCheckResponse":
        await port.respondToStatusCheck(projectId, iid, a.name, a.sha, a.status);
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

/**
 * A deferred action with the key that names it among the MR's pending actions (store.ts `putPending`). A reply to a
 * command written as an internal note carries `internal: true` (stored with it), so it is posted as one.
 */
export interface PendingAction {
  key: string;
  action: Extract<Action, { type: "award" | "audit" }> | (Extract<Action, { type: "reply" }> & { internal?: boolean });
}

/** The deferred action as stored: a reply to an internal command is marked to be posted as an internal note. */
export function deferredAction(a: Extract<Action, { type: "reply" | "award" | "audit" }>, internal: boolean) {
  return a.type === "reply" && internal ? { ...a, internal: true } : a;
}

/**
 * The key of a deferred action: the same action decided again (a retried pass whose note write never happened)
 * gets the same key, so it replaces the one left behind instead of doubling it. Audit entries are keyed by what
 * they say, not when; awards by their note; replies by the command note they answer and their place in the pass.
 */
export function pendingKey(a: PendingAction["action"], commandNoteId: number | undefined, index: number): string {
  switch (a.type) {
    case "award":
      return `award:${a.noteId}`;
    case "reply":
      return `reply:${commandNoteId ?? "-"}:${index}`;
    case "audit": {
      const { at: _at, ...what } = a.entry;
      return `audit:${createHash("sha256").update(JSON.stringify(what)).digest("hex").slice(0, 32)}`;
    }
  }
}

/** Completion order: the audit entry first (it never depends on an emoji), then the award, then replies. */
const ORDER: Record<PendingAction["action"]["type"], number> = { audit: 0, award: 1, reply: 2 };

/**
 * Carries out an MR's pending deferred actions, each removed from the pending set once done (an audit entry in the
 * same atomic step as its write). Replies, emoji and audit entries are idempotent this way: a retry that finds them
 * pending does them; one that finds them done does nothing. A failure leaves the rest pending for the next pass.
 */
export async function completePending(
  port: GitLabPort,
  audit: AuditLog,
  store: TrustStore,
  key: MrKey,
  pending: readonly PendingAction[],
): Promise<void> {
  const hash = store.pendingKey(key);
  for (const { key: field, action: a } of [...pending].sort((x, y) => ORDER[x.action.type] - ORDER[y.action.type])) {
    switch (a.type) {
      case "audit":
        await audit.recordPending(a.entry, { hash, field });
        continue;
      case "award":
        await port.awardEmoji(key.projectId, key.mrIid, a.noteId, a.name);
        break;
      case "reply":
        await port.postNote(key.projectId, key.mrIid, a.body, a.internal ? { internal: true } : undefined);
        break;
    }
    await store.donePending(key, field);
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
