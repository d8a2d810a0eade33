/**
 * `applyActions` for `createPipeline`: GitLab runs the trusted branch's head, so a pipeline whose SHA is not the
 * commit the bot pinned (someone moved the branch in between) is canceled at once and reported, never taken as the
 * trusted pipeline. Without pipeline variables (a `no_one_allowed` project), the CI template trusts a pipeline
 * because the bot started it (input `bot-username`), so this check is what keeps such a pipeline from running.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CreatePipelineResult, GitLabPort, Pipeline } from "../../src/gitlab/port.js";
import { applyActions } from "../../src/trust/apply.js";
import type { Action, Observed } from "../../src/trust/model.js";

const PINNED = "a".repeat(40);
const MOVED = "b".repeat(40);

function pipeline(sha: string): Pipeline {
  return { id: 31, projectId: 1, ref: "trusted-feature-mr7", sha, status: "created", source: "api", webUrl: "" };
}

/** A port that answers `createPipeline` with `result` and records what else is asked. */
function fakePort(result: CreatePipelineResult) {
  const calls: string[] = [];
  const port = {
    async createPipeline(_projectId: number, ref: string, variables: unknown[]) {
      calls.push(`create ${ref} (${variables.length} variables)`);
      return result;
    },
    async cancelPipeline(_projectId: number, pipelineId: number) {
      calls.push(`cancel ${pipelineId}`);
      return { ...pipeline(MOVED), status: "canceled" as const };
    },
  } as unknown as GitLabPort;
  return { port, calls };
}

const observed = {
  mr: { projectId: 1, iid: 7 },
  branchName: "trusted-feature-mr7",
  pipelines: [],
} as unknown as Observed;

const create: Action = {
  type: "createPipeline",
  ref: "trusted-feature-mr7",
  sha: PINNED,
  variables: [{ key: "TRUSTED_SOURCE_SHA", value: PINNED }],
};

const ctx = { branchPrefix: "trusted-", writeIntent: async () => {} };

describe("applyActions: createPipeline", () => {
  it("a pipeline at the pinned commit (with or without variables) is the trusted pipeline", async () => {
    for (const result of [
      { created: pipeline(PINNED) },
      { created: pipeline(PINNED), withoutVariables: true as const },
    ]) {
      const { port, calls } = fakePort(result);
      const o = await applyActions(port, observed, [create], ctx);
      assert.deepEqual(calls, ["create trusted-feature-mr7 (1 variables)"]);
      assert.equal(o.trustedPipeline?.pipeline.id, 31);
      assert.equal(o.pipelineError, undefined);
    }
  });

  it("a pipeline GitLab created at another commit (the branch moved after the pin) is canceled and reported", async () => {
    const { port, calls } = fakePort({ created: pipeline(MOVED), withoutVariables: true });
    const o = await applyActions(port, observed, [create], ctx);
    assert.deepEqual(calls, ["create trusted-feature-mr7 (1 variables)", "cancel 31"]);
    assert.equal(o.trustedPipeline, undefined, "never the trusted pipeline");
    assert.deepEqual(o.pipelines, [], "nor listed among the pipelines of the trusted commit");
    assert.match(
      o.pipelineError ?? "",
      /the trusted branch moved to bbbbbbbb before the pipeline started, so pipeline #31 was canceled/,
    );
  });

  it("GitLab's refusal is reported as before", async () => {
    const { port } = fakePort({ refused: "Pipeline filtered out by workflow rules." });
    const o = await applyActions(port, observed, [create], ctx);
    assert.equal(o.pipelineError, "Pipeline filtered out by workflow rules.");
  });
});
