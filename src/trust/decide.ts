/**
 * decide(observed, config, trigger) -> actions: the whole trust workflow as a pure function (STYLE.md §4).
 *
 * It is called in rounds by the reconciler: actions that produce facts decide needs next (a created branch, a new
 * pipeline) end a round; the reconciler applies them, patches the observation and calls decide again, until a
 * round asks for nothing but the state record. The final round posts the commit status and the sticky note. A
 * command trigger is passed in the first round only. Every transition (grant, revoke, stale, cleanup) is detected
 * against the recorded state, so replaying an event, or a whole reconcile, changes nothing.
 */
import type { Config } from "../config/config.js";
import type { CommitStatusState, MergeRequest, Pipeline, PipelineVariable } from "../gitlab/port.js";
import {
  type Action,
  type AuditEntry,
  FACT_PRODUCING_ACTIONS,
  isActive,
  mirroredStatus,
  type Observed,
  type Trigger,
} from "./model.js";
import { compareUrl, helpText, mention, renderNote, shortSha } from "./render.js";
import { HANDLED_LIMIT, type StickyState } from "./state.js";

export type DecideConfig = Pick<
  Config["trust"],
  | "branch_prefix"
  | "status_name"
  | "cancel_stale_pipelines"
  | "committer_branch_label"
  | "welcome_first_time_contributors"
  | "welcome_text"
  | "require_sha"
  | "approve"
  | "external_status_check"
  | "state_labels"
>;

/** The emoji that acknowledges a command the bot carried out. */
export const ACK_EMOJI = "thumbsup";

/** States the commit status API takes. */
const COMMIT_STATUS_STATES: ReadonlySet<string> = new Set([
  "pending",
  "running",
  "success",
  "failed",
  "canceled",
  "skipped",
]);

/** Commit statuses allow 255 characters of description. */
const MAX_DESCRIPTION = 255;

export function decide(o: Observed, config: DecideConfig, trigger?: Trigger): Action[] {
  if (o.committerBranch) return decideCommitterBranch(o, config, trigger);
  if (o.mr.state === "merged" || o.mr.state === "closed") return decideClosed(o, config, trigger);
  if (o.mr.state !== "opened") {
    return trigger
      ? [reply("This merge request is being merged right now; commands apply to open merge requests.")]
      : [];
  }
  return decideOpen(o, config, trigger);
}

/**
 * The trusted branch name rule: `<prefix><source branch>-mr<iid>`. Collision-free by construction: the name ends
 * in `-mr` and the MR's iid, and an iid is a maximal run of digits after `r` (no leading zero), so the name gives
 * back exactly one iid, and iids are unique in the target project. No source branch name, however it is chosen
 * (a fork's `feature-mr2`, say), can produce another MR's name. See {@link parseTrustedBranchName}.
 */
export function trustedBranchName(prefix: string, mr: Pick<MergeRequest, "sourceBranch" | "iid">): string {
  return `${prefix}${mr.sourceBranch}-mr${mr.iid}`;
}

/** The MR a trusted branch name was made for (its iid and source branch), or `undefined` if the rule gives no such name. */
export function parseTrustedBranchName(
  prefix: string,
  name: string,
): { iid: number; sourceBranch: string } | undefined {
  if (!name.startsWith(prefix)) return undefined;
  const match = /^(.+)-mr([1-9]\d*)$/.exec(name.slice(prefix.length));
  if (!match?.[1] || !match[2]) return undefined;
  const iid = Number(match[2]);
  return Number.isSafeInteger(iid) ? { iid, sourceBranch: match[1] } : undefined;
}

/** The trusted pipeline among those on (trusted branch, SHA): the recorded one, else the newest the API created. */
export function chooseTrustedPipeline(pipelines: readonly Pipeline[], recordedId?: number): Pipeline | undefined {
  return pipelines.find((p) => p.id === recordedId) ?? pipelines.find((p) => p.source === "api");
}

/**
 * The variables the trusted pipeline gets where the project lets the bot set pipeline variables (the CI templates
 * read these names). Nothing depends on them: where GitLab refuses them (`no_one_allowed`, GitLab.com's default for
 * new projects) the port creates the pipeline without them, the CI template recognizes it by the user who started
 * it (input `bot-username`), and the bot finds the MR from the trusted branch's name.
 */
export function pipelineVariables(mr: MergeRequest, sha: string, grantedBy: string): PipelineVariable[] {
  return [
    { key: "TRUSTED_MR_IID", value: String(mr.iid) },
    { key: "TRUSTED_SOURCE_SHA", value: sha },
    // Empty once the source fork was deleted (the CI templates read an empty value as unset).
    { key: "TRUSTED_SOURCE_PROJECT_ID", value: mr.sourceProjectId === null ? "" : String(mr.sourceProjectId) },
    { key: "TRUSTED_SOURCE_BRANCH", value: mr.sourceBranch },
    { key: "TRUSTED_GRANTED_BY", value: grantedBy },
  ];
}

/**
 * Where the commit status goes: the source branch, or for a fork MR the MR's ref in the target project. An MR whose
 * fork was deleted (`sourceProjectId` null) is a fork MR: GitLab keeps its `refs/merge-requests/<iid>/head`.
 */
export function statusRef(mr: MergeRequest): string {
  return mr.sourceProjectId === mr.projectId ? mr.sourceBranch : `refs/merge-requests/${mr.iid}/head`;
}

/**
 * The pipeline a same-project MR's status is posted into: its head pipeline (`head_pipeline`, GitLab's
 * `MergeRequest#diff_head_pipeline`), which is what "Pipelines must succeed" reads. A status posted with
 * `pipeline_id` joins that pipeline (`Ci::CreateCommitStatusService#first_matching_pipeline`, whose `ref` must be the
 * pipeline's: `refs/merge-requests/<iid>/head` for a merge request pipeline), and while it is not `success` the
 * pipeline cannot succeed (`Ci::Status::Composite`). A fork MR's head pipeline is in the fork, where the bot cannot
 * post: `undefined`, and the status goes to the MR's ref in the target as before ({@link statusRef}).
 */
export function gatedPipeline(mr: MergeRequest): { id: number; ref: string; status: string } | undefined {
  const p = mr.headPipeline;
  if (mr.sourceProjectId !== mr.projectId || !p || p.projectId !== mr.projectId || p.sha !== mr.sha) return undefined;
  return { id: p.id, ref: p.ref, status: p.status };
}

/**
 * A status inside the head pipeline must never let it pass unless the trusted pipeline did: `skipped` counts as
 * passed in GitLab's composite status (`onlyOf(success, skipped, ...)`), so a skipped trusted pipeline is `failed`
 * there. Every other state but `success` keeps the head pipeline from succeeding (API statuses are never
 * `allow_failure`).
 */
function gatedState<T extends { state: CommitStatusState }>(desired: T, into: { id: number } | undefined): T {
  return into && desired.state === "skipped" ? { ...desired, state: "failed" } : desired;
}

function decideCommitterBranch(o: Observed, config: DecideConfig, trigger?: Trigger): Action[] {
  const actions: Action[] = [];
  const label = config.committer_branch_label;
  if (o.mr.state === "opened" && !o.mr.labels.includes(label)) actions.push({ type: "addLabels", labels: [label] });
  if (trigger) {
    actions.push(
      reply(
        trigger.command === "help"
          ? helpText()
          : `This merge request comes from \`${o.mr.sourceBranch}\`, a protected branch of this project: its pipelines already run with committer permissions, so there is nothing to trust.`,
      ),
    );
  }
  return actions;
}

function decideClosed(o: Observed, config: DecideConfig, trigger?: Trigger): Action[] {
  const deferred: Action[] = [];
  const state = o.mr.state as "merged" | "closed";
  if (trigger && trigger.command === "merge" && state === "merged") {
    // Merged already, perhaps by this very command in an attempt that stopped before its note: done, as asked.
    if (!o.state.handled?.includes(trigger.noteId)) deferred.push(award(trigger.noteId));
  } else if (trigger) {
    deferred.push(
      reply(
        trigger.command === "help"
          ? helpText()
          : `This merge request is ${state}; commands apply to open merge requests only.`,
      ),
    );
  }
  if (!o.note && o.branch.sha === null) return deferred;
  let next = withPipelineFacts(o, o.state);
  const asked = next.mergeWhenTrusted;
  if (asked) {
    // The `/merge` was carried out (merged at its SHA), or the MR was merged or closed some other way meanwhile.
    if (state === "merged" && o.mr.sha === asked.sha) {
      deferred.push(audit(o, { event: "merge", sha: asked.sha, by: asked.by, reason: "/merge", branch: o.branchName }));
    }
    next = { ...next, mergeWhenTrusted: undefined };
  }
  const effects: Action[] = [];
  // Only a branch this MR's own record says the bot made (or adopted) for it is deleted here; anything else under
  // its name is left to the sweep, which deletes it once the MR has been closed for the grace period.
  const branchExists = o.branch.sha !== null && next.owned === true;
  if (!next.closed || branchExists) {
    if (!next.closed && next.pipeline && isActive(next.pipeline.status)) {
      effects.push({ type: "cancelPipeline", pipelineId: next.pipeline.id });
    }
    if (branchExists) effects.push({ type: "deleteBranch", name: o.branchName });
    next = {
      ...next,
      closed: {
        state,
        at: o.mr.mergedAt ?? o.mr.closedAt ?? o.now,
        deletedBranch: branchExists ? o.branchName : next.closed?.deletedBranch,
      },
      grant: undefined,
      branch: undefined,
      branchSha: undefined,
      owned: undefined,
      staleHead: undefined,
      mismatch: undefined,
      pipelineError: undefined,
    };
    if (branchExists) {
      deferred.push(
        audit(o, {
          event: "cleanup",
          sha: o.branch.sha ?? undefined,
          by: o.bot.username,
          reason: `merge request ${state}`,
          branch: o.branchName,
        }),
      );
    }
  }
  // The last trusted pipeline ended after the close (typically: the close cancelled it): the head's status says how.
  const p = next.pipeline;
  const final = p && COMMIT_STATUS_STATES.has(p.status) ? (p.status as CommitStatusState) : undefined;
  if (p && final && next.status?.sha === p.sha && p.sha === o.mr.sha && next.status.state !== final) {
    const description = `Trusted pipeline #${p.id} ${final === "canceled" ? "was canceled" : final} (merge request ${state})`;
    effects.push({
      type: "ensureStatus",
      sha: p.sha,
      status: { name: config.status_name, state: final, ref: statusRef(o.mr), description, targetUrl: p.url },
    });
    next = { ...next, status: { sha: p.sha, state: final, description } };
  }
  return finish(o, config, next, effects, deferred, { withStatus: false });
}

function decideOpen(o: Observed, config: DecideConfig, trigger?: Trigger): Action[] {
  const head = o.mr.sha;
  const effects: Action[] = [];
  const deferred: Action[] = [];
  let next: StickyState = { ...o.state, closed: undefined };
  if (!next.branch) next.branch = o.branchName;
  if (next.firstTime === undefined && o.firstTime !== undefined) next.firstTime = o.firstTime;

  // What GitLab says about the trusted branch, when it was read in this pass (manual flow, hand-made changes).
  if (o.branch.fresh) {
    const branchSha = o.branch.sha;
    const grant = next.grant;
    const pusher = o.pusher;
    next.branchSha = branchSha ?? undefined;
    if (branchSha === null) {
      next.mismatch = undefined;
      next.owned = undefined;
      const untrust =
        o.intent?.command === "untrust" && !next.handled?.includes(o.intent.noteId) ? o.intent : undefined;
      if (untrust) {
        // The bot deleted it for a committer's `/untrust` and stopped before the note said so: that revoke.
        next = handled(revoke(o, next, grant?.sha, untrust.by, "/untrust", deferred, effects), untrust.noteId);
        deferred.push(award(untrust.noteId));
      } else if (grant) {
        next = revoke(
          o,
          next,
          grant.sha,
          pusher?.username ?? "someone",
          "the trusted branch was deleted",
          deferred,
          effects,
        );
      }
    } else if (grant?.sha !== branchSha) {
      const intended = o.intent?.command === "trust" && o.intent.sha === branchSha ? o.intent : undefined;
      if (intended) {
        // The bot wrote this branch for a committer's `/trust` and stopped before the note said so: that grant.
        next = {
          ...handled(next, intended.noteId),
          grant: { sha: branchSha, by: intended.by, at: intended.at, noteUrl: intended.noteUrl },
          owned: true,
          mismatch: undefined,
          revoked: undefined,
          staleHead: undefined,
          pipelineError: undefined,
          pipeline: next.pipeline?.sha === branchSha ? next.pipeline : undefined,
        };
        deferred.push(
          audit(o, { event: "grant", sha: branchSha, by: intended.by, reason: "/trust", branch: o.branchName }),
          award(intended.noteId),
        );
      } else if (branchSha === head && pusher?.committer) {
        // A committer pushed the trusted branch to the head by hand: that is a grant, by them.
        next = {
          ...next,
          grant: { sha: head, by: pusher.username, at: o.now, manual: true },
          owned: true,
          mismatch: undefined,
          revoked: undefined,
          staleHead: undefined,
          pipelineError: undefined,
          pipeline: next.pipeline?.sha === head ? next.pipeline : undefined,
        };
        deferred.push(
          audit(o, {
            event: "grant",
            sha: head,
            by: pusher.username,
            reason: "trusted branch pushed by hand by a committer",
            branch: o.branchName,
          }),
        );
      } else {
        // Moved elsewhere, or to the head by someone who is not a committer (or whom no push event named):
        // never a grant. Left as it is; nothing is started, and the note says so.
        if (grant) {
          const reason = `the trusted branch was moved by hand to ${shortSha(branchSha)}`;
          next = revoke(o, next, grant.sha, pusher?.username ?? "someone", reason, deferred, effects);
          next.branchSha = branchSha;
        }
        next.mismatch = { sha: branchSha, ...(pusher && !pusher.committer ? { by: pusher.username } : {}) };
      }
    } else {
      next.mismatch = undefined;
    }
  }

  if (trigger) next = decideCommand(o, config, next, trigger, effects, deferred);
  if (effects.some((a) => FACT_PRODUCING_ACTIONS.has(a.type))) {
    return [record(next), ...effects, ...deferred];
  }

  // Mirror what was read about the trusted pipeline into the record.
  next = withPipelineFacts(o, next);

  const grant = next.grant;
  const trustedSha = grant && next.branchSha === grant.sha ? grant.sha : undefined;
  if (trustedSha !== undefined && trustedSha === head) {
    next.staleHead = undefined;
    if (o.pipelineError && !next.pipeline) next.pipelineError = { sha: head, message: o.pipelineError };
    const recorded = next.pipeline?.sha === head ? next.pipeline : undefined;
    const known =
      o.trustedPipeline?.pipeline ?? (o.pipelines ? chooseTrustedPipeline(o.pipelines, recorded?.id) : undefined);
    const knownNone = !known && !recorded && o.pipelines !== undefined;
    if (knownNone && next.pipelineError?.sha !== head) {
      effects.push({
        type: "createPipeline",
        ref: o.branchName,
        sha: head,
        variables: pipelineVariables(o.mr, head, grant?.by ?? "unknown"),
      });
      return [record(next), ...effects, ...deferred];
    }
    // A pipeline GitLab started by itself for the branch push is a second run of the same SHA: cancel it.
    const trustedId = known?.id ?? recorded?.id;
    for (const p of o.pipelines ?? []) {
      if (p.id !== trustedId && p.source === "push" && isActive(p.status) && p.status !== "canceling") {
        effects.push({ type: "cancelPipeline", pipelineId: p.id });
      }
    }
  } else if (trustedSha !== undefined && next.staleHead !== head) {
    next.staleHead = head;
    const p = next.pipeline;
    if (config.cancel_stale_pipelines && p && p.sha === trustedSha && isActive(p.status) && p.status !== "canceling") {
      effects.push({ type: "cancelPipeline", pipelineId: p.id });
    }
    deferred.push(
      audit(o, {
        event: "stale",
        sha: head,
        by: o.mr.author.username,
        reason: `new commits after ${shortSha(trustedSha)}`,
        branch: o.branchName,
      }),
    );
  }
  next = mergeWhenPassed(o, next, effects, deferred);
  return finish(o, config, next, effects, deferred, { withStatus: true });
}

/**
 * A committer's `/merge` (recorded as `mergeWhenTrusted`) is carried out once the trusted pipeline passed for the
 * very head it was asked for, through the merge API with `sha` = that head, so a push racing the call makes GitLab
 * refuse (409) and nothing unreviewed is merged. For a same-project MR the bot's status must first have made the
 * head pipeline pass (GitLab's "Pipelines must succeed" reads it), so it waits for the MR read to show that. It is
 * forgotten, and the note says why, on a new head, a revoke, a failure or a refusal by GitLab.
 */
function mergeWhenPassed(o: Observed, state: StickyState, effects: Action[], deferred: Action[]): StickyState {
  const wait = state.mergeWhenTrusted;
  if (!wait) return state;
  const head = o.mr.sha;
  const drop = (reason: string): StickyState => ({
    ...state,
    mergeWhenTrusted: undefined,
    mergeDropped: { by: wait.by, reason },
  });
  const refusal = o.mergeRefusal;
  if (refusal) {
    const why =
      refusal.reason === "sha"
        ? `new commits were pushed while it was being merged, so GitLab merged nothing (the trusted commit was ${shortSha(refusal.sha)})`
        : refusal.reason === "not_allowed"
          ? "GitLab does not let the bot merge into the target branch"
          : "GitLab refused to merge it (a draft, conflicts, missing approvals or a pipeline that has not passed)";
    deferred.push(reply(`${mention(wait.by)}: not merged: ${why}.`));
    return drop(why);
  }
  const grant = state.grant;
  const trusted = grant && state.branchSha === grant.sha ? grant : undefined;
  if (wait.sha !== head) return drop(`new commits arrived after ${shortSha(wait.sha)}`);
  if (trusted?.sha !== head) return drop("trust was revoked");
  if (state.pipelineError?.sha === head) return drop("GitLab did not start the trusted pipeline");
  const p = state.pipeline?.sha === head ? state.pipeline : undefined;
  if (!p || isActive(p.status) || p.status === "running") return state;
  if (p.status !== "success")
    return drop(`trusted pipeline #${p.id} ${p.status === "canceled" ? "was canceled" : p.status}`);
  // The status that says so must be on the head (and in its pipeline) before GitLab is asked to merge.
  const into = gatedPipeline(o.mr);
  if (!(state.status?.sha === head && state.status.state === "success" && state.status.pipelineId === into?.id)) {
    return state;
  }
  if (into && into.status !== "success") {
    if (isActive(into.status) || into.status === "running") return state;
    return drop(`the head pipeline #${into.id} ${into.status}`);
  }
  effects.push({ type: "merge", sha: head, by: wait.by });
  return state;
}

function decideCommand(
  o: Observed,
  config: DecideConfig,
  state: StickyState,
  t: Trigger,
  effects: Action[],
  deferred: Action[],
): StickyState {
  if (state.handled?.includes(t.noteId)) return state;
  const head = o.mr.sha;
  let next = state;
  if (t.command === "help") {
    deferred.push(reply(helpText()), award(t.noteId));
    return next;
  }
  if (!t.authorization?.committer) {
    deferred.push(reply(`${capitalize(t.authorization?.reason ?? `@${t.author.username} is not a committer`)}.`));
    return next;
  }
  switch (t.command) {
    case "trust": {
      const refusal = forkGoneRefusal(o) ?? shaRefusal(o, config, t);
      if (refusal) {
        deferred.push(reply(refusal));
        return next;
      }
      next = handled(next, t.noteId);
      deferred.push(award(t.noteId));
      if (next.grant?.sha === head && next.branchSha === head) return next;
      const old = next.pipeline;
      if (old && old.sha !== head && isActive(old.status) && old.status !== "canceling") {
        effects.push({ type: "cancelPipeline", pipelineId: old.id });
      }
      effects.push({
        type: "ensureBranch",
        name: o.branchName,
        sha: head,
        ...(next.branchSha ? { lastSeen: next.branchSha } : {}),
        intent: {
          command: "trust",
          sha: head,
          by: t.author.username,
          at: o.now,
          noteId: t.noteId,
          ...(t.noteUrl ? { noteUrl: t.noteUrl } : {}),
        },
      });
      next = {
        ...next,
        grant: { sha: head, by: t.author.username, at: o.now, noteUrl: t.noteUrl },
        branchSha: head,
        owned: true,
        pipeline: undefined,
        pipelineError: undefined,
        revoked: undefined,
        mismatch: undefined,
        staleHead: undefined,
      };
      deferred.push(
        audit(o, { event: "grant", sha: head, by: t.author.username, reason: "/trust", branch: o.branchName }),
      );
      return next;
    }
    case "untrust": {
      if (!next.grant && next.branchSha === undefined) {
        deferred.push(reply("Nothing is trusted on this merge request."));
        return next;
      }
      next = handled(next, t.noteId);
      deferred.push(award(t.noteId));
      next = revoke(o, next, next.grant?.sha ?? next.branchSha, t.author.username, "/untrust", deferred, effects);
      effects.push({
        type: "deleteBranch",
        name: o.branchName,
        intent: { command: "untrust", by: t.author.username, at: o.now, noteId: t.noteId },
      });
      return { ...next, branchSha: undefined, owned: undefined, mismatch: undefined };
    }
    case "merge": {
      const refusal = mergeRefusal(o, next);
      if (refusal) {
        deferred.push(reply(refusal));
        return next;
      }
      next = {
        ...handled(next, t.noteId),
        mergeWhenTrusted: { noteId: t.noteId, by: t.author.username, sha: head },
        mergeDropped: undefined,
      };
      deferred.push(award(t.noteId));
      const p =
        o.trustedPipeline?.pipeline ??
        (next.pipeline?.sha === head ? { id: next.pipeline.id, status: next.pipeline.status } : undefined);
      if (p?.status !== "success") {
        deferred.push(
          reply(
            `Will merge \`${shortSha(head)}\` once ${p ? `trusted pipeline #${p.id}` : "the trusted pipeline"} passes; new commits or a failure cancel this.`,
          ),
        );
      }
      return next;
    }
    case "retest": {
      const grant = next.grant;
      if (!grant || next.branchSha !== grant.sha) {
        deferred.push(
          reply(`Nothing is trusted yet: a committer reviews the changes and comments \`/trust ${head}\` first.`),
        );
        return next;
      }
      if (grant.sha !== head) {
        deferred.push(
          reply(
            `Trust is stale: \`${shortSha(grant.sha)}\` was trusted, the head is now \`${shortSha(head)}\`. Review [the new commits](<${compareUrl(o.mr, grant.sha, head)}>) and comment \`/trust ${head}\` to run the pipeline for them.`,
          ),
        );
        return next;
      }
      const p =
        o.trustedPipeline?.pipeline ??
        (next.pipeline?.sha === head ? { id: next.pipeline.id, status: next.pipeline.status } : undefined);
      if (p && isActive(p.status)) {
        deferred.push(reply(`Pipeline #${p.id} is still ${p.status}; comment \`/retest\` again once it has finished.`));
        return next;
      }
      next = { ...handled(next, t.noteId), pipelineError: undefined };
      deferred.push(award(t.noteId));
      if (p && (p.status === "failed" || p.status === "canceled")) {
        effects.push({ type: "retryPipeline", pipelineId: p.id });
      } else {
        effects.push({
          type: "createPipeline",
          ref: o.branchName,
          sha: head,
          variables: pipelineVariables(o.mr, head, grant.by),
        });
      }
      deferred.push(
        audit(o, {
          event: "retest",
          sha: head,
          by: t.author.username,
          reason: "/retest",
          branch: o.branchName,
          pipelineId: p?.id,
        }),
      );
      return next;
    }
  }
  return next;
}

/**
 * Why a committer's `/trust` cannot grant the head (the reply), or `undefined` when it can. The SHA must be the one
 * the committer reviewed: a named SHA is the full head, or at least 12 hex of it that the note's payload also saw
 * as the head (shorter prefixes are refused by the parser: a commit can be crafted to share 7 or 8 hex in minutes).
 * A bare `/trust` grants the head only if it was already the head before the comment was written (GitLab's diff
 * versions against the note's time), unless `trust.require_sha` makes the SHA mandatory.
 */
function shaRefusal(o: Observed, config: DecideConfig, t: Trigger): string | undefined {
  const head = o.mr.sha;
  const again = `Review it and comment \`/trust ${head}\`.`;
  if (t.sha) {
    if (t.sha.length === 40 ? t.sha === head : head.startsWith(t.sha) && t.seenSha === head) return undefined;
    return `Not trusted: the SHA you named is not the head of this merge request, \`${head}\`. ${again}`;
  }
  if (config.require_sha) {
    return `Not trusted: this project asks committers to name the commit they reviewed. The head is \`${head}\`; if that is what you reviewed, comment \`/trust ${head}\`.`;
  }
  if (t.seenSha && t.seenSha !== head) {
    return `Not trusted: the head of this merge request moved to \`${head}\` after you commented (you saw \`${t.seenSha}\`). Review [the new commits](<${compareUrl(o.mr, t.seenSha, head)}>) and comment \`/trust ${head}\`.`;
  }
  if (t.headPrecedesComment !== true) {
    return `Not trusted: \`${head}\` became the head of this merge request as you commented, so it may not be the commit you reviewed. ${again}`;
  }
  return undefined;
}

/** Why a committer's `/merge` cannot be taken (the reply), or `undefined` when it can. */
function mergeRefusal(o: Observed, state: StickyState): string | undefined {
  const head = o.mr.sha;
  if (o.mr.sourceProjectId === null) {
    return "Not merged: the fork this merge request comes from was deleted, so GitLab can no longer merge it.";
  }
  const grant = state.grant;
  if (!grant || state.branchSha !== grant.sha) {
    return `Not merged: nothing is trusted yet. A committer reviews the changes and comments \`/trust ${head}\` first.`;
  }
  if (grant.sha !== head) {
    return `Not merged: trust is stale (\`${shortSha(grant.sha)}\` was trusted, the head is now \`${shortSha(head)}\`). Review [the new commits](<${compareUrl(o.mr, grant.sha, head)}>) and comment \`/trust ${head}\` first.`;
  }
  if (state.pipelineError?.sha === head) {
    return "Not merged: GitLab did not start the trusted pipeline for the head (see the note above).";
  }
  const p =
    o.trustedPipeline?.pipeline ??
    (state.pipeline?.sha === head ? { id: state.pipeline.id, status: state.pipeline.status } : undefined);
  if (p && (p.status === "failed" || p.status === "canceled" || p.status === "skipped")) {
    return `Not merged: trusted pipeline #${p.id} ${p.status === "canceled" ? "was canceled" : p.status} for \`${shortSha(head)}\`. Fix it, or comment \`/retest\`, then \`/merge\` again.`;
  }
  return undefined;
}

/**
 * A `/trust` on an MR whose fork was deleted is refused. GitLab keeps the MR's last head (`sha`, from its last diff)
 * and `refs/merge-requests/<iid>/head`, so the bot could still pin it; but the MR can never be merged or updated
 * again (`MergeRequest#broken?`: its source branch is missing), so a new grant would run protected CI for a change
 * that cannot land, on a commit nobody can follow up. A grant made before the fork went keeps its branch (its
 * pipeline still mirrors) until the MR is closed, which deletes it as usual.
 */
function forkGoneRefusal(o: Observed): string | undefined {
  if (o.mr.sourceProjectId !== null) return undefined;
  return "Not trusted: the fork this merge request comes from was deleted, so GitLab can no longer update or merge it. The author can push the changes to a new fork and open a new merge request.";
}

/** Ends a grant: cancels its running pipeline and records who revoked it and why. */
function revoke(
  o: Observed,
  state: StickyState,
  sha: string | undefined,
  by: string,
  reason: string,
  deferred: Action[],
  effects: Action[],
): StickyState {
  const p = state.pipeline;
  if (p && isActive(p.status) && p.status !== "canceling") effects.push({ type: "cancelPipeline", pipelineId: p.id });
  deferred.push(audit(o, { event: "revoke", sha, by, reason, branch: o.branchName, pipelineId: p?.id }));
  return {
    ...state,
    grant: undefined,
    staleHead: undefined,
    pipelineError: undefined,
    revoked: { by, at: o.now, sha, reason },
  };
}

/** Folds fresh facts about the trusted pipeline into the record (keeping details still true for its status). */
function withPipelineFacts(o: Observed, state: StickyState): StickyState {
  const fresh = o.trustedPipeline;
  if (!fresh) return state;
  const p = fresh.pipeline;
  const prev =
    state.pipeline?.id === p.id && state.pipeline.status === mirroredStatus(p.status) ? state.pipeline : undefined;
  const failedJobs = fresh.jobs
    ? fresh.jobs.filter((j) => j.status === "failed" && !j.allowFailure).map((j) => ({ name: j.name, url: j.webUrl }))
    : prev?.failedJobs;
  const tests = fresh.tests !== undefined ? (fresh.tests ?? undefined) : prev?.tests;
  return {
    ...state,
    pipeline: {
      id: p.id,
      sha: p.sha,
      status: mirroredStatus(p.status),
      url: p.webUrl,
      ...(failedJobs && failedJobs.length > 0 ? { failedJobs } : {}),
      ...(tests ? { tests } : {}),
    },
  };
}

/** The last step of a round without pending facts: commit status, then the note that records it. */
function finish(
  o: Observed,
  config: DecideConfig,
  state: StickyState,
  effects: Action[],
  deferred: Action[],
  opts: { withStatus: boolean },
): Action[] {
  if (effects.some((a) => FACT_PRODUCING_ACTIONS.has(a.type))) {
    return [record(state), ...effects, ...deferred];
  }
  let next = state;
  if (opts.withStatus) {
    const into = gatedPipeline(o.mr);
    const desired = gatedState(desiredStatus(o, next), into);
    const sha = o.mr.sha;
    const pipelineId = into ? { pipelineId: into.id } : {};
    if (!(next.status?.sha === sha && next.status.state === desired.state && next.status.pipelineId === into?.id)) {
      effects.push({
        type: "ensureStatus",
        sha,
        status: {
          name: config.status_name,
          state: desired.state,
          ref: into?.ref ?? statusRef(o.mr),
          description: desired.description,
          targetUrl: desired.targetUrl,
          ...pipelineId,
        },
      });
      next = { ...next, status: { sha, state: desired.state, description: desired.description, ...pipelineId } };
    }
    next = gate(o, config, next, effects);
    const labels = stateLabelChange(o, config, next);
    if (labels) effects.push(labels);
  }
  const body = renderNote(next, o, config);
  if (body !== o.note?.body) effects.push({ type: "ensureNote", body });
  return [record(next), ...effects, ...deferred];
}

/**
 * Where the open MR stands, for its trust-state label: `waiting` (nothing trusted), `trusted` (the head is trusted and
 * its pipeline has not failed), `stale` (an older SHA is trusted), `failed` (the trusted pipeline for the head failed
 * or was canceled, or GitLab refused to start it).
 */
export function trustState(o: Observed, state: StickyState): "waiting" | "trusted" | "stale" | "failed" {
  const grant = state.grant;
  if (!grant || state.branchSha !== grant.sha) return "waiting";
  if (grant.sha !== o.mr.sha) return "stale";
  if (state.pipelineError?.sha === o.mr.sha) return "failed";
  const p = state.pipeline?.sha === o.mr.sha ? state.pipeline : undefined;
  return p && (p.status === "failed" || p.status === "canceled") ? "failed" : "trusted";
}

/**
 * The label edit that makes the MR carry exactly its trust state's label (`trust.state_labels`), or `undefined`
 * when its labels (as read with the MR) already do: one `PUT .../merge_requests/:iid` per change of state. Merged and
 * closed MRs keep their last label (no call): GitLab's MR list filter is used for open MRs.
 */
function stateLabelChange(o: Observed, config: DecideConfig, state: StickyState): Action | undefined {
  const names = config.state_labels;
  if (!names.enabled) return undefined;
  const want = names[trustState(o, state)];
  const add = o.mr.labels.includes(want) ? [] : [want];
  const others = [names.waiting, names.trusted, names.stale, names.failed].filter((l) => l !== want);
  const remove = [...new Set(others)].filter((l) => o.mr.labels.includes(l));
  return add.length > 0 || remove.length > 0 ? { type: "editLabels", add, remove } : undefined;
}

/** The external status check's name, or `undefined` when the bot does not answer one. */
export function statusCheckName(config: Pick<DecideConfig, "external_status_check">): string | undefined {
  const c = config.external_status_check;
  return c === false ? undefined : c === true ? "trusted-mr-bot" : c.name;
}

/**
 * The approval and the external status check (docs/trust-workflow.md, "Merge gating"): both say yes only for the
 * head the trusted pipeline passed for. The bot approves that SHA (`trust.approve`) and withdraws the approval as soon
 * as it no longer holds: new commits, a revoke, a failed or re-run pipeline. It answers the status check `passed` or
 * `failed` for the head once the pipeline ended, and `failed` when a grant it passed is revoked; a new head has no
 * answer, which GitLab shows as pending. Each write is recorded, so it is made once per change.
 */
function gate(o: Observed, config: DecideConfig, state: StickyState, effects: Action[]): StickyState {
  const head = o.mr.sha;
  const grant = state.grant;
  const trusted = grant !== undefined && state.branchSha === grant.sha && grant.sha === head;
  const p = trusted && state.pipelineError?.sha !== head && state.pipeline?.sha === head ? state.pipeline : undefined;
  let next = state;
  const approved = config.approve && p?.status === "success";
  if (approved && next.approval?.sha !== head) {
    effects.push({ type: "approve", sha: head });
    next = { ...next, approval: { sha: head } };
  } else if (!approved && next.approval) {
    effects.push({ type: "unapprove" });
    next = { ...next, approval: undefined };
  }
  const name = statusCheckName(config);
  if (name !== undefined) {
    const answer =
      p?.status === "success"
        ? "passed"
        : p && (p.status === "failed" || p.status === "canceled")
          ? "failed"
          : !trusted && next.statusCheck?.sha === head && next.statusCheck.status === "passed"
            ? "failed"
            : undefined;
    if (answer && !(next.statusCheck?.sha === head && next.statusCheck.status === answer)) {
      effects.push({ type: "statusCheckResponse", name, sha: head, status: answer });
      next = { ...next, statusCheck: { sha: head, status: answer } };
    }
  }
  return next;
}

/** The commit status the MR head should carry. Pending means "waiting for a committer"; the rest mirror the pipeline. */
export function desiredStatus(
  o: Observed,
  state: StickyState,
): { state: CommitStatusState; description: string; targetUrl: string } {
  const head = o.mr.sha;
  const grant = state.grant;
  const trusted = grant && state.branchSha === grant.sha ? grant : undefined;
  const mrUrl = o.mr.webUrl;
  const result = (s: CommitStatusState, description: string, targetUrl = mrUrl) => ({
    state: s,
    description: description.length > MAX_DESCRIPTION ? `${description.slice(0, MAX_DESCRIPTION - 1)}…` : description,
    targetUrl,
  });
  if (trusted && trusted.sha === head) {
    if (state.pipelineError?.sha === head) {
      return result("failed", `GitLab did not start the trusted pipeline: ${state.pipelineError.message}`);
    }
    const p = state.pipeline?.sha === head ? state.pipeline : undefined;
    if (!p)
      return result("running", `Trusted ${shortSha(head)} (by ${mention(trusted.by)}); starting the trusted pipeline`);
    const id = `Trusted pipeline #${p.id}`;
    switch (p.status) {
      case "success":
        return result("success", `${id} passed for ${shortSha(head)}`, p.url);
      case "failed": {
        const jobs = p.failedJobs?.map((j) => j.name) ?? [];
        const which =
          jobs.length > 0 ? `: ${jobs.length} failed job${jobs.length === 1 ? "" : "s"} (${jobs.join(", ")})` : "";
        return result("failed", `${id} failed for ${shortSha(head)}${which}`, p.url);
      }
      case "canceled":
        return result("canceled", `${id} was canceled; a committer can comment /retest`, p.url);
      case "skipped":
        return result("skipped", `${id} was skipped`, p.url);
      default:
        return result("running", `${id} in progress for ${shortSha(head)} (trusted by ${mention(trusted.by)})`, p.url);
    }
  }
  if (trusted) {
    return result(
      "pending",
      `New commits since trusted ${shortSha(trusted.sha)}: a committer must review them and comment /trust ${head}`,
    );
  }
  if (state.mismatch && state.mismatch.sha !== head) {
    return result(
      "pending",
      `${state.branch ?? "The trusted branch"} points at ${shortSha(state.mismatch.sha)}, not the head ${shortSha(head)}: waiting for a committer`,
    );
  }
  if (state.mismatch) {
    return result(
      "pending",
      `${state.branch ?? "The trusted branch"} was not pushed by a committer: waiting for a committer to comment /trust ${head}`,
    );
  }
  if (o.mr.sourceProjectId === null) {
    return result("pending", "The fork of this merge request was deleted: it cannot be trusted or merged any more");
  }
  return result("pending", `Waiting for a committer to review and comment /trust ${head}`);
}

function handled(state: StickyState, noteId: number): StickyState {
  return { ...state, handled: [...(state.handled ?? []), noteId].slice(-HANDLED_LIMIT) };
}

/** The state as it will be stored: keys left `undefined` by updates are dropped, as JSON would. */
function record(state: StickyState): Action {
  const tidy = Object.fromEntries(Object.entries(state).filter(([, v]) => v !== undefined)) as StickyState;
  return { type: "record", state: tidy };
}

function reply(body: string): Action {
  return { type: "reply", body };
}

function award(noteId: number): Action {
  return { type: "award", noteId, name: ACK_EMOJI };
}

function audit(o: Observed, entry: Omit<AuditEntry, "projectId" | "mrIid" | "at">): Action {
  return { type: "audit", entry: { ...entry, projectId: o.mr.projectId, mrIid: o.mr.iid, at: o.now } };
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
