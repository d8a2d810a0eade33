import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { authorize, type CommitterFacts, factsNeeded, type TrustConfig } from "../../src/trust/authorize.js";

const base: TrustConfig = { committer_access_level: 40, committer_users: [], committer_groups: [] };

describe("authorize", () => {
  const table: Array<[string, CommitterFacts, TrustConfig, boolean, RegExp]> = [
    ["maintainer", { username: "maya", accessLevel: 40 }, base, true, /Maintainer role/],
    ["owner", { username: "olga", accessLevel: 50 }, base, true, /Owner role/],
    ["developer", { username: "dev", accessLevel: 30 }, base, false, /Developer role here.*Maintainer or higher/],
    ["not a member", { username: "carl", accessLevel: 0 }, base, false, /not a member of this project/],
    [
      "developer with a lowered bar",
      { username: "dev", accessLevel: 30 },
      { ...base, committer_access_level: 30 },
      true,
      /Developer role/,
    ],
    ["listed user, any level", { username: "Carl" }, { ...base, committer_users: ["carl"] }, true, /committer_users/],
    ["listed with @", { username: "carl" }, { ...base, committer_users: ["@carl"] }, true, /committer_users/],
    [
      "member of a committer group",
      { username: "gina", accessLevel: 20, memberOfGroups: ["org/core"] },
      { ...base, committer_groups: ["org/core"] },
      true,
      /group org\/core/,
    ],
    [
      "in no committer group",
      { username: "gina", accessLevel: 20, memberOfGroups: [] },
      { ...base, committer_groups: ["org/core"] },
      false,
      /none of the committer groups/,
    ],
  ];
  for (const [name, facts, config, committer, reason] of table) {
    it(name, () => {
      const result = authorize(facts, config);
      assert.equal(result.committer, committer);
      assert.match(result.reason, reason);
      assert.match(result.reason, new RegExp(`@${facts.username}`));
    });
  }
});

describe("factsNeeded asks for the cheapest missing fact", () => {
  it("listed users need nothing", () => {
    assert.equal(factsNeeded({ username: "carl" }, { ...base, committer_users: ["carl"] }), "none");
  });
  it("others need the access level first", () => {
    assert.equal(factsNeeded({ username: "x" }, base), "accessLevel");
  });
  it("a high enough level needs nothing more", () => {
    assert.equal(factsNeeded({ username: "x", accessLevel: 40 }, { ...base, committer_groups: ["g"] }), "none");
  });
  it("a low level with committer groups configured needs the groups", () => {
    assert.equal(factsNeeded({ username: "x", accessLevel: 30 }, { ...base, committer_groups: ["g"] }), "groups");
    assert.equal(
      factsNeeded({ username: "x", accessLevel: 30, memberOfGroups: [] }, { ...base, committer_groups: ["g"] }),
      "none",
    );
  });
  it("a low level without groups configured needs nothing more", () => {
    assert.equal(factsNeeded({ username: "x", accessLevel: 30 }, base), "none");
  });
});
