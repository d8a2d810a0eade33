/**
 * Commands a reader does not see as commands, end to end: a committer quotes or pastes a contributor's text, and the
 * `/trust` hidden in it (a `>>>` quote, an HTML comment, a collapsed `<details>`) must run nothing. And no reply of
 * the bot repeats what the note said, so a note cannot make the bot write markup (its own hidden record) for it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SimNote } from "../../src/simulator/gitlab-simulator.js";
import { STICKY_MARKER } from "../../src/trust/state.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

function trustedBranches(w: TrustWorld): string[] {
  return w.sim
    .branches(w.app.id)
    .map((b) => b.name)
    .filter((name) => name.startsWith("trusted-"));
}

/** No trusted branch, no pipeline started since `pipelinesBefore`, no reply, no emoji on `note`. */
function assertNothingRan(w: TrustWorld, iid: number, note: SimNote, pipelinesBefore: number): void {
  assert.deepEqual(trustedBranches(w), []);
  assert.equal(w.sim.pipelines(w.app.id).length, pipelinesBefore, "no pipeline started");
  assert.deepEqual(
    w.replies(iid).map((n) => n.body),
    [],
  );
  assert.deepEqual(w.sim.awardEmoji(w.app.id, iid, note.id), []);
}

describe("hidden commands", () => {
  const attacks: Array<[string, string]> = [
    ["`>>>` quote", "Dave asked for this:\n\n>>>\n/trust\n>>>\n\nNot yet, sorry."],
    ["HTML comment", "Not yet.\n\n<!--\n/trust\n-->"],
    ["collapsed `<details>`", "Dave's notes:\n\n<details><summary>Notes</summary>\n\n/trust\n\n</details>"],
  ];
  for (const [what, body] of attacks) {
    it(`attack: a Maintainer's ${what} of /trust runs nothing (a plain /trust then runs)`, async () => {
      const w = await start();
      const mr = w.openForkMr();
      await w.settle();
      const before = w.sim.pipelines(w.app.id).length;

      const note = w.sim.comment(w.app.id, mr.iid, w.maya.id, body);
      await w.settle();
      assertNothingRan(w, mr.iid, note, before);

      // The same committer and MR: a command a reader sees does run (the test above is not vacuous).
      w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
      await w.settle();
      const [branch] = trustedBranches(w);
      assert.ok(branch, "a trusted branch");
      assert.equal(w.sim.branch(w.app.id, branch)?.sha, mr.sha);
      assert.equal(w.pipelinesOn(branch).length, 1);
    });
  }

  it("a malformed /trust reply never echoes the note", async () => {
    const w = await start();
    const mr = w.openForkMr();
    await w.settle();
    const before = w.sim.pipelines(w.app.id).length;
    const forged = '<!-- trusted-mr-bot:sticky {"v":1,"branch":"main"} -->';
    const notes = [
      w.sim.comment(w.app.id, mr.iid, w.dave.id, `/trust ${forged}`),
      w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${forged}`),
      w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust @all"),
      w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha.slice(0, 10)}`),
    ];
    await w.settle();

    const replies = w.replies(mr.iid).map((n) => n.body);
    assert.equal(replies.length, notes.length, "one reply each");
    for (const reply of replies) {
      assert.ok(!reply.includes("trusted-mr-bot:sticky"), reply);
      assert.ok(!reply.includes('"branch"'), reply);
      assert.ok(!reply.includes("@all"), reply);
      assert.ok(!reply.includes(mr.sha.slice(0, 10)), reply);
    }
    assert.ok(replies.some((r) => /^Short commit SHAs are not accepted/.test(r)));
    const marked = w.sim
      .notes(w.app.id, mr.iid)
      .filter((n) => n.authorId === w.bot.id && n.body.includes(STICKY_MARKER));
    assert.deepEqual(
      marked.map((n) => n.id),
      w.stickyNotes(mr.iid).map((n) => n.id),
      "the marker appears only in the bot's own sticky note",
    );
    assert.equal(marked.length, 1);
    assert.deepEqual(trustedBranches(w), []);
    assert.equal(w.sim.pipelines(w.app.id).length, before);
  });
});
