/**
 * Pipeline hooks of trusted pipelines are routed by the trusted branch's name, not by the bot's `TRUSTED_MR_IID`
 * variable: where the project allows no pipeline variables (GitLab.com's default, `no_one_allowed`) the bot's
 * pipelines carry none, and a variable anyone set by hand must not send a trusted branch's status to another MR.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routeEvent } from "../../src/receiver/route-event.js";

const config = { trust: { branch_prefix: "trusted-" } };
const SHA = "3f2c0b1d7e9a4c6b8d0e2f4a6c8e0b2d4f6a8c0e";

function pipelineHook(ref: string, variables: Array<{ key: string; value: string }> = []) {
  return {
    object_kind: "pipeline",
    project: { id: 5 },
    object_attributes: { id: 31, ref, tag: false, sha: SHA, status: "running", source: "api", variables },
    merge_request: null,
  };
}

const job = (ref: string, mrIid?: number) => ({
  kind: "pipeline",
  projectId: 5,
  pipelineId: 31,
  ref,
  sha: SHA,
  status: "running",
  ...(mrIid === undefined ? {} : { mrIid }),
});

describe("routeEvent: trusted pipelines without variables", () => {
  it("a trusted pipeline without any variables names its MR by the branch name", () => {
    assert.deepEqual(routeEvent("Pipeline Hook", pipelineHook("trusted-fix-parser-mr12"), config), {
      jobs: [job("trusted-fix-parser-mr12", 12)],
    });
  });

  it("the name wins over a TRUSTED_MR_IID that says otherwise", () => {
    const payload = pipelineHook("trusted-fix-parser-mr12", [{ key: "TRUSTED_MR_IID", value: "9" }]);
    assert.deepEqual(routeEvent("Pipeline Hook", payload, config), { jobs: [job("trusted-fix-parser-mr12", 12)] });
  });

  it("TRUSTED_MR_IID stays a hint for trusted branches whose name does not say (by hand, older bots)", () => {
    const payload = pipelineHook("trusted-fix-parser", [{ key: "TRUSTED_MR_IID", value: "9" }]);
    assert.deepEqual(routeEvent("Pipeline Hook", payload, config), { jobs: [job("trusted-fix-parser", 9)] });
    assert.deepEqual(routeEvent("Pipeline Hook", pipelineHook("trusted-fix-parser"), config), {
      jobs: [job("trusted-fix-parser")],
    });
  });
});
