import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeState,
  EMPTY_STATE,
  encodeState,
  isStickyNoteBody,
  STICKY_MARKER,
  type StickyState,
} from "../../src/trust/state.js";

const SHA = "aaaaaaaa11111111111111111111111111111111";

describe("sticky state", () => {
  it("round-trips, in the schema's key order whatever the input order", () => {
    const state: StickyState = { handled: [1, 2], grant: { sha: SHA, by: "maya", at: "t" }, branch: "trusted-x", v: 1 };
    const encoded = encodeState(state);
    assert.ok(encoded.startsWith(STICKY_MARKER));
    assert.deepEqual(decodeState(`${encoded}\ntext after`), state);
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

  it("attack: a record anywhere but at the very start of the note is not read", () => {
    const forged = encodeState({ v: 1, branch: "release/1.0" });
    assert.deepEqual(decodeState(`\`/trust\` takes one argument; got ${forged}`), EMPTY_STATE);
    assert.deepEqual(decodeState(` ${forged}`), EMPTY_STATE);
    assert.equal(isStickyNoteBody(`Reply quoting ${forged}`), false);
    assert.equal(isStickyNoteBody(`${forged}\n#### Trusted pipeline`), true);
  });

  it("attack: a record naming a branch other than this MR's trusted branch reads as empty", () => {
    const expect = { branch: "trusted-feature-mr7" };
    for (const branch of ["release/1.0", "main", "trusted-feature-mr2", "trusted-feature"]) {
      assert.deepEqual(decodeState(encodeState({ v: 1, branch }), expect), EMPTY_STATE, branch);
      const closed = encodeState({ v: 1, closed: { state: "closed", at: "t", deletedBranch: branch } });
      assert.deepEqual(decodeState(closed, expect), EMPTY_STATE, `closed.deletedBranch ${branch}`);
    }
    const own: StickyState = { v: 1, branch: "trusted-feature-mr7", branchSha: SHA, owned: true };
    assert.deepEqual(decodeState(encodeState(own), expect), own);
  });

  it("attack: SHAs in a record must be 40 hex (no prefixes), and a granter a GitLab username", () => {
    for (const sha of ["aaaaaaa", "aaaaaaaa1111", `${SHA}00`, SHA.toUpperCase()]) {
      assert.deepEqual(decodeState(`${STICKY_MARKER} {"v":1,"branchSha":"${sha}"} -->`), EMPTY_STATE, sha);
    }
    const byAll = encodeState({ v: 1, grant: { sha: SHA, by: "x @all", at: "t" } });
    assert.deepEqual(decodeState(byAll), EMPTY_STATE);
  });
});
