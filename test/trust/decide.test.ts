/**
 * decide() as a table: one situation per row, the actions it must (and must not) ask for. Then the same decide
 * driven round after round against an in-memory port, to show the rounds converge and a replay changes nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MergeRequest, Pipeline, PipelineJob } from "../../src/gitlab/port.js";
import {
  ACK_EMOJI,
  type DecideConfig,
  decide,
  parseTrustedBranchName,
  trustedBranchName,
} from "../../src/trust/decide.js";
import type { Action, CommandTrigger, Observed } from "../../src/trust/model.js";
import { decodeState, type StickyState } from "../../src/trust/state.js";

const HEAD = "aaaaaaaa11111111111111111111111111111111";
const OLD = "bbbbbbbb22222222222222222222222222222222";
const OTHER = "cccccccc33333333333333333333333333333333";
const NOW = "2025-01-02T03:04:05.000Z";

const LABELS = {
  enabled: true,
  waiting: "trust::waiting",
  trusted: "trust::trusted",
  stale: "trust::stale",
  failed: "trust::failed",
};

const config: DecideConfig = {
  branch_prefix: "trusted-",
  status_name: "trusted-pipeline",
  cancel_stale_pipelines: true,
  committer_branch_label: "no-detached-pipeline",
  welcome_first_time_contributors: true,
  require_sha: false,
  approve: false,
  external_status_check: false,
  // Off in the table, whose rows list every action; the "state labels" rows turn it on.
  state_labels: { ...LABELS, enabled: false },
};

function mr(over: Partial<MergeRequest> = {}): MergeRequest {
  return {
    projectId: 1,
    iid: 7,
    state: "opened",
    sha: HEAD,
    sourceProjectId: 1,
    sourceBranch: "feature",
    targetBranch: "main",
    author: { id: 5, username: "carol" },
    labels: [],
    draft: false,
    title: "Add feature",
    webUrl: "http://gitlab.test/org/app/-/merge_requests/7",
    mergedAt: null,
    closedAt: null,
    updatedAt: NOW,
    ...over,
  };
}

function observed(over: Partial<Observed> = {}, state: Partial<StickyState> = {}): Observed {
  return {
    now: NOW,
    bot: { id: 99, username: "trusted-bot" },
    mr: mr(),
    committerBranch: false,
    note: { id: 50, body: "old body" },
    state: { v: 1, branch: "trusted-feature-mr7", ...state },
    branchName: "trusted-feature-mr7",
    branch: { sha: state.branchSha ?? null, fresh: false },
    ...over,
  };
}

function pipeline(over: Partial<Pipeline> = {}): Pipeline {
  return {
    id: 300,
    projectId: 1,
    ref: "trusted-feature-mr7",
    sha: HEAD,
    status: "running",
    source: "api",
    webUrl: "http://gitlab.test/org/app/-/pipelines/300",
    ...over,
  };
}

function command(over: Partial<CommandTrigger> = {}): CommandTrigger {
  return {
    kind: "command",
    command: "trust",
    noteId: 900,
    noteUrl: "http://gitlab.test/org/app/-/merge_requests/7#note_900",
    author: { id: 40, username: "maya" },
    seenSha: HEAD,
    authorization: { committer: true, reason: "@maya has the Maintainer role in this project" },
    headPrecedesComment: true,
    ...over,
  };
}

const GRANT = { sha: HEAD, by: "maya", at: NOW };
const MAYA_PUSHED = { username: "maya", committer: true, reason: "@maya has the Maintainer role in this project" };
const DEV_PUSHED = { username: "dev", committer: false, reason: "@dev has the Developer role here" };
const TRUSTED: Partial<StickyState> = { grant: GRANT, branchSha: HEAD, owned: true };

const types = (actions: Action[]) => actions.map((a) => a.type).filter((t) => t !== "record");
const recorded = (actions: Action[]): StickyState => {
  const r = actions.find((a) => a.type === "record");
  assert.ok(r && r.type === "record", "decide always records the state");
  return r.state;
};
const find = <T extends Action["type"]>(actions: Action[], type: T) =>
  actions.find((a): a is Extract<Action, { type: T }> => a.type === type);
const replyOf = (actions: Action[]) => find(actions, "reply")?.body ?? "";
const noteOf = (actions: Action[]) => find(actions, "ensureNote")?.body ?? "";

interface Row {
  name: string;
  o: Observed;
  trigger?: CommandTrigger;
  config?: Partial<DecideConfig>;
  /** Non-record action types, in order. */
  expect: string[];
  check?: (actions: Action[]) => void;
}

const rows: Row[] = [
  {
    name: "new contributor MR: awaiting status, sticky note with a welcome",
    o: observed({ note: undefined, state: { v: 1 }, firstTime: true }),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      const s = find(a, "ensureStatus");
      assert.equal(s?.status.state, "pending");
      assert.equal(s?.status.ref, "feature");
      assert.match(s?.status.description ?? "", /Waiting for a committer/);
      assert.match(noteOf(a), /Welcome, @carol/);
      assert.match(noteOf(a), /Waiting for a committer/);
      assert.equal(recorded(a).branch, "trusted-feature-mr7");
      assert.equal(recorded(a).firstTime, true);
      assert.deepEqual(decodeState(noteOf(a)), recorded(a));
    },
  },
  {
    name: "fork MR: the status goes on the MR ref in the target project",
    o: observed({ mr: mr({ sourceProjectId: 2 }), note: undefined, state: { v: 1 } }),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.equal(find(a, "ensureStatus")?.status.ref, "refs/merge-requests/7/head");
      assert.match(noteOf(a), /from a fork/);
    },
  },
  {
    name: "nothing changed: no writes at all",
    o: (() => {
      const first = decide(observed({ note: undefined, state: { v: 1 } }), config);
      const state = recorded(first);
      return observed({ note: { id: 50, body: noteOf(first) }, state });
    })(),
    expect: [],
  },
  {
    name: "committer branch: label, nothing else",
    o: observed({ committerBranch: true, note: undefined, state: { v: 1 } }),
    expect: ["addLabels"],
    check: (a) => assert.deepEqual(find(a, "addLabels")?.labels, ["no-detached-pipeline"]),
  },
  {
    name: "committer branch already labelled: nothing",
    o: observed({ committerBranch: true, mr: mr({ labels: ["no-detached-pipeline"] }) }),
    expect: [],
  },
  {
    name: "committer branch: a command gets a reply and no trust flow",
    o: observed({ committerBranch: true, mr: mr({ labels: ["no-detached-pipeline"] }) }),
    trigger: command(),
    expect: ["reply"],
    check: (a) => assert.match(replyOf(a), /protected branch of this project/),
  },
  {
    name: "/trust by a committer: pin the branch first (its result decides the pipeline)",
    o: observed(),
    trigger: command(),
    expect: ["ensureBranch", "award", "audit"],
    check: (a) => {
      assert.deepEqual(find(a, "ensureBranch"), {
        type: "ensureBranch",
        name: "trusted-feature-mr7",
        sha: HEAD,
        intent: { command: "trust", sha: HEAD, by: "maya", at: NOW, noteId: 900, noteUrl: command().noteUrl },
      });
      assert.equal(find(a, "award")?.name, ACK_EMOJI);
      assert.equal(find(a, "audit")?.entry.event, "grant");
      const s = recorded(a);
      assert.deepEqual(s.grant, { sha: HEAD, by: "maya", at: NOW, noteUrl: command().noteUrl });
      assert.deepEqual(s.handled, [900]);
    },
  },
  {
    name: "grant recorded, branch freshly created: create the pipeline with the trusted variables",
    o: observed({ branch: { sha: HEAD, fresh: true }, pipelines: [] }, TRUSTED),
    expect: ["createPipeline"],
    check: (a) => {
      const c = find(a, "createPipeline");
      assert.equal(c?.ref, "trusted-feature-mr7");
      assert.deepEqual(c?.variables, [
        { key: "TRUSTED_MR_IID", value: "7" },
        { key: "TRUSTED_SOURCE_SHA", value: HEAD },
        { key: "TRUSTED_SOURCE_PROJECT_ID", value: "1" },
        { key: "TRUSTED_SOURCE_BRANCH", value: "feature" },
        { key: "TRUSTED_GRANTED_BY", value: "maya" },
      ]);
    },
  },
  {
    name: "pipeline created: mirror it as running, note shows who trusted what",
    o: observed(
      { pipelines: [pipeline({ status: "created" })], trustedPipeline: { pipeline: pipeline({ status: "created" }) } },
      TRUSTED,
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      const s = find(a, "ensureStatus");
      assert.equal(s?.status.state, "running");
      assert.equal(s?.status.targetUrl, pipeline().webUrl);
      assert.match(noteOf(a), new RegExp(`\\*\\*Trusted\\.\\*\\* Commit \`${HEAD}\` was trusted by @maya on 2025-01-02 03:04 UTC`));
      assert.match(
        noteOf(a),
        /\[#300\]\(<http:\/\/gitlab\.test\/org\/app\/-\/pipelines\/300>\) \*\*running\*\*/,
        "unfinished is mirrored as running",
      );
      assert.equal(recorded(a).pipeline?.id, 300);
    },
  },
  {
    name: "a pipeline is recorded for the head: no second one",
    o: observed(
      {},
      {
        ...TRUSTED,
        pipeline: { id: 300, sha: HEAD, status: "success", url: "u" },
        status: { sha: HEAD, state: "success", description: "" },
      },
    ),
    expect: ["ensureNote"],
  },
  {
    name: "/trust by a non-committer: one reply with the reason, nothing else",
    o: observed(),
    trigger: command({
      author: { id: 41, username: "dev" },
      authorization: {
        committer: false,
        reason: "@dev has the Developer role here; only committers (Maintainer or higher) can use this command",
      },
    }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => {
      assert.match(replyOf(a), /^@dev has the Developer role here; only committers/);
      assert.equal(recorded(a).grant, undefined);
    },
  },
  {
    name: "/trust raced by a push: refuse and name the SHA to review",
    o: observed(),
    trigger: command({ seenSha: OLD }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => {
      assert.match(replyOf(a), new RegExp(`moved to \`${HEAD}\` after you commented \\(you saw \`${OLD}\`\\)`));
      assert.match(replyOf(a), new RegExp(`/-/compare/${OLD}\\.\\.\\.${HEAD}`));
      assert.equal(recorded(a).grant, undefined);
    },
  },
  {
    name: "/trust <wrong sha>: refuse",
    o: observed(),
    trigger: command({ sha: OLD }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => {
      assert.match(replyOf(a), new RegExp(`the SHA you named is not the head of this merge request, \`${HEAD}\``));
      assert.match(replyOf(a), new RegExp(`comment \`/trust ${HEAD}\``), "the reply quotes the full SHA to copy");
      assert.doesNotMatch(replyOf(a), new RegExp(OLD), "no reply echoes what the commenter wrote");
    },
  },
  {
    name: "/trust <full right sha> wins over an older seen SHA",
    o: observed(),
    trigger: command({ sha: HEAD, seenSha: OLD, headPrecedesComment: false }),
    expect: ["ensureBranch", "award", "audit"],
  },
  {
    name: "attack: /trust <12-hex prefix> of the head is refused when the payload saw another head",
    o: observed(),
    trigger: command({ sha: HEAD.slice(0, 12), seenSha: OLD }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => assert.equal(recorded(a).grant, undefined),
  },
  {
    name: "/trust <12-hex prefix> that is the head the payload saw: granted",
    o: observed(),
    trigger: command({ sha: HEAD.slice(0, 12), headPrecedesComment: false }),
    expect: ["ensureBranch", "award", "audit"],
  },
  {
    name: "attack: bare /trust when the head became the head as the comment was written is refused",
    o: observed(),
    trigger: command({ headPrecedesComment: false }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => {
      assert.match(replyOf(a), new RegExp(`may not be the commit you reviewed.*\`/trust ${HEAD}\``));
      assert.equal(recorded(a).grant, undefined);
    },
  },
  {
    name: "trust.require_sha: a bare /trust is refused with the SHA to copy",
    o: observed(),
    config: { require_sha: true },
    trigger: command(),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => assert.match(replyOf(a), new RegExp(`asks committers to name the commit.*\`/trust ${HEAD}\``)),
  },
  {
    name: "trust.require_sha: /trust <full sha> is granted",
    o: observed(),
    config: { require_sha: true },
    trigger: command({ sha: HEAD }),
    expect: ["ensureBranch", "award", "audit"],
    check: (a) => assert.equal(recorded(a).owned, true, "the record says this MR created the branch"),
  },
  {
    name: "/trust when already trusted at the head: acknowledge only",
    o: observed({}, { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "running", url: "u" } }),
    trigger: command({ noteId: 901 }),
    expect: ["ensureStatus", "ensureNote", "award"],
  },
  {
    name: "a command already carried out is not redone",
    o: observed({}, { handled: [900] }),
    trigger: command(),
    expect: ["ensureStatus", "ensureNote"],
  },
  {
    name: "/trust after new commits moves the branch and cancels the old running pipeline",
    o: observed(
      {},
      { grant: { ...GRANT, sha: OLD }, branchSha: OLD, pipeline: { id: 299, sha: OLD, status: "running", url: "u" } },
    ),
    trigger: command(),
    expect: ["cancelPipeline", "ensureBranch", "award", "audit"],
    check: (a) => {
      assert.equal(find(a, "cancelPipeline")?.pipelineId, 299);
      assert.equal(find(a, "ensureBranch")?.lastSeen, OLD, "a move needs no read of the branch first");
      assert.equal(recorded(a).pipeline, undefined);
    },
  },
  {
    name: "/untrust: cancel, delete the branch, record the revoke",
    o: observed({}, { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "running", url: "u" } }),
    trigger: command({ command: "untrust" }),
    expect: ["cancelPipeline", "deleteBranch", "award", "audit"],
    check: (a) => {
      const s = recorded(a);
      assert.equal(s.grant, undefined);
      assert.equal(s.branchSha, undefined);
      assert.deepEqual(s.revoked, { by: "maya", at: NOW, sha: HEAD, reason: "/untrust" });
      assert.equal(find(a, "audit")?.entry.event, "revoke");
    },
  },
  {
    name: "/untrust with nothing trusted: say so",
    o: observed(),
    trigger: command({ command: "untrust" }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => assert.match(replyOf(a), /Nothing is trusted/),
  },
  {
    name: "/retest after a failure retries the failed jobs",
    o: observed({ trustedPipeline: { pipeline: pipeline({ status: "failed" }) } }, TRUSTED),
    trigger: command({ command: "retest" }),
    expect: ["retryPipeline", "award", "audit"],
    check: (a) => assert.equal(find(a, "audit")?.entry.event, "retest"),
  },
  {
    name: "/retest after a success starts a new pipeline",
    o: observed({ trustedPipeline: { pipeline: pipeline({ status: "success" }) } }, TRUSTED),
    trigger: command({ command: "retest" }),
    expect: ["createPipeline", "award", "audit"],
  },
  {
    name: "/retest while running: say so",
    o: observed({ trustedPipeline: { pipeline: pipeline({ status: "running" }) } }, TRUSTED),
    trigger: command({ command: "retest" }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => assert.match(replyOf(a), /#300 is still running/),
  },
  {
    name: "/retest with stale trust: refuse",
    o: observed({}, { grant: { ...GRANT, sha: OLD }, branchSha: OLD, staleHead: HEAD }),
    trigger: command({ command: "retest" }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => assert.match(replyOf(a), /Trust is stale/),
  },
  {
    name: "/retest with nothing trusted: refuse",
    o: observed(),
    trigger: command({ command: "retest" }),
    expect: ["ensureStatus", "ensureNote", "reply"],
  },
  {
    name: "/help: the command list",
    o: observed(),
    trigger: command({ command: "help", authorization: undefined }),
    expect: ["ensureStatus", "ensureNote", "reply", "award"],
    check: (a) => assert.match(replyOf(a), /`\/untrust`/),
  },
  {
    name: "new commits after trust: cancel the running pipeline, audit stale",
    o: observed(
      { mr: mr({ sha: HEAD }) },
      { grant: { ...GRANT, sha: OLD }, branchSha: OLD, pipeline: { id: 299, sha: OLD, status: "running", url: "u" } },
    ),
    expect: ["cancelPipeline", "audit"],
    check: (a) => {
      assert.equal(recorded(a).staleHead, HEAD);
      assert.equal(find(a, "audit")?.entry.event, "stale");
    },
  },
  {
    name: "stale announced: pending status, compare link from the trusted commit",
    o: observed(
      {},
      {
        grant: { ...GRANT, sha: OLD },
        branchSha: OLD,
        staleHead: HEAD,
        pipeline: { id: 299, sha: OLD, status: "canceled", url: "u" },
      },
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.equal(find(a, "ensureStatus")?.status.state, "pending");
      assert.match(find(a, "ensureStatus")?.status.description ?? "", /New commits since trusted bbbbbbbb/);
      assert.match(noteOf(a), /Trust is stale/);
      assert.match(noteOf(a), new RegExp(`/-/compare/${OLD}\\.\\.\\.${HEAD}`));
    },
  },
  {
    name: "stale without cancelling (cancel_stale_pipelines: false)",
    o: observed(
      {},
      { grant: { ...GRANT, sha: OLD }, branchSha: OLD, pipeline: { id: 299, sha: OLD, status: "running", url: "u" } },
    ),
    config: { cancel_stale_pipelines: false },
    expect: ["ensureStatus", "ensureNote", "audit"],
  },
  {
    name: "failed pipeline: failed status, failing jobs and test summary in the note",
    o: observed(
      {
        trustedPipeline: {
          pipeline: pipeline({ status: "failed" }),
          jobs: [job("build", "success"), job("rspec", "failed"), job("lint", "failed", true)],
          tests: {
            total: 10,
            success: 8,
            failed: 2,
            skipped: 0,
            error: 0,
            suites: [{ name: "rspec", total: 10, failed: 2, error: 0 }],
          },
        },
      },
      {
        ...TRUSTED,
        pipeline: { id: 300, sha: HEAD, status: "running", url: "u" },
        status: { sha: HEAD, state: "running", description: "" },
      },
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      const s = find(a, "ensureStatus");
      assert.equal(s?.status.state, "failed");
      assert.match(s?.status.description ?? "", /1 failed job \(rspec\)/);
      assert.match(noteOf(a), /Failed jobs: \[`rspec`\]\(<http:\/\/gitlab\.test\/org\/app\/-\/jobs\/rspec>\)\./);
      assert.doesNotMatch(noteOf(a), /`lint`/);
      assert.match(noteOf(a), /Tests: 10 total, 8 passed, 2 failed/);
      assert.match(noteOf(a), /Failing suites: `rspec` \(2 of 10\)/);
    },
  },
  {
    name: "a second pipeline GitLab started from the branch push is cancelled",
    o: observed(
      {
        pipelines: [pipeline({ id: 301, source: "push", status: "pending" }), pipeline()],
        trustedPipeline: { pipeline: pipeline() },
      },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "running", url: "u" } },
    ),
    expect: ["cancelPipeline"],
    check: (a) => assert.equal(find(a, "cancelPipeline")?.pipelineId, 301),
  },
  {
    name: "manual flow: a trusted branch a committer pushed by hand at the head is adopted",
    o: observed({ branch: { sha: HEAD, fresh: true }, pusher: MAYA_PUSHED, pipelines: [] }),
    expect: ["createPipeline", "audit"],
    check: (a) => {
      assert.deepEqual(recorded(a).grant, { sha: HEAD, by: "maya", at: NOW, manual: true });
      assert.equal(recorded(a).owned, true);
      assert.match(find(a, "audit")?.entry.reason ?? "", /by hand by a committer/);
    },
  },
  {
    name: "a branch at the SHA of a grant written ahead (the job died before the note) is that grant, not a hand push",
    o: observed({
      branch: { sha: HEAD, fresh: true },
      pipelines: [pipeline()],
      intent: { command: "trust", sha: HEAD, by: "maya", at: NOW, noteId: 900, noteUrl: "u" },
    }),
    expect: ["ensureStatus", "ensureNote", "audit", "award"],
    check: (a) => {
      const s = recorded(a);
      assert.deepEqual(s.grant, { sha: HEAD, by: "maya", at: NOW, noteUrl: "u" });
      assert.equal(s.owned, true);
      assert.deepEqual(s.handled, [900], "the command counts as carried out");
      assert.equal(find(a, "audit")?.entry.reason, "/trust");
      assert.equal(find(a, "award")?.noteId, 900);
      assert.ok(!types(a).includes("createPipeline"), "the pipeline the dead job created is the trusted one");
    },
  },
  {
    name: "a branch found gone after an /untrust written ahead (the job died before the note) is that revoke",
    o: observed(
      {
        branch: { sha: null, fresh: true },
        intent: { command: "untrust", by: "maya", at: NOW, noteId: 901 },
      },
      TRUSTED,
    ),
    expect: ["ensureStatus", "ensureNote", "audit", "award"],
    check: (a) => {
      const s = recorded(a);
      assert.equal(s.grant, undefined);
      assert.deepEqual(s.revoked, { by: "maya", at: NOW, sha: HEAD, reason: "/untrust" });
      assert.deepEqual(s.handled, [901], "the command counts as carried out: no reply to its retry");
      assert.equal(find(a, "award")?.noteId, 901);
    },
  },
  {
    name: "attack: a trusted branch a non-committer pushed at the head is not adopted, nothing runs",
    o: observed({ branch: { sha: HEAD, fresh: true }, pusher: DEV_PUSHED, pipelines: [] }),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.equal(recorded(a).grant, undefined);
      assert.deepEqual(recorded(a).mismatch, { sha: HEAD, by: "dev" });
      assert.match(noteOf(a), /pushed to the head by @dev, who is not a committer, so it is not a grant/);
      assert.equal(find(a, "ensureStatus")?.status.state, "pending");
    },
  },
  {
    name: "manual flow, pusher unknown: not a grant, nothing runs",
    o: observed({ branch: { sha: HEAD, fresh: true }, pipelines: [pipeline()] }),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.equal(recorded(a).grant, undefined);
      assert.match(noteOf(a), /no committer is known to have put it there/);
    },
  },
  {
    name: "manual flow: a trusted branch pushed by hand elsewhere is reported, nothing runs",
    o: observed({ branch: { sha: OTHER, fresh: true }, pusher: MAYA_PUSHED }),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.deepEqual(recorded(a).mismatch, { sha: OTHER });
      assert.match(noteOf(a), new RegExp(`points at \`${OTHER}\`, not at the head`));
    },
  },
  {
    name: "trusted branch deleted by hand: the grant is revoked",
    o: observed({ branch: { sha: null, fresh: true }, pusher: MAYA_PUSHED }, TRUSTED),
    expect: ["ensureStatus", "ensureNote", "audit"],
    check: (a) => {
      assert.equal(recorded(a).grant, undefined);
      assert.match(noteOf(a), /revoked by @maya .*the trusted branch was deleted/);
    },
  },
  {
    name: "merged: delete the trusted branch, say so, audit the cleanup",
    o: observed(
      { mr: mr({ state: "merged", mergedAt: NOW }) },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "success", url: "u" } },
    ),
    expect: ["deleteBranch", "ensureNote", "audit"],
    check: (a) => {
      assert.equal(find(a, "deleteBranch")?.name, "trusted-feature-mr7");
      assert.equal(find(a, "audit")?.entry.event, "cleanup");
      const s = recorded(a);
      assert.equal(s.grant, undefined);
      assert.equal(s.branch, undefined);
      assert.match(noteOf(a), /was merged on .* The trusted branch `trusted-feature-mr7` was deleted/);
    },
  },
  {
    name: "closed with a running pipeline: cancel it first",
    o: observed(
      { mr: mr({ state: "closed", closedAt: NOW }) },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "running", url: "u" } },
    ),
    expect: ["cancelPipeline", "deleteBranch", "audit"],
  },
  {
    name: "attack: closing an MR never deletes a branch its record does not say it created",
    o: observed({ mr: mr({ state: "closed", closedAt: NOW }), branch: { sha: OTHER, fresh: true } }, {}),
    expect: ["ensureNote"],
    check: (a) => assert.equal(find(a, "deleteBranch"), undefined),
  },
  {
    name: "merged and already cleaned up: nothing",
    o: (() => {
      const o = observed({ mr: mr({ state: "merged", mergedAt: NOW }) }, TRUSTED);
      const a = decide(o, config);
      return { ...o, state: recorded(a), note: { id: 50, body: noteOf(a) }, branch: { sha: null, fresh: true } };
    })(),
    expect: [],
  },
  {
    name: "closed MR that never had a note: nothing",
    o: observed({ mr: mr({ state: "closed" }), note: undefined, state: { v: 1 } }),
    expect: [],
  },
  {
    name: "a command on a merged MR: one reply, no side effects",
    o: observed({ mr: mr({ state: "merged" }) }, { closed: { state: "merged", at: NOW } }),
    trigger: command(),
    expect: ["ensureNote", "reply"],
    check: (a) => assert.match(replyOf(a), /merged; commands apply to open merge requests/),
  },
  {
    name: "reopened: back to waiting for a committer",
    o: observed(
      {},
      {
        closed: { state: "closed", at: NOW, deletedBranch: "trusted-feature-mr7" },
        status: { sha: HEAD, state: "success", description: "" },
      },
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.equal(recorded(a).closed, undefined);
      assert.equal(find(a, "ensureStatus")?.status.state, "pending");
    },
  },
  {
    name: "GitLab refused the pipeline: failed status saying why, no retry loop",
    o: observed(
      { branch: { sha: HEAD, fresh: true }, pipelines: [], pipelineError: "Pipeline filtered out by workflow rules." },
      TRUSTED,
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.equal(find(a, "ensureStatus")?.status.state, "failed");
      assert.match(noteOf(a), /did not start the trusted pipeline: Pipeline filtered out/);
    },
  },
  {
    name: "GitLab's refusal is rendered as escaped text in the note (a branch name in it is not Markdown)",
    o: observed(
      {
        branch: { sha: HEAD, fresh: true },
        pipelines: [],
        pipelineError: "Insufficient permissions for protected ref 'x_*y*'",
      },
      TRUSTED,
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.match(find(a, "ensureStatus")?.status.description ?? "", /protected ref 'x_\*y\*'$/);
      assert.ok(noteOf(a).includes("protected ref \\'x\\_\\*y\\*\\'"), noteOf(a));
    },
  },
  {
    name: "deleted fork (source project null): a fork MR, status on the MR ref, no invitation to /trust",
    o: observed({ mr: mr({ sourceProjectId: null }), note: undefined, state: { v: 1 } }),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      const s = find(a, "ensureStatus");
      assert.equal(s?.status.ref, "refs/merge-requests/7/head");
      assert.equal(s?.status.state, "pending");
      assert.match(s?.status.description ?? "", /fork of this merge request was deleted/);
      assert.match(noteOf(a), /fork this merge request comes from was deleted/);
      assert.doesNotMatch(noteOf(a), /\/trust aaaa/);
    },
  },
  {
    name: "deleted fork: /trust by a committer is refused with a reply, nothing pinned",
    o: observed({ mr: mr({ sourceProjectId: null }) }),
    trigger: command({ sha: HEAD }),
    expect: ["ensureStatus", "ensureNote", "reply"],
    check: (a) => {
      assert.match(replyOf(a), /Not trusted: the fork this merge request comes from was deleted/);
      assert.equal(recorded(a).grant, undefined);
      assert.equal(recorded(a).handled, undefined);
    },
  },
  {
    name: "deleted fork: a grant made before keeps mirroring its pipeline, without a source project id",
    o: observed({ mr: mr({ sourceProjectId: null }), branch: { sha: HEAD, fresh: true }, pipelines: [] }, TRUSTED),
    expect: ["createPipeline"],
    check: (a) => {
      const c = find(a, "createPipeline");
      assert.deepEqual(
        c?.variables.find((v) => v.key === "TRUSTED_SOURCE_PROJECT_ID"),
        { key: "TRUSTED_SOURCE_PROJECT_ID", value: "" },
      );
    },
  },
  {
    name: "deleted fork: closing the MR deletes its trusted branch",
    o: observed(
      { mr: mr({ sourceProjectId: null, state: "closed", closedAt: NOW }), branch: { sha: HEAD, fresh: true } },
      TRUSTED,
    ),
    expect: ["deleteBranch", "ensureNote", "audit"],
  },
  {
    name: "a failed trigger (bridge) job is listed among the failed jobs",
    o: observed(
      {
        trustedPipeline: {
          pipeline: pipeline({ status: "failed" }),
          jobs: [job("build", "success"), job("deploy-docs", "failed")],
        },
      },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "running", url: pipeline().webUrl } },
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.match(find(a, "ensureStatus")?.status.description ?? "", /1 failed job \(deploy-docs\)/);
      assert.match(noteOf(a), /Failed jobs: \[`deploy-docs`\]/);
    },
  },
  // ---- merge gating: the bot's approval (trust.approve) and the external status check ----
  {
    name: "approve: the trusted pipeline for the head passed: approve that SHA, once",
    o: observed({}, { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "success", url: "u" } }),
    config: { approve: true },
    expect: ["ensureStatus", "approve", "ensureNote"],
    check: (a) => {
      assert.equal(find(a, "approve")?.sha, HEAD);
      assert.deepEqual(recorded(a).approval, { sha: HEAD });
      const again = decide(observed({ note: { id: 50, body: noteOf(a) } }, recorded(a)), { ...config, approve: true });
      assert.deepEqual(types(again), [], "approved already: nothing to do");
    },
  },
  {
    name: "approve: the pipeline still runs or failed: no approval",
    o: observed({}, { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "failed", url: "u" } }),
    config: { approve: true },
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => assert.equal(recorded(a).approval, undefined),
  },
  {
    name: "approve: new commits after the approved SHA: withdraw the approval",
    o: observed(
      { mr: mr({ sha: OTHER }) },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "success", url: "u" }, approval: { sha: HEAD } },
    ),
    config: { approve: true },
    expect: ["ensureStatus", "unapprove", "ensureNote", "audit"],
    check: (a) => assert.equal(recorded(a).approval, undefined),
  },
  {
    name: "approve: a retest of the approved head runs again: withdraw until it passes",
    o: observed(
      {},
      { ...TRUSTED, pipeline: { id: 301, sha: HEAD, status: "running", url: "u" }, approval: { sha: HEAD } },
    ),
    config: { approve: true },
    expect: ["ensureStatus", "unapprove", "ensureNote"],
  },
  {
    name: "approve: /untrust withdraws the approval",
    o: observed(
      {},
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "success", url: "u" }, approval: { sha: HEAD } },
    ),
    trigger: command({ command: "untrust" }),
    config: { approve: true },
    expect: ["deleteBranch", "ensureStatus", "unapprove", "ensureNote", "award", "audit"],
    check: (a) => assert.equal(recorded(a).approval, undefined),
  },
  {
    name: "approve off: an approval the bot gave is withdrawn",
    o: observed(
      {},
      {
        ...TRUSTED,
        pipeline: { id: 300, sha: HEAD, status: "success", url: "u" },
        status: { sha: HEAD, state: "success", description: "" },
        approval: { sha: HEAD },
      },
    ),
    expect: ["unapprove", "ensureNote"],
  },
  {
    name: "status check: passed for the head once the trusted pipeline passed",
    o: observed({}, { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "success", url: "u" } }),
    config: { external_status_check: true },
    expect: ["ensureStatus", "statusCheckResponse", "ensureNote"],
    check: (a) => {
      const r = find(a, "statusCheckResponse");
      assert.deepEqual(r, { type: "statusCheckResponse", name: "trusted-mr-bot", sha: HEAD, status: "passed" });
      assert.deepEqual(recorded(a).statusCheck, { sha: HEAD, status: "passed" });
    },
  },
  {
    name: "status check: failed when the trusted pipeline failed, under the configured name",
    o: observed({}, { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "failed", url: "u" } }),
    config: { external_status_check: { name: "trusted" } },
    expect: ["ensureStatus", "statusCheckResponse", "ensureNote"],
    check: (a) => assert.equal(find(a, "statusCheckResponse")?.status, "failed"),
  },
  {
    name: "status check: nothing while the pipeline runs, nor for a new head (GitLab shows it pending)",
    o: observed(
      { mr: mr({ sha: OTHER }) },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "success", url: "u" }, statusCheck: { sha: HEAD, status: "passed" } },
    ),
    config: { external_status_check: true },
    expect: ["ensureStatus", "ensureNote", "audit"],
  },
  {
    name: "status check: a passed head whose grant is gone is answered failed",
    o: observed(
      {},
      {
        pipeline: { id: 300, sha: HEAD, status: "success", url: "u" },
        revoked: { by: "maya", at: NOW, sha: HEAD, reason: "/untrust" },
        statusCheck: { sha: HEAD, status: "passed" },
      },
    ),
    config: { external_status_check: true },
    expect: ["ensureStatus", "statusCheckResponse", "ensureNote"],
    check: (a) => assert.equal(find(a, "statusCheckResponse")?.status, "failed"),
  },
  {
    name: "gating: a same-project MR's status goes into its head pipeline (merge request pipeline), running blocks it",
    o: observed(
      {
        mr: mr({
          headPipeline: { id: 500, projectId: 1, sha: HEAD, ref: "refs/merge-requests/7/head", status: "running" },
        }),
      },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "running", url: "u" } },
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      const s = find(a, "ensureStatus");
      assert.equal(s?.status.pipelineId, 500);
      assert.equal(s?.status.ref, "refs/merge-requests/7/head");
      assert.equal(s?.status.state, "running");
      assert.equal(recorded(a).status?.pipelineId, 500);
    },
  },
  {
    name: "gating: a skipped trusted pipeline is failed in the head pipeline (skipped would let it pass)",
    o: observed(
      { mr: mr({ headPipeline: { id: 500, projectId: 1, sha: HEAD, ref: "feature", status: "success" } }) },
      { ...TRUSTED, pipeline: { id: 300, sha: HEAD, status: "skipped", url: "u" } },
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => assert.equal(find(a, "ensureStatus")?.status.state, "failed"),
  },
  {
    name: "gating: a fork MR's head pipeline (in the fork) is not written to",
    o: observed(
      { mr: mr({ sourceProjectId: 2, headPipeline: { id: 500, projectId: 2, sha: HEAD, ref: "f", status: "running" } }) },
      TRUSTED,
    ),
    expect: ["ensureStatus", "ensureNote"],
    check: (a) => {
      assert.equal(find(a, "ensureStatus")?.status.pipelineId, undefined);
      assert.equal(find(a, "ensureStatus")?.status.ref, "refs/merge-requests/7/head");
    },
  },
  {
    name: "/merge after the trusted pipeline passed: merge pinned to the head",
    o: observed(
      { mr: mr({ sourceProjectId: 2 }) },
      {
        ...TRUSTED,
        pipeline: { id: 300, sha: HEAD, status: "success", url: "u" },
        status: { sha: HEAD, state: "success", description: "d" },
      },
    ),
    trigger: command({ command: "merge" }),
    expect: ["merge", "award"],
    check: (a) => {
      assert.deepEqual(find(a, "merge"), { type: "merge", sha: HEAD, by: "maya" });
      assert.deepEqual(recorded(a).mergeWhenTrusted, { noteId: 900, by: "maya", sha: HEAD });
    },
  },
  {
    name: "/merge while the trusted pipeline runs: recorded, nothing merged yet",
    o: observed(
      { mr: mr({ sourceProjectId: 2 }) },
      {
        ...TRUSTED,
        pipeline: { id: 300, sha: HEAD, status: "running", url: "u" },
        status: { sha: HEAD, state: "running", description: "d" },
      },
    ),
    trigger: command({ command: "merge" }),
    expect: ["ensureNote", "award", "reply"],
    check: (a) => {
      assert.match(replyOf(a), /Will merge `aaaaaaaa` once trusted pipeline #300 passes/);
      assert.match(noteOf(a), /\*\*Merge requested\*\* by @maya/);
    },
  },
  {
    name: "/merge with stale trust: refused",
    o: observed({ mr: mr({ sha: OTHER }) }, TRUSTED),
    trigger: command({ command: "merge" }),
    expect: ["ensureStatus", "ensureNote", "reply", "audit"],
    check: (a) => assert.match(replyOf(a), /Not merged: trust is stale/),
  },
  {
    name: "a waiting /merge is dropped on a new head",
    o: observed({ mr: mr({ sha: OTHER }) }, { ...TRUSTED, mergeWhenTrusted: { noteId: 900, by: "maya", sha: HEAD } }),
    expect: ["ensureStatus", "ensureNote", "audit"],
    check: (a) => {
      assert.equal(recorded(a).mergeWhenTrusted, undefined);
      assert.match(noteOf(a), /The merge @maya asked for was dropped: new commits arrived/);
    },
  },
  {
    name: "GitLab refused the merge (409, the head moved): reply, forgotten, nothing else",
    o: observed(
      {
        mr: mr({ sourceProjectId: 2 }),
        mergeRefusal: { sha: HEAD, by: "maya", reason: "sha", message: "SHA does not match HEAD of source branch" },
      },
      {
        ...TRUSTED,
        pipeline: { id: 300, sha: HEAD, status: "success", url: "u" },
        status: { sha: HEAD, state: "success", description: "d" },
        mergeWhenTrusted: { noteId: 900, by: "maya", sha: HEAD },
      },
    ),
    expect: ["ensureNote", "reply"],
    check: (a) => assert.match(replyOf(a), /not merged: new commits were pushed while it was being merged/),
  },
  {
    name: "state labels: an MR nothing is trusted on gets trust::waiting",
    o: observed({ note: undefined, state: { v: 1 } }),
    config: { state_labels: LABELS },
    expect: ["ensureStatus", "editLabels", "ensureNote"],
    check: (a) => assert.deepEqual(find(a, "editLabels"), { type: "editLabels", add: ["trust::waiting"], remove: [] }),
  },
  {
    name: "state labels: already right, no call",
    o: (() => {
      const first = decide(observed({ note: undefined, state: { v: 1 } }), { ...config, state_labels: LABELS });
      return observed({
        mr: mr({ labels: ["bug", "trust::waiting"] }),
        note: { id: 50, body: noteOf(first) },
        state: recorded(first),
      });
    })(),
    config: { state_labels: LABELS },
    expect: [],
  },
  {
    name: "state labels: the trusted head's pipeline running: trusted, waiting removed in the same call",
    o: observed({ mr: mr({ labels: ["bug", "trust::waiting"] }), trustedPipeline: { pipeline: pipeline() } }, TRUSTED),
    config: { state_labels: LABELS },
    expect: ["ensureStatus", "editLabels", "ensureNote"],
    check: (a) =>
      assert.deepEqual(find(a, "editLabels"), {
        type: "editLabels",
        add: ["trust::trusted"],
        remove: ["trust::waiting"],
      }),
  },
  {
    name: "state labels: new commits after the grant: stale",
    o: observed({ mr: mr({ sha: OTHER, labels: ["trust::trusted"] }) }, TRUSTED),
    config: { state_labels: LABELS },
    expect: ["ensureStatus", "editLabels", "ensureNote", "audit"],
    check: (a) =>
      assert.deepEqual(find(a, "editLabels"), {
        type: "editLabels",
        add: ["trust::stale"],
        remove: ["trust::trusted"],
      }),
  },
  {
    name: "state labels: the head's trusted pipeline failed: failed",
    o: observed(
      { mr: mr({ labels: ["trust::trusted"] }), trustedPipeline: { pipeline: pipeline({ status: "failed" }) } },
      TRUSTED,
    ),
    config: { state_labels: LABELS },
    expect: ["ensureStatus", "editLabels", "ensureNote"],
    check: (a) =>
      assert.deepEqual(find(a, "editLabels"), {
        type: "editLabels",
        add: ["trust::failed"],
        remove: ["trust::trusted"],
      }),
  },
  {
    name: "state labels: GitLab refused the trusted pipeline: failed",
    o: observed(
      { mr: mr({ labels: ["trust::trusted"] }), pipelines: [], pipelineError: "filtered out by workflow: rules" },
      TRUSTED,
    ),
    config: { state_labels: LABELS },
    expect: ["ensureStatus", "editLabels", "ensureNote"],
    check: (a) => assert.deepEqual(find(a, "editLabels")?.add, ["trust::failed"]),
  },
  {
    name: "state labels: a merged MR keeps its last label (no call)",
    o: observed({ mr: mr({ state: "merged", labels: ["trust::trusted"] }) }, TRUSTED),
    config: { state_labels: LABELS },
    expect: ["deleteBranch", "ensureNote", "audit"],
  },
  {
    name: "state labels: a committer branch gets none",
    o: observed({ committerBranch: true, mr: mr({ labels: ["no-detached-pipeline"] }) }),
    config: { state_labels: LABELS },
    expect: [],
  },
  {
    name: "locked MR (being merged): nothing",
    o: observed({ mr: mr({ state: "locked" }) }, TRUSTED),
    expect: [],
  },
];

function job(name: string, status: PipelineJob["status"], allowFailure = false): PipelineJob {
  return {
    id: name.length,
    name,
    stage: "test",
    status,
    allowFailure,
    webUrl: `http://gitlab.test/org/app/-/jobs/${name}`,
  };
}

describe("decide", () => {
  for (const row of rows) {
    it(row.name, () => {
      const actions = decide(row.o, { ...config, ...row.config }, row.trigger);
      assert.deepEqual(types(actions), row.expect);
      row.check?.(actions);
    });
  }

  it("the status description fits GitLab's 255 characters", () => {
    const long = "x".repeat(400);
    const a = decide(
      observed(
        { mr: mr({ sourceBranch: long }), branchName: `trusted-${long}` },
        { branch: `trusted-${long}`, mismatch: { sha: OTHER } },
      ),
      config,
    );
    assert.ok((find(a, "ensureStatus")?.status.description ?? "").length <= 255);
  });
});

describe("trustedBranchName", () => {
  it("is the prefix, the source branch and -mr<iid>", () => {
    assert.equal(trustedBranchName("trusted-", { sourceBranch: "feat/x", iid: 3 }), "trusted-feat/x-mr3");
  });
  it("attack: no source branch name produces another MR's name", () => {
    // MR !2 from `feature` and MR !3 from a fork whose branch is literally `feature-mr2`.
    const two = trustedBranchName("trusted-", { sourceBranch: "feature", iid: 2 });
    const three = trustedBranchName("trusted-", { sourceBranch: "feature-mr2", iid: 3 });
    assert.notEqual(two, three);
    assert.deepEqual(parseTrustedBranchName("trusted-", two), { iid: 2, sourceBranch: "feature" });
    assert.deepEqual(parseTrustedBranchName("trusted-", three), { iid: 3, sourceBranch: "feature-mr2" });
    for (const [branch, iid] of [
      ["a", 1],
      ["a-mr1", 2],
      ["a-mr", 12],
      ["a-mr12", 3],
      ["x-mr01", 4],
      ["-mr1", 5],
    ] as const) {
      const name = trustedBranchName("trusted-", { sourceBranch: branch, iid });
      assert.deepEqual(parseTrustedBranchName("trusted-", name), { iid, sourceBranch: branch }, name);
    }
  });
  it("parses only names the rule gives", () => {
    for (const name of ["release/1.0", "trusted-feature", "trusted-feature-mr", "trusted-feature-mr0", "trusted-x-mr01"]) {
      assert.equal(parseTrustedBranchName("trusted-", name), undefined, name);
    }
  });
});
