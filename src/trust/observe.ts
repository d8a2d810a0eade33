/**
 * Observe: the reads before decide (STYLE.md §4), as few as the situation allows.
 *
 * Always: the MR itself (`GET .../merge_requests/:iid`), because every event is only a hint that it changed, unless
 * the caller has it (a pipeline-mirroring pass: as last read; the sweep's cold look: as just listed).
 * The rest comes from the MR cache unless the cache is cold or a hint says it changed:
 * - the sticky note (and its trust record) is listed only on a cold cache or a full look (the sweep's);
 * - the trusted branch is read only when a push to it came from someone other than the bot, on a full look, or on
 *   a cold cache unless the sweep's branch list just confirmed the record; in between, the record of what the bot
 *   last wrote is what the branch is;
 * - the trusted pipeline is read when an event reports a status the record does not have, or while the record
 *   says it is still running: one call, its status with its failed jobs and test report from GitLab's GraphQL API
 *   (`readPipeline`), or where that cannot answer, the REST jobs list (which carries the pipeline's status) plus, once
 *   it failed, its trigger jobs and test report; the pipelines on the trusted branch are listed only when one the
 *   record does not know shows up;
 * - the committer-branch check and the first-time-contributor check are read once per MR; the trusted branch name
 *   needs no read at all (the naming rule gives it from the MR alone).
 * The sweep (sweep.ts) sets the "full" hint where a list page disagrees with the cache, and for its rota, so every
 * open MR is periodically read from scratch: caches and lost events heal.
 */
import type { GitLabPort, MergeRequest, PipelineJob, PipelineStatus, TestReportSummary, User } from "../gitlab/port.js";
import type { Authorization } from "./authorize.js";
import type { ListedFacts, MrKey } from "../queue/jobs.js";
import { chooseTrustedPipeline, type DecideConfig, trustedBranchName } from "./decide.js";
import { isActive, isFinished, mirroredStatus, type Observed } from "./model.js";
import { decodeState, EMPTY_STATE, type RecordedPipeline, STICKY_MARKER } from "./state.js";
import type { Hints, MrCache, PipelineHint } from "./store.js";

export type ObserveConfig = DecideConfig;

export interface ObserveContext {
  port: GitLabPort;
  config: ObserveConfig;
  bot: User;
  now: string;
  /** Whether a user is a committer in a project, with the reason (committers.ts). */
  authorize(projectId: number, user: User): Promise<Authorization>;
}

/** Reads one MR's situation; `undefined` when the MR does not exist (any more). */
export async function observe(
  ctx: ObserveContext,
  key: MrKey,
  cache: MrCache | undefined,
  hints: Hints,
  /**
   * The MR as last read or listed, when the caller decided it will do (workflow.ts: mirroring a pipeline, or the
   * sweep's cold look), and what the sweep's lists said (`ListedFacts`).
   */
  start: { known?: MergeRequest; listed?: Omit<ListedFacts, "mr"> } = {},
): Promise<Observed | undefined> {
  const { known, listed } = start;
  const { port, config } = ctx;
  const mr = known ?? (await port.getMergeRequest(key.projectId, key.mrIid));
  if (!mr) return undefined;
  // Cold: nothing cached for this MR (or for another source branch, or from before it was reopened): the note and
  // the committer-branch check are read again. Full (a sweep's rota, or its finding that GitLab disagrees with the
  // cache): everything is.
  const reopened = cache?.mr !== undefined && cache.mr.state !== "opened" && mr.state === "opened";
  const cold = !cache || cache.sourceBranch !== mr.sourceBranch || reopened;
  const full = hints.full || cold;
  const base = { now: ctx.now, bot: ctx.bot, mr };

  const sameProject = mr.sourceProjectId === mr.projectId;
  // On a cold cache the sweep's branch list may have said already (the list's `protected` is the single read's).
  // A merged or closed MR is not asked: the answer only decides whether its note is looked at, and a committer
  // branch's MR has no note and no branch of its own to clean up (decide.ts); it is asked again if reopened.
  const listedCommitter = cold && !hints.full ? listed?.committerBranch : undefined;
  const committerBranch = !sameProject
    ? false
    : mr.state !== "opened"
      ? (cache?.committerBranch ?? false)
      : full || !cache
        ? (listedCommitter ?? (await port.getBranch(mr.projectId, mr.sourceBranch))?.protected ?? false)
        : cache.committerBranch;
  if (committerBranch) {
    return {
      ...base,
      committerBranch,
      state: EMPTY_STATE,
      branchName: trustedBranchName(config.branch_prefix, mr),
      branch: { sha: null, fresh: false },
    };
  }

  // The sticky note is the bot's own: found by the id the bot last knew, else as the bot's first note that starts
  // with the marker. Its record is believed only if it is about this MR's trusted branch (state.ts).
  const branchName = trustedBranchName(config.branch_prefix, mr);
  const note =
    full || !cache
      ? await port.findStickyNote(mr.projectId, mr.iid, STICKY_MARKER, ctx.bot.id, cache?.noteId ?? undefined)
      : cache.noteId !== null && cache.noteBody !== null
        ? { id: cache.noteId, body: cache.noteBody }
        : undefined;
  const state = decodeState(note?.body, { branch: branchName });
  const open = mr.state === "opened";

  const firstTime =
    !note && open && config.welcome_first_time_contributors
      ? !(await port.hasMergedMergeRequest(mr.projectId, mr.author.id))
      : undefined;

  let branch: Observed["branch"] = { sha: state.branchSha ?? null, fresh: false };
  // On a cold cache the branch is read again, unless the sweep's branch list just said the same as the record
  // (`listed`): the list confirms the record, it never replaces a read that could disagree. A branch the sweep has
  // just deleted is gone, as the bot's own write (unless a push to it came since, or the MR was reopened since: a
  // grant made after the reopen is on that branch again).
  const listedSha = listed?.branchSha;
  const confirmed = cold && !hints.full && listedSha !== undefined && listedSha === branch.sha;
  if (listed?.cleanedUp && !hints.branch && !open) {
    branch = { sha: null, fresh: true };
  } else if ((full && !confirmed) || hints.branch) {
    branch = { sha: (await port.getBranch(mr.projectId, branchName))?.sha ?? null, fresh: true };
  }
  // A hand-pushed trusted branch becomes a grant only if its pusher is a committer (decide.ts), so ask now.
  const pushedBy = hints.branch?.pusher;
  const pusher =
    pushedBy && open ? { username: pushedBy.username, ...(await ctx.authorize(mr.projectId, pushedBy)) } : undefined;

  return {
    ...base,
    committerBranch,
    ...(note ? { note: { id: note.id, body: note.body } } : {}),
    state,
    ...(firstTime !== undefined ? { firstTime } : {}),
    branchName,
    branch,
    ...(pusher ? { pusher: { username: pusher.username, committer: pusher.committer, reason: pusher.reason } } : {}),
  };
}

export interface PipelineWants {
  /** Read everything (sweep, cold cache). */
  full: boolean;
  /** A fresh status is needed whatever the record says (`/retest` decides from it). */
  fresh: boolean;
  /** Pipelines that events said changed, with the status they reported (the pipeline hints). */
  hinted: readonly PipelineHint[];
}

/**
 * Whether a pipeline event tells something the record does not have: another pipeline, or a status that would be
 * mirrored differently (created, pending and running are all "running").
 */
export function pipelineHintIsNews(recorded: Pick<RecordedPipeline, "id" | "status"> | undefined, hint: PipelineHint) {
  return hint.id !== recorded?.id || mirroredStatus(hint.status) !== recorded.status;
}

/**
 * Reads the trusted pipeline's facts when decide will need them and the record cannot be trusted for them:
 * called before every decide round, it reads nothing once the facts are there. Returns the completed observation.
 */
export async function observePipelines(port: GitLabPort, o: Observed, wants: PipelineWants): Promise<Observed> {
  if (o.mr.state === "merged" || o.mr.state === "closed") return observeLastPipeline(port, o, wants);
  const sha = o.branch.sha;
  if (o.mr.state !== "opened" || sha === null || sha !== o.mr.sha) return o;
  // A current grant, or a branch made by hand at the head (about to be adopted).
  if (o.state.grant?.sha !== sha && !o.branch.fresh) return o;
  const recorded = o.state.pipeline?.sha === sha ? o.state.pipeline : undefined;
  const news = wants.hinted.filter((h) => pipelineHintIsNews(recorded, h));
  let next = o;

  if (next.pipelines === undefined && !next.trustedPipeline) {
    const unknownPipeline = news.some((h) => h.id !== recorded?.id);
    if (!recorded || wants.full || o.branch.fresh || unknownPipeline) {
      next = { ...next, pipelines: await port.listPipelines(o.mr.projectId, { ref: o.branchName, sha }) };
    }
  }
  if (next.trustedPipeline) return next;

  const listed = next.pipelines ? chooseTrustedPipeline(next.pipelines, recorded?.id) : undefined;
  const id = listed?.id ?? recorded?.id;
  if (id === undefined) return next;
  const changed =
    listed !== undefined && (listed.id !== recorded?.id || mirroredStatus(listed.status) !== recorded.status);
  const hintedHere = news.some((h) => h.id === id);
  // A pipeline still running per the record may have finished unnoticed, unless an event just said it has not.
  const nothingNew = wants.hinted.length > 0 && news.length === 0;
  const mayHaveMoved = recorded?.id === id && isActive(recorded.status) && !nothingNew;
  if (!(wants.full || wants.fresh || hintedHere || changed || mayHaveMoved)) {
    return listed ? { ...next, trustedPipeline: { pipeline: listed } } : next;
  }

  // The test report is read again only when the status changed (or it was never read): it cannot change otherwise.
  const read = await readPipeline(port, o.mr, id, (status) => {
    return id !== recorded?.id || mirroredStatus(status) !== recorded.status || !recorded.tests;
  });
  const known =
    listed ??
    (recorded
      ? {
          id,
          projectId: o.mr.projectId,
          ref: o.branchName,
          sha,
          status: recorded.status as PipelineStatus,
          source: "api",
          webUrl: recorded.url,
        }
      : undefined);
  if (!known) return next;
  const pipeline = read.status ? { ...known, status: read.status } : known;
  const finishedJobs = isFinished(pipeline.status) ? read.jobs : undefined;
  const tests = read.tests;
  return {
    ...next,
    trustedPipeline: {
      pipeline,
      ...(finishedJobs ? { jobs: finishedJobs } : {}),
      ...(tests !== undefined ? { tests } : {}),
    },
  };
}

/**
 * A merged or closed MR whose last trusted pipeline was still running when it closed (the close cancels it, and
 * GitLab reports "canceled" later): read that pipeline once an event says it changed, so the note and the status
 * show how it ended instead of "running" forever. One call (`readPipeline`), two more over REST once it failed.
 */
async function observeLastPipeline(port: GitLabPort, o: Observed, wants: PipelineWants): Promise<Observed> {
  const recorded = o.state.pipeline;
  if (!recorded || o.trustedPipeline || !isActive(recorded.status)) return o;
  if (!(wants.full || wants.hinted.some((h) => h.id === recorded.id && pipelineHintIsNews(recorded, h)))) return o;
  const read = await readPipeline(port, o.mr, recorded.id, () => false);
  const status = read.status;
  if (!status) return o;
  const pipeline = {
    id: recorded.id,
    projectId: o.mr.projectId,
    ref: o.branchName,
    sha: recorded.sha,
    status,
    source: "api",
    webUrl: recorded.url,
  };
  return { ...o, trustedPipeline: { pipeline, ...(isFinished(status) ? { jobs: read.jobs } : {}) } };
}

/**
 * A pipeline's status (`undefined`: GitLab has no such pipeline), its jobs (once it failed, the failed ones must be
 * among them, trigger jobs included) and, once it failed and `wantTests(status)`, its test report (`null`: none).
 * One GraphQL request where GitLab answers it (`getPipelineReport`: status, failed jobs with trigger jobs, test
 * report). Else REST: the jobs list, which embeds the pipeline's status (the pipeline itself is read only when no job
 * embeds it), and once it failed its trigger (bridge) jobs, which the jobs list leaves out (FACTS.md;
 * `GET .../pipelines/:id/bridges`, `lib/api/ci/pipelines.rb`), and the test report, both at once.
 */
async function readPipeline(
  port: GitLabPort,
  mr: MergeRequest,
  pipelineId: number,
  wantTests: (status: PipelineStatus) => boolean,
): Promise<{ status?: PipelineStatus; jobs: PipelineJob[]; tests?: TestReportSummary | null }> {
  const projectId = mr.projectId;
  const report = await port.getPipelineReport(projectId, pipelineId, mr.webUrl);
  if (report === null) return { jobs: [] };
  if (report) {
    const tests = report.status === "failed" && wantTests(report.status) ? { tests: report.tests ?? null } : {};
    return { status: report.status, jobs: report.failedJobs, ...tests };
  }
  const jobs = await port.getPipelineJobs(projectId, pipelineId);
  const status =
    jobs.find((j) => j.pipeline?.id === pipelineId)?.pipeline?.status ??
    (await port.getPipeline(projectId, pipelineId))?.status;
  if (status !== "failed") return { ...(status ? { status } : {}), jobs };
  const withTests = wantTests(status);
  const [bridges, tests] = await Promise.all([
    port.getPipelineBridges(projectId, pipelineId),
    withTests ? port.getTestReportSummary(projectId, pipelineId) : undefined,
  ]);
  return { status, jobs: [...jobs, ...bridges], ...(withTests ? { tests: tests ?? null } : {}) };
}
