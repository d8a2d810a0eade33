/**
 * The sticky comment: what a contributor sees about their MR's trust. It is the reliable place for fork MRs (the MR
 * widget shows the fork's own pipeline), and the only place a contributor who cannot open protected pipeline logs
 * learns which jobs failed. Pure: the same state and MR always render the same body, so an unchanged note is never
 * rewritten.
 */
import type { Config } from "../config/config.js";
import type { MergeRequest } from "../gitlab/port.js";
import type { Observed } from "./model.js";
import { encodeState, type StickyState } from "./state.js";

export type RenderConfig = Pick<Config["trust"], "welcome_first_time_contributors" | "welcome_text">;

export function shortSha(sha: string): string {
  return sha.slice(0, 8);
}

/** `@name` for a username; anything else (a description such as "someone") as escaped text. */
export function mention(who: string): string {
  return /^[\w.-]+$/.test(who) ? `@${who}` : escapeText(who);
}

/**
 * `text` as a Markdown code span that nothing in it can end: the fence is one backtick longer than the longest run
 * inside (CommonMark 6.1), padded when the text starts or ends with a backtick. Inside a code span GitLab renders
 * no mention, reference or HTML, so a branch named ``x`@all`` stays text. Line breaks (never in a git ref) are
 * flattened so the span cannot become a block.
 */
export function code(text: string): string {
  const flat = text.replace(/[\r\n]+/g, " ");
  const longest = Math.max(0, ...[...flat.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = "`".repeat(longest + 1);
  const pad = flat.startsWith("`") || flat.endsWith("`") || /^ .* $/.test(flat) ? " " : "";
  return `${fence}${pad}${flat}${pad}${fence}`;
}

/**
 * `text` as plain Markdown text: every ASCII punctuation character backslash-escaped (CommonMark 2.4), `@` and `#`
 * included, so GitLab makes no mention, reference, link, emphasis or HTML of it.
 */
export function escapeText(text: string): string {
  return text.replace(/[\r\n]+/g, " ").replace(/[!-/:-@[-`{-~]/g, (c) => `\\${c}`);
}

/** `2024-05-01 12:34 UTC`. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function helpText(): string {
  return [
    "Commands for committers (one per comment, on a line of its own):",
    "",
    "- `/trust <sha>` (or `/ok-to-test <sha>`): run the trusted pipeline for the commit you reviewed, named by its full SHA (or at least 12 characters of it); refused if the head is a different commit. A bare `/trust` trusts the head only if it was already the head before you commented.",
    "- `/untrust`: remove the trusted branch and cancel its pipelines.",
    "- `/retest`: retry the failed jobs of the trusted pipeline (or start a new one).",
    "- `/merge-trusted` (or `/merge` where GitLab's own `/merge` quick action does not take the comment): merge once the trusted pipeline passed for the head, through GitLab's merge API pinned to that commit; new commits or a failure cancel it.",
    "- `/help`: this list.",
  ].join("\n");
}

export function renderNote(
  state: StickyState,
  o: Pick<Observed, "mr"> & { policyProblem?: string | undefined },
  config: RenderConfig,
): string {
  const { mr } = o;
  const lines: string[] = [encodeState(state), "#### Trusted pipeline", ""];
  // A null source project is a fork that was deleted since (GitLab nullifies the MR's `source_project_id`).
  const forkGone = mr.sourceProjectId === null;
  const isFork = mr.sourceProjectId !== mr.projectId;
  const from = isFork ? "a fork" : `${code(mr.sourceBranch)}, a branch that is not protected`;
  const head = mr.sha;

  if (state.closed) {
    const deleted = state.closed.deletedBranch
      ? ` The trusted branch ${code(state.closed.deletedBranch)} was deleted.`
      : "";
    lines.push(
      `This merge request was ${state.closed.state} on ${formatTime(state.closed.at)}.${deleted}${state.closed.state === "closed" ? " Reopening it starts over: a committer reviews and comments `/trust`." : ""}`,
    );
    appendPipeline(lines, state);
    return lines.join("\n");
  }

  if (o.policyProblem !== undefined) {
    // Built from key names and fixed words (policy.ts), escaped all the same: it never quotes the file.
    lines.push(
      `The project policy ${code(".gitlab/trusted-mr-bot.yml")} is not used: ${escapeText(o.policyProblem)}. The server's settings apply.`,
      "",
    );
  }

  if (state.firstTime && config.welcome_first_time_contributors) {
    // A project's own welcome is text, never Markdown: no mention, link or HTML comes out of it.
    lines.push(
      config.welcome_text !== undefined
        ? `@${mr.author.username}: ${escapeText(config.welcome_text)}`
        : `Welcome, @${mr.author.username}, and thank you for your first contribution here!`,
      "",
    );
  }

  const grant = state.grant;
  const trusted = grant && state.branchSha === grant.sha ? grant : undefined;
  if (trusted && trusted.sha === head) {
    const how = trusted.manual ? " (trusted branch pushed by hand)" : "";
    const link = trusted.noteUrl ? ` ([comment](${linkTarget(trusted.noteUrl)}))` : "";
    lines.push(
      `**Trusted.** Commit \`${trusted.sha}\` was trusted by ${mention(trusted.by)} on ${formatTime(trusted.at)}${link}${how}. Its trusted pipeline runs on the protected branch ${code(state.branch ?? "")}.`,
    );
    if (state.pipelineError?.sha === head) {
      // GitLab's message may quote what a contributor chose (a branch name): text, never Markdown.
      lines.push("", `GitLab did not start the trusted pipeline: ${escapeText(state.pipelineError.message)}`);
    }
    appendPipeline(lines, state);
    if (state.mergeWhenTrusted?.sha === head) {
      lines.push(
        "",
        `**Merge requested** by ${mention(state.mergeWhenTrusted.by)}: this merge request is merged once the trusted pipeline passes for \`${shortSha(head)}\`.`,
      );
    }
    appendMergeDropped(lines, state);
  } else if (trusted) {
    const compare = compareUrl(mr, trusted.sha, head);
    lines.push(
      `**Trust is stale.** New commits arrived after \`${shortSha(trusted.sha)}\` was trusted by ${mention(trusted.by)}; the head is now \`${head}\`. A committer must review [the changes since the trusted commit](${linkTarget(compare)}) and trust the new head. Nothing runs until then.`,
    );
    appendInvitation(lines, head);
    appendPipeline(lines, state, `Last trusted pipeline (for \`${shortSha(trusted.sha)}\`)`);
    appendMergeDropped(lines, state);
  } else {
    if (forkGone) {
      // No invitation: `/trust` is refused on such an MR (decide.ts, `forkGoneRefusal`).
      lines.push(
        `**Nothing can be trusted here.** The fork this merge request comes from was deleted, so GitLab can no longer update or merge it (its last commit is \`${head}\`). The author can push the changes to a new fork and open a new merge request.`,
      );
    } else {
      lines.push(
        `**Waiting for a committer.** This merge request comes from ${from}, so its own pipelines run without protected variables and runners. A committer reviews the changes and trusts exactly the reviewed commit (now \`${head}\`) to run the trusted pipeline for it.`,
      );
      appendInvitation(lines, head);
    }
    const m = state.mismatch;
    if (m) {
      const branch = code(state.branch ?? "");
      lines.push(
        "",
        m.sha !== head
          ? `The trusted branch ${branch} points at \`${m.sha}\`, not at the head of this merge request, so nothing was started.`
          : m.by
            ? `The trusted branch ${branch} was pushed to the head by ${mention(m.by)}, who is not a committer, so it is not a grant and nothing was started.`
            : `The trusted branch ${branch} points at the head, but no committer is known to have put it there, so it is not a grant and nothing was started.`,
      );
    }
    if (state.revoked) {
      lines.push(
        "",
        `Trust${state.revoked.sha ? ` in \`${shortSha(state.revoked.sha)}\`` : ""} was revoked by ${mention(state.revoked.by)} on ${formatTime(state.revoked.at)} (${escapeText(state.revoked.reason)}).`,
      );
    }
    appendMergeDropped(lines, state);
  }
  lines.push("", "<details><summary>Commands</summary>", "", helpText(), "", "</details>");
  return lines.join("\n");
}

/** A `/merge` that was forgotten, and why (until the next `/merge`). */
function appendMergeDropped(lines: string[], state: StickyState): void {
  const d = state.mergeDropped;
  if (d)
    lines.push(
      "",
      `The merge ${mention(d.by)} asked for was dropped: ${escapeText(d.reason)}. Comment \`/merge-trusted\` again when it can go ahead.`,
    );
}

function appendPipeline(lines: string[], state: StickyState, title = "Pipeline"): void {
  const p = state.pipeline;
  if (!p) return;
  lines.push("", `${title}: [#${p.id}](${linkTarget(p.url)}) **${escapeText(p.status)}**.`);
  if (p.failedJobs && p.failedJobs.length > 0) {
    lines.push("", `Failed jobs: ${p.failedJobs.map((j) => `[${code(j.name)}](${linkTarget(j.url)})`).join(", ")}.`);
  }
  const t = p.tests;
  if (t) {
    lines.push(
      "",
      `Tests: ${t.total} total, ${t.success} passed, ${t.failed} failed, ${t.error} errors, ${t.skipped} skipped.`,
    );
    const failing = t.suites.filter((s) => s.failed + s.error > 0);
    if (failing.length > 0) {
      lines.push(
        `Failing suites: ${failing.map((s) => `${code(s.name)} (${s.failed + s.error} of ${s.total})`).join(", ")}.`,
      );
    }
  }
}

/** The ready-to-copy command that trusts exactly `head`, in a code block (the bot never runs its own notes). */
function appendInvitation(lines: string[], head: string): void {
  lines.push("", "To trust it, a committer comments:", "", "```", `/trust ${head}`, "```");
}

/** A URL as a Markdown link destination: in `<...>`, where only `<`, `>` and line breaks could end it. */
function linkTarget(url: string): string {
  return `<${url.replace(/[<>\r\n]/g, encodeURIComponent)}>`;
}

/** The compare view in the target project, from the trusted commit to the head (re-review covers only that). */
export function compareUrl(mr: Pick<MergeRequest, "webUrl">, from: string, to: string): string {
  return `${mr.webUrl.replace(/\/-\/merge_requests\/\d+\/?$/, "")}/-/compare/${from}...${to}`;
}
