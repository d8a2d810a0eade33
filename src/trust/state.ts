/**
 * The trust record the bot keeps in its sticky note, in a hidden HTML comment (STYLE.md §5: trust is state in
 * GitLab). The trusted branch at a SHA is the grant itself; this record says who granted it, when, on which branch
 * name, and what the bot last mirrored, so none of it depends on Redis surviving.
 *
 * Parsing is tolerant: a record the bot cannot read (hand-edited, or written by a future version) is treated as
 * empty, and the note is rewritten in place rather than duplicated.
 */
import { z } from "zod";

/** Identifies the sticky note among the MR's notes. */
export const STICKY_MARKER = "<!-- trusted-mr-bot:sticky";

const sha = z.string().regex(/^[0-9a-f]{7,64}$/i);

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
  /** The grant: the trusted branch was pinned to `sha` for this MR. */
  grant: z
    .object({
      sha,
      /** Username of the committer (or "a committer" for a hand-made branch whose pusher is unknown). */
      by: z.string(),
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
  status: z.object({ sha, state: commitStatusState, description: z.string() }).optional(),
  /** Head SHA for which "trust is stale" was announced (audit and pipeline cancel happen once per head). */
  staleHead: sha.optional(),
  /** GitLab refused to create the trusted pipeline for this SHA (e.g. `workflow: rules` filtered it out). */
  pipelineError: z.object({ sha, message: z.string() }).optional(),
  /** The last revoke, shown until the next grant. */
  revoked: z.object({ by: z.string(), at: z.string(), sha: sha.optional(), reason: z.string() }).optional(),
  /** The trusted branch exists but points at a commit that is not the MR head (manual flow). */
  mismatch: z.object({ sha }).optional(),
  /** The MR is merged or closed; set once cleanup ran. */
  closed: z
    .object({ state: z.enum(["merged", "closed"]), at: z.string(), deletedBranch: z.string().optional() })
    .optional(),
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

/** How many handled command note ids are remembered. */
export const HANDLED_LIMIT = 20;

const STATE_RE = /<!-- trusted-mr-bot:sticky (\{.*?\}) -->/s;

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

/** The state in a sticky note body, or the empty state when there is none or it does not parse. */
export function decodeState(body: string | undefined): StickyState {
  if (!body) return EMPTY_STATE;
  const match = STATE_RE.exec(body);
  if (!match?.[1]) return EMPTY_STATE;
  try {
    const parsed = stickyStateSchema.safeParse(JSON.parse(match[1]));
    return parsed.success ? parsed.data : EMPTY_STATE;
  } catch {
    return EMPTY_STATE;
  }
}
