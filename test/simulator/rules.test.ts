/** Table tests for the pure rules the simulator borrows from GitLab: composite status, wildcards, access. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessLevel, type PipelineStatus } from "../../src/simulator/model.js";
import {
  accessLevel,
  branchCreationRefusal,
  canMergeToBranch,
  canPushToBranch,
  refMatches,
} from "../../src/simulator/permissions.js";
import { compositeStatus } from "../../src/simulator/pipeline-status.js";
import { SimState } from "../../src/simulator/state.js";
import { addGroup, addMember, addProject, addUser, protectBranch } from "../../src/simulator/world-building.js";

describe("compositeStatus (Gitlab::Ci::Status::Composite)", () => {
  const cases: Array<[string, Array<[PipelineStatus, boolean?]>, PipelineStatus | undefined]> = [
    ["no jobs", [], undefined],
    ["all created", [["created"], ["created"]], "created"],
    ["all success", [["success"], ["success"]], "success"],
    ["success and skipped", [["success"], ["skipped"]], "success"],
    ["any running", [["success"], ["running"], ["created"]], "running"],
    ["pending and created only", [["pending"], ["created"]], "pending"],
    ["success then created (next stage waits)", [["success"], ["created"]], "running"],
    ["failed and skipped", [["failed"], ["skipped"]], "failed"],
    ["failed with allow_failure counts as passed", [["failed", true], ["success"]], "success"],
    ["canceled and success", [["canceled"], ["success"]], "canceled"],
    ["failed and canceled", [["failed"], ["canceled"]], "failed"],
    ["manual with allow_failure is ignored", [["manual", true], ["success"]], "success"],
    ["all skipped", [["skipped"]], "skipped"],
  ];
  for (const [name, jobs, expected] of cases) {
    test(name, () => {
      assert.equal(
        compositeStatus(jobs.map(([status, allowFailure]) => ({ status, allowFailure: allowFailure ?? false }))),
        expected,
      );
    });
  }
});

describe("refMatches (ProtectedRefMatcher wildcards)", () => {
  const cases: Array<[string, string, boolean]> = [
    ["trusted-*", "trusted-feature", true],
    ["trusted-*", "trusted-feat/sub", true],
    ["trusted-*", "untrusted-x", false],
    ["main", "main", true],
    ["main", "main2", false],
    ["release/*-stable", "release/1.2-stable", true],
    ["v1.*", "v1x", false],
  ];
  for (const [pattern, ref, expected] of cases) {
    test(`${pattern} ${expected ? "matches" : "does not match"} ${ref}`, () =>
      assert.equal(refMatches(pattern, ref), expected));
  }
});

describe("access rules (Gitlab::UserAccess)", () => {
  function world() {
    const state = new SimState("http://gitlab.test");
    const top = addGroup(state, { path: "top" });
    const sub = addGroup(state, { path: "sub", parentId: top.id });
    const maint = addUser(state, { username: "maint" });
    const dev = addUser(state, { username: "dev" });
    const listed = addUser(state, { username: "listed" });
    const outsider = addUser(state, { username: "outsider" });
    addMember(state, { groupId: top.id }, maint.id, AccessLevel.Maintainer);
    addMember(state, { groupId: sub.id }, dev.id, AccessLevel.Developer);
    addMember(state, { groupId: sub.id }, listed.id, AccessLevel.Developer);
    const project = addProject(state, { path: "top/sub/app" });
    protectBranch(state, project.id, {
      name: "trusted-*",
      pushAccessLevel: 40,
      mergeAccessLevel: 40,
      allowedToPushUserIds: [listed.id, outsider.id],
    });
    protectBranch(state, project.id, { name: "frozen", pushAccessLevel: 0, mergeAccessLevel: 30 });
    return { state, project, maint, dev, listed, outsider };
  }

  test("group membership is inherited by subgroup projects", () => {
    const { state, project, maint, dev, outsider } = world();
    assert.equal(accessLevel(state, maint.id, project), AccessLevel.Maintainer);
    assert.equal(accessLevel(state, dev.id, project), AccessLevel.Developer);
    assert.equal(accessLevel(state, outsider.id, project), 0);
  });

  test("push and merge on protected branches", () => {
    const { state, project, maint, dev, listed, outsider } = world();
    const table: Array<[string, number, string, boolean, boolean]> = [
      ["maintainer", maint.id, "trusted-a", true, true],
      ["developer", dev.id, "trusted-a", false, false],
      ["allowed developer", listed.id, "trusted-a", true, false],
      ["allowed non-member (push_code missing)", outsider.id, "trusted-a", false, false],
      ["maintainer, push No one", maint.id, "frozen", false, true],
      ["developer, merge Developers", dev.id, "frozen", false, true],
      ["developer, unprotected", dev.id, "topic", true, true],
      ["non-member, unprotected", outsider.id, "topic", false, false],
    ];
    for (const [who, id, branch, push, merge] of table) {
      assert.equal(canPushToBranch(state, id, project, branch), push, `${who} push ${branch}`);
      assert.equal(canMergeToBranch(state, id, project, branch), merge, `${who} merge ${branch}`);
    }
  });

  test("creating a protected branch: push access, or merge access plus an already-protected commit", () => {
    const { state, project, dev } = world();
    const mainSha = project.branches.get("main")!;
    // `main` is not protected in this world, so no commit is on a protected branch yet.
    assert.match(
      branchCreationRefusal(state, dev.id, project, "frozen", mainSha) ?? "",
      /existing protected branch ref/,
    );
    protectBranch(state, project.id, { name: "main", pushAccessLevel: 40, mergeAccessLevel: 40 });
    assert.equal(branchCreationRefusal(state, dev.id, project, "frozen", mainSha), undefined);
    assert.match(
      branchCreationRefusal(state, dev.id, project, "trusted-a", mainSha) ?? "",
      /not allowed to create protected/,
    );
    assert.match(
      branchCreationRefusal(state, dev.id, project, "a".repeat(40), mainSha) ?? "",
      /40-character hexadecimal/,
    );
  });
});
