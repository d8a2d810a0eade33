import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { authorize, type CommitterFacts, factsNeeded, type TrustConfig } from "../../src/trust/authorize.js";

const base: TrustConfig = {
  committer_access_level: 40,
  committer_users: [],
  committer_groups: [],
  committer_group_access_level: 30,
};
const withGroup: TrustConfig = { ...base, committer_groups: ["org/core"] };

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
    ["listed user (by id), any level", { username: "Carl", listed: true }, base, true, /committer_users/],
    [
      "not listed: the access level decides",
      { username: "carl", listed: false, accessLevel: 20 },
      { ...base, committer_users: ["carl"] },
      false,
      /Reporter role here/,
    ],
    [
      "Developer in a committer group",
      { username: "gina", accessLevel: 20, groupLevels: [{ group: "org/core", level: 30 }] },
      withGroup,
      true,
      /Developer role in committer group org\/core/,
    ],
    [
      "inherited Guest of a committer group's parent",
      { username: "gus", accessLevel: 0, groupLevels: [{ group: "org/core", level: 10 }] },
      withGroup,
      false,
      /not a member of this project and only the Guest role in committer group org\/core \(Developer or higher needed\)/,
    ],
    [
      "Guest in a committer group with the group bar lowered to Guest",
      { username: "gus", accessLevel: 0, groupLevels: [{ group: "org/core", level: 10 }] },
      { ...withGroup, committer_group_access_level: 10 },
      true,
      /Guest role in committer group/,
    ],
    [
      "enough in the second committer group",
      {
        username: "gina",
        accessLevel: 20,
        groupLevels: [
          { group: "org/core", level: 10 },
          { group: 7, level: 40 },
        ],
      },
      { ...withGroup, committer_groups: ["org/core", 7] },
      true,
      /Maintainer role in committer group 7/,
    ],
    [
      "in no committer group",
      { username: "gina", accessLevel: 20, groupLevels: [{ group: "org/core", level: 0 }] },
      withGroup,
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

it("a reason names the user by the characters a GitLab username may have, and nothing else", () => {
  const result = authorize({ username: "eve](http://x)<b>", accessLevel: 0 }, base);
  assert.match(result.reason, /^@evehttpxb is not a member/);
});

describe("factsNeeded asks for the cheapest missing fact", () => {
  it("with committer_users configured, whether the user is listed comes first; listed users need nothing more", () => {
    const config = { ...base, committer_users: ["carl", 42] };
    assert.equal(factsNeeded({ username: "carl" }, config), "listed");
    assert.equal(factsNeeded({ username: "carl", listed: true }, config), "none");
    assert.equal(factsNeeded({ username: "carl", listed: false }, config), "accessLevel");
  });
  it("without committer_users, the access level comes first", () => {
    assert.equal(factsNeeded({ username: "x" }, base), "accessLevel");
  });
  it("a high enough level needs nothing more", () => {
    assert.equal(factsNeeded({ username: "x", accessLevel: 40 }, withGroup), "none");
  });
  it("a low level with committer groups configured needs the group levels", () => {
    assert.equal(factsNeeded({ username: "x", accessLevel: 30 }, withGroup), "groups");
    assert.equal(factsNeeded({ username: "x", accessLevel: 30, groupLevels: [] }, withGroup), "none");
  });
  it("a low level without groups configured needs nothing more", () => {
    assert.equal(factsNeeded({ username: "x", accessLevel: 30 }, base), "none");
  });
});
