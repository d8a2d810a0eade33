/** Which protected-branch rule names can match a trusted branch (GitLab's `RefMatcher` wildcards). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { refMatches } from "../../src/simulator/permissions.js";
import { matchesBranchWithPrefix } from "../../src/trust/protected-pattern.js";

/** [rule name, matches some branch starting with `trusted-`, an example branch when it does] */
const TABLE: ReadonlyArray<readonly [string, boolean, string?]> = [
  ["*", true, "trusted-x"],
  ["**", true, "trusted-x"],
  ["trust*", true, "trusted-x"],
  ["trusted-*", true, "trusted-x"],
  ["trusted-*-mr*", true, "trusted-feature-mr3"],
  ["*-mr*", true, "trusted-feature-mr3"],
  ["*trusted-*", true, "trusted-x"],
  ["t*", true, "trusted-x"],
  ["t*z", true, "trusted-z"],
  ["truste*d", true, "trusted-d"],
  ["trusted-feature-mr3", true, "trusted-feature-mr3"],
  ["trusted-", true, "trusted-"],
  ["trusted*", true, "trusted-x"],
  ["*/*", true, "trusted-a/b"],
  ["main", false],
  ["release/*", false],
  ["trusted", false],
  ["trusted_*", false],
  ["trustee*", false],
  ["Trusted-*", false],
  ["xtrusted-*", false],
  ["", false],
];

describe("matchesBranchWithPrefix", () => {
  for (const [pattern, expected, example] of TABLE) {
    it(`${JSON.stringify(pattern)} ${expected ? "can" : "cannot"} match a trusted- branch`, () => {
      assert.equal(matchesBranchWithPrefix(pattern, "trusted-"), expected);
      // The example is a witness, checked with the simulator's copy of GitLab's matcher.
      if (example !== undefined) {
        assert.ok(example.startsWith("trusted-"));
        assert.ok(refMatches(pattern, example), `${pattern} should match ${example}`);
      }
    });
  }

  it("an empty prefix: every non-blank name matches some branch", () => {
    assert.equal(matchesBranchWithPrefix("main", ""), true);
    assert.equal(matchesBranchWithPrefix("", ""), false);
  });

  it("agrees with GitLab's matcher on every short branch over a small alphabet", () => {
    // Brute force: the pattern matches some branch `trusted-` + s (s of length <= 3 over the pattern's own
    // characters and one other) exactly when the function says so, for patterns whose literals are that short.
    const patterns = ["*", "t*", "*-*", "*d-x", "trusted-x*", "trusted-*y", "*x*", "x*", "trusted-x", "trusted-xy*z"];
    const alphabet = ["x", "y", "z", "-"];
    const suffixes = [""];
    for (let n = 0; n < 3; n++) {
      for (const s of [...suffixes]) for (const c of alphabet) suffixes.push(s + c);
    }
    for (const pattern of patterns) {
      const witnessed = suffixes.some((s) => refMatches(pattern, `trusted-${s}`));
      assert.equal(matchesBranchWithPrefix(pattern, "trusted-"), witnessed, pattern);
    }
  });
});
