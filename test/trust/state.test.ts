import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeState, EMPTY_STATE, encodeState, STICKY_MARKER, type StickyState } from "../../src/trust/state.js";

const SHA = "aaaaaaaa11111111111111111111111111111111";

describe("sticky state", () => {
  it("round-trips, in the schema's key order whatever the input order", () => {
    const state: StickyState = { handled: [1, 2], grant: { sha: SHA, by: "maya", at: "t" }, branch: "trusted-x", v: 1 };
    const encoded = encodeState(state);
    assert.ok(encoded.startsWith(STICKY_MARKER));
    assert.deepEqual(decodeState(`text before\n${encoded}\ntext after`), state);
    assert.equal(encodeState(decodeState(encoded)), encoded);
    assert.match(encoded, /^<!-- trusted-mr-bot:sticky \{"v":1,"branch":"trusted-x","grant":/);
  });

  it("cannot be ended early by what a branch name or reason contains", () => {
    const state: StickyState = { v: 1, branch: "trusted-a-->b<c>", revoked: { by: "x", at: "t", reason: "--> <!--" } };
    const encoded = encodeState(state);
    assert.equal(encoded.indexOf("-->"), encoded.length - 3, "the only --> closes the comment");
    assert.deepEqual(decodeState(encoded), state);
  });

  it("an unreadable or foreign record reads as empty (the note is then rewritten in place)", () => {
    assert.deepEqual(decodeState(undefined), EMPTY_STATE);
    assert.deepEqual(decodeState("no marker here"), EMPTY_STATE);
    assert.deepEqual(decodeState(`${STICKY_MARKER} {not json} -->`), EMPTY_STATE);
    assert.deepEqual(decodeState(`${STICKY_MARKER} {"v":2} -->`), EMPTY_STATE);
    assert.deepEqual(decodeState(`${STICKY_MARKER} {"v":1,"branchSha":"not-a-sha"} -->`), EMPTY_STATE);
  });
});
