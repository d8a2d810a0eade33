/**
 * What flows through observe -> decide -> apply (STYLE.md §4): the observed facts about one MR, the trigger that
 * made us look (a command, or nothing), and the actions decide asks for.
 */
import type {
  CommitStatusInput,
  MergeRequest,
  Pipeline,
  PipelineJob,
  PipelineStatus,
  PipelineVariable,
  TestReportSummary,
  User,
} from "../gitlab/port.js";
import type { Authorization } from "./authorize.js";
import type { CommandName } from "./parse-command.js";
import type { StickyState } from "./state.js";
import type { CommandIntent } from "./store.js";

export interface Observed {
  /** ISO time of this pass (grant and revoke times). */
  now: string;
  bot: User;
  mr: MergeRequest;
  /** The source branch is protected in the target project: a committer's own branch, no trust flow. */
  committerBranch: boolean;
  /** The bot's sticky note, when it exists. */
  note?: { id: number; body: string };
  /** The state recorded in the sticky note (empty when there is no note). */
  state: StickyState;
  /** The author has no merged MR in the target project; observed only while there is no sticky note yet. */
  firstTime?: boolean;
  /** This MR's trusted branch: the name recorded in the state, or the one the naming rule gives now. */
  branchName: string;
  /**
   * Head of the trusted branch, `null` when it does not exist. `fresh` when read from GitLab in this pass;
   * otherwise taken from the state (what the bot last saw or wrote).
   */
  branch: { sha: string | null; fresh: boolean };
  /**
   * Whoever pushed the trusted branch by hand, from the push event (manual flow), and whether they are a committer
   * (a hand-pushed branch is adopted as a grant only then).
   */
  pusher?: { username: string; committer: boolean; reason: string };
  /** Every pipeline on (trusted branch, its head), newest first, when listed in this pass. */
  pipelines?: Pipeline[];
  /** The trusted pipeline as read (or created, retried, canceled) in this pass. */
  trustedPipeline?: { pipeline: Pipeline; jobs?: PipelineJob[]; tests?: TestReportSummary | null };
  /** Why GitLab refused to create the trusted pipeline in this pass (e.g. filtered out by `workflow: rules`). */
  pipelineError?: string;
  /**
   * A committer's command written ahead of its branch write (store.ts) and not yet recorded in the note: a branch
   * found at a `/trust`'s SHA is that grant, not a hand-made branch; one found gone after an `/untrust` is that revoke.
   */
  intent?: CommandIntent;
  /** Why the project's policy file is not used (policy.ts), for a line in the sticky note. */
  policyProblem?: string;
  /** GitLab refused the merge decide asked for in this pass (`merge` action): why, for the reply and the note. */
  mergeRefusal?: { sha: string; by: string; reason: "sha" | "not_mergeable" | "not_allowed"; message: string };
}

/** A comment command, already parsed; `authorization` is filled in for commands that need a committer. */
export interface CommandTrigger {
  kind: "command";
  command: CommandName;
  /** Explicit `/trust <sha>`. */
  sha?: string;
  noteId: number;
  noteUrl?: string;
  author: User;
  /** `merge_request.last_commit.id` in the note payload: the head the commenter saw. */
  seenSha?: string;
  authorization?: Authorization;
  /**
   * For a bare `/trust`: whether the MR head was already the head before the comment was written (GitLab's MR
   * diff versions against the note's creation time); `undefined` when not looked up.
   */
  headPrecedesComment?: boolean;
}

export type Trigger = CommandTrigger;

export type AuditEvent = "grant" | "revoke" | "stale" | "retest" | "cleanup" | "merge";

export interface AuditEntry {
  event: AuditEvent;
  projectId: number;
  /** Absent when a trusted branch had no merge request at all. */
  mrIid?: number;
  sha?: string;
  /** Username, or a description such as "sweep". */
  by: string;
  /** Why, in words: "/trust", "new commits", "merged", ... */
  reason: string;
  branch?: string;
  pipelineId?: number;
  at: string;
}

/**
 * What decide asks for. `record` only changes the in-memory state (written with the next `ensureNote`); `reply`,
 * `award` and `audit` are deferred until the note is written, so a retried job does not repeat them.
 */
export type Action =
  | { type: "record"; state: StickyState }
  /**
   * `lastSeen`: where the bot last saw the branch. `intent`: the committer's command this write carries out, recorded
   * ahead of the write (write-ahead) so a crash after it is resumed for the right committer and note.
   */
  | { type: "ensureBranch"; name: string; sha: string; lastSeen?: string; intent?: CommandIntent }
  | { type: "deleteBranch"; name: string; intent?: CommandIntent }
  | { type: "createPipeline"; ref: string; sha: string; variables: PipelineVariable[] }
  | { type: "retryPipeline"; pipelineId: number }
  | { type: "cancelPipeline"; pipelineId: number }
  | { type: "addLabels"; labels: string[] }
  /** The trust-state label (`trust.state_labels`): added and removed in one MR update. */
  | { type: "editLabels"; add: string[]; remove: string[] }
  /** Merge the MR if its head is still `sha` (the trusted, passed commit); for `by`'s `/merge`. */
  | { type: "merge"; sha: string; by: string }
  | { type: "ensureStatus"; sha: string; status: CommitStatusInput }
  /** Approve the MR at `sha` (the trusted head); a moved head (409) or an approval already given is no error. */
  | { type: "approve"; sha: string }
  /** Withdraw the bot's approval; none to withdraw is no error. */
  | { type: "unapprove" }
  /** Answer the external status check `name` for `sha`. */
  | { type: "statusCheckResponse"; name: string; sha: string; status: "passed" | "failed" }
  | { type: "ensureNote"; body: string }
  | { type: "reply"; body: string }
  | { type: "award"; noteId: number; name: string }
  | { type: "audit"; entry: AuditEntry };

export const DEFERRED_ACTIONS: ReadonlySet<Action["type"]> = new Set(["reply", "award", "audit"]);

/** Actions whose results are new facts decide needs before it can render the note: they end a round. */
export const FACT_PRODUCING_ACTIONS: ReadonlySet<Action["type"]> = new Set([
  "ensureBranch",
  "createPipeline",
  "retryPipeline",
  "cancelPipeline",
  "merge",
]);

export const ACTIVE_PIPELINE_STATUSES: ReadonlySet<PipelineStatus> = new Set([
  "created",
  "waiting_for_resource",
  "preparing",
  "waiting_for_callback",
  "pending",
  "running",
  "canceling",
  "scheduled",
]);

export const FINISHED_PIPELINE_STATUSES: ReadonlySet<string> = new Set(["success", "failed", "canceled", "skipped"]);

export function isActive(status: string): boolean {
  return ACTIVE_PIPELINE_STATUSES.has(status as PipelineStatus);
}

export function isFinished(status: string): boolean {
  return FINISHED_PIPELINE_STATUSES.has(status);
}

/**
 * The pipeline status as the bot mirrors and records it: every not-yet-finished status is "running" (the commit
 * status API has no finer states worth a write), so created -> pending -> running changes nothing on the MR.
 */
export function mirroredStatus(status: string): string {
  return isActive(status) ? "running" : status;
}
