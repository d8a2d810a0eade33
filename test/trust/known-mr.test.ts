/**
 * When a reconcile's pass may start from an MR it already has instead of reading it (workflow.ts `knownMr`): a table,
 * since getting it wrong either costs a call per MR (too careful) or decides from an MR older than one the bot has
 * seen (not careful enough).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MergeRequest } from "../../src/gitlab/port.js";
import { knownMr } from "../../src/trust/workflow.js";
import type { Hints, MrRecord } from "../../src/trust/store.js";

const fork = (over: Partial<MergeRequest> = {}): MergeRequest => ({
  projectId: 1,
  iid: 7,
  state: "opened",
  sha: "a".repeat(40),
  sourceProjectId: 2,
  sourceBranch: "feature",
  targetBranch: "main",
  author: { id: 5, username: "dave" },
  labels: [],
  draft: false,
  title: "t",
  webUrl: "https://gitlab.example.com/org/app/-/merge_requests/7",
  mergedAt: null,
  closedAt: null,
  updatedAt: "2026-11-27T10:00:00.000Z",
  ...over,
});
const noHints: Hints = { full: false, pipelines: [], raw: {} };
const pipelineHint: Hints = {
  full: false,
  pipelines: [{ id: 3, status: "success" }],
  raw: { "pipeline:3:success": "x" },
};
const record = (mr: MergeRequest | undefined, hints: Hints = noHints): MrRecord => ({
  ...(mr ? { cache: { noteId: 1, noteBody: "", committerBranch: false, sourceBranch: mr.sourceBranch, mr } } : {}),
  hints,
  pending: false,
});

describe("knownMr: the MR a pass starts from", () => {
  it("mirroring a pipeline: the MR as last read, only while only pipeline hints are there and it is open", () => {
    const last = fork();
    assert.equal(knownMr(record(last, pipelineHint), { mirror: true }), last);
    assert.equal(knownMr(record(last, { ...pipelineHint, full: true }), { mirror: true }), undefined);
    assert.equal(knownMr(record(last, noHints), { mirror: true }), undefined);
    assert.equal(knownMr(record(fork({ state: "closed" }), pipelineHint), { mirror: true }), undefined);
  });

  it("the sweep's cold look: the fork MR as listed", () => {
    const listed = fork();
    assert.equal(knownMr(record(undefined), { listed: { mr: listed } }), listed);
  });

  it("not an open same-project MR: the list leaves out the head pipeline its status goes into", () => {
    const listed = fork({ sourceProjectId: 1 });
    assert.equal(knownMr(record(undefined), { listed: { mr: listed } }), undefined);
    const closed = fork({ sourceProjectId: 1, state: "merged", mergedAt: "2026-11-27T10:00:00.000Z" });
    assert.equal(knownMr(record(undefined), { listed: { mr: closed } }), closed);
  });

  it("never an MR older than the one the record holds (a pass read it again since the list)", () => {
    const listed = fork();
    const newer = fork({ sha: "b".repeat(40), updatedAt: "2026-11-27T10:05:00.000Z" });
    assert.equal(knownMr(record(newer), { listed: { mr: listed } }), undefined);
    const older = fork({ updatedAt: "2026-11-27T09:00:00.000Z" });
    assert.equal(knownMr(record(older), { listed: { mr: listed } }), listed);
  });

  it("an ordinary reconcile reads the MR", () => {
    assert.equal(knownMr(record(fork(), pipelineHint), {}), undefined);
  });
});
