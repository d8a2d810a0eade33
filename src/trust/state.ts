/**
 * The trust record the bot keeps in its sticky note, in a hidden HTML comment (STYLE.md §5: trust is state in
 * GitLab). The trusted branch at a SHA is the grant itself; this record says who granted it, when, on which branch
 * name, and what the bot last mirrored, so none of it depends on Redis surviving.
 *
 * The record is hostile input like any webhook (STYLE.md §9): it comes back through the API, and a contributor who
 * got the bot to write their text once would own it. So it is read only from a note the bot wrote that *starts*
 * with the marker (`isStickyNoteBody`), decoded from that first line only, and validated against the MR it is for
 * (`decodeState(body, expect)`): its branch must be the name the naming rule gives this MR, every SHA 40 hex.
 * A record that fails any of it is treated as empty, and the note is rewritten in place rather than duplicated.
 */
import { z } from "zod";

/** GitLab usernames (`Gitlab::PathRegex.namespace_format_regex`): what the record may name as a granter. */
const USERNAME_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;

/** Starts the sticky note (and only it): the note is the bot's note whose body begins with this. */
export const STICKY_MARKER = "<!-- trusted-mr-bot:sticky";

/** A full commit SHA: nothing the bot records or acts on is a prefix (prefixes can be made to collide). */
export const FULL_SHA_RE = /^[0-9a-f]{40}$/;

const sha = z.string().regex(FULL_SHA_RE);

const commitStatusState = z.enum(["pending", "running", "success", "failed", "canceled", "skipped"]);

export const testSummarySchema = z.object({
  total: z.number(),
  success: z.number(),
  failed: z.number(),
  skipped: z.number(),
  error: z.number(),
  suites: z.array(z.object({ name: z.string(), total: z.number(), failed: z.number(), error: z.number() })),
});

export const stickyStateSchema = z.object({
  v: z.literal(1),
  /** Name of this MR's trusted branch: chosen once (see `trustedBranchName`) and kept while the MR is open. */
  branch: z.string().optional(),
  /** Last known head of the trusted branch; absent when it does not exist. */
  branchSha: sha.optional(),
  /**
   * The bot created the trusted branch for this MR (a committer's `/trust`), or adopted it from a committer's
   * push. Only then may closing the MR delete it.
   */
  owned: z.boolean().optional(),
  /** The grant: the trusted branch was pinned to `sha` for this MR. */
  grant: z
    .object({
      sha,
      /** Username of the committer who commented `/trust` or pushed the trusted branch. */
      by: z.string().regex(USERNAME_RE),
      at: z.string(),
      /** Link to the command comment. */
      noteUrl: z.string().optional(),
      /** The trusted branch was created or moved by hand, not by a command. */
      manual: z.boolean().optional(),
    })
    .optional(),
  /** The trusted pipeline as last mirrored. */
  pipeline: z
    .object({
      id: z.number(),
      sha,
      status: z.string(),
      url: z.string(),
      failedJobs: z.array(z.object({ name: z.string(), url: z.string() })).optional(),
      tests: testSummarySchema.optional(),
    })
    .optional(),
  /** The commit status last posted (GitLab rejects posting the same state twice). */
  status: z
    .object({
      sha,
      state: commitStatusState,
      description: z.string(),
      /** The MR's head pipeline it was posted into (same-project MRs: what "Pipelines must succeed" reads). */
      pipelineId: z.number().optional(),
    })
    .optional(),
  /** The bot approved the MR at this SHA (`trust.approve`); cleared when it withdrew the approval. */
  approval: z.object({ sha }).optional(),
  /** The last external status check response the bot gave (`trust.external_status_check`). */
  statusCheck: z.object({ sha, status: z.enum(["passed", "failed"]) }).optional(),
  /** Head SHA for which "trust is stale" was announced (audit and pipeline cancel happen once per head). */
  staleHead: sha.optional(),
  /** GitLab refused to create the trusted pipeline for this SHA (e.g. `workflow: rules` filtered it out). */
  pipelineError: z.object({ sha, message: z.string() }).optional(),
  /** The last revoke, shown until the next grant. */
  revoked: z.object({ by: z.string(), at: z.string(), sha: sha.optional(), reason: z.string() }).optional(),
  /**
   * The trusted branch exists but is no grant: it points at a commit that is not the MR head, or a push by someone
   * who is not a committer (`by`), or by nobody a push event named, put it there. Nothing runs for it.
   */
  mismatch: z.object({ sha, by: z.string().regex(USERNAME_RE).optional() }).optional(),
  /** The MR is merged or closed; set once cleanup ran. */
  closed: z
    .object({ state: z.enum(["merged", "closed"]), at: z.string(), deletedBranch: z.string().optional() })
    .optional(),
  /**
   * A committer's `/merge` waiting for the trusted pipeline of `sha` to pass: merged then, forgotten on a new head,
   * a revoke or a failure (`mergeDropped` says why).
   */
  mergeWhenTrusted: z.object({ noteId: z.number(), by: z.string().regex(USERNAME_RE), sha }).optional(),
  /** Why the last waiting `/merge` was forgotten; shown until the next `/merge`. */
  mergeDropped: z.object({ by: z.string().regex(USERNAME_RE), reason: z.string() }).optional(),
  /** The author had no merged MR in the target project when the bot first saw this MR. */
  firstTime: z.boolean().optional(),
  /** Notes whose command was carried out (newest last, bounded): a retried or re-delivered command is not redone. */
  handled: z.array(z.number()).optional(),
});

export type StickyState = z.infer<typeof stickyStateSchema>;
export type TestSummary = z.infer<typeof testSummarySchema>;
export type RecordedPipeline = NonNullable<StickyState["pipeline"]>;
export type RecordedStatus = NonNullable<StickyState["status"]>;

export const EMPTY_STATE: StickyState = { v: 1 };

/** What a record must agree with to be believed: the branch name the naming rule gives the MR it is read for. */
export interface RecordExpectation {
  branch: string;
}

/** How many handled command note ids are remembered. */
export const HANDLED_LIMIT = 20;

/** The record line: the marker, one space, JSON without a newline, the comment's end. Anchored at the start. */
const STATE_RE = /^<!-- trusted-mr-bot:sticky (\{[^\n]*?\}) -->(?:\n|$)/;

/** Whether a note body is a sticky note: it starts with the marker (a reply or a quote never does). */
export function isStickyNoteBody(body: string): boolean {
  return body.startsWith(STICKY_MARKER);
}

/**
 * The hidden line that carries the state; JSON with `<`, `>` and `--` escaped so it cannot end the comment. Keys
 * come in the schema's order, so equal states always give equal notes (and an unchanged note is not rewritten).
 */
export function encodeState(state: StickyState): string {
  const canonical = stickyStateSchema.safeParse(state);
  const json = JSON.stringify(canonical.success ? canonical.data : state)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/--/g, "-\\u002d");
  return `${STICKY_MARKER} ${json} -->`;
}

/**
 * The state in a sticky note body, or the empty state when there is none, it does not parse, or (with `expect`) it
 * names a branch other than this MR's. Callers that act on the record pass `expect`; without it the record is only
 * displayed or compared (tests, a pipeline event's "is this news" check).
 */
export function decodeState(body: string | undefined, expect?: RecordExpectation): StickyState {
  if (!body) return EMPTY_STATE;
  const match = STATE_RE.exec(body);
  if (!match?.[1]) return EMPTY_STATE;
  let state: StickyState;
  try {
    const parsed = stickyStateSchema.safeParse(JSON.parse(match[1]));
    if (!parsed.success) return EMPTY_STATE;
    state = parsed.data;
  } catch {
    return EMPTY_STATE;
  }
  if (expect && !recordFits(state, expect)) return EMPTY_STATE;
  return state;
}

/** Every branch a record names is this MR's trusted branch. */
function recordFits(state: StickyState, expect: RecordExpectation): boolean {
  const named = [state.branch, state.closed?.deletedBranch].filter((b) => b !== undefined);
  return named.every((b) => b === expect.branch);
}
