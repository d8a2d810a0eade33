/**
 * Per-project policy (`.gitlab/trusted-mr-bot.yml`, src/trust/policy.ts) end to end: the simulator serves the
 * repository files API and fires push hooks with `added`/`modified`/`removed`; the service runs with
 * `trust.project_policy.enabled`. Dev is a Developer of `org` (not a committer by the server's settings).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SimProject } from "../../src/simulator/gitlab-simulator.js";
import { mergePolicy, parsePolicy, pushTouchesPolicy } from "../../src/trust/policy.js";
import { STICKY_MARKER } from "../../src/trust/state.js";
import { configSchema } from "../../src/config/config.js";
import { TEST_SECRET } from "../support/service-config.js";
import { type TrustWorld, type TrustWorldOptions, worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();
const POLICY = ".gitlab/trusted-mr-bot.yml";

function withPolicy(trust: Record<string, unknown> = {}): TrustWorldOptions {
  return { config: { trust: { project_policy: { enabled: true }, ...trust } } };
}

/** Maya (Maintainer) commits the policy file to `main` of `project`. */
function commitPolicy(w: TrustWorld, text: string | null, project: SimProject = w.app, userId = w.maya.id): void {
  w.sim.push(project.id, "main", { userId, message: "Update the bot's policy", files: { [POLICY]: text } });
}

/** A second project of `org`, served by the same bot, with a fork by Erin. */
function addLib(w: TrustWorld, o: { protectMain: boolean }): { lib: SimProject; fork: SimProject } {
  const lib = w.sim.addProject({ path: "org/lib", pipelineOnPushFilter: (ref: string) => !ref.startsWith("trusted-") });
  if (o.protectMain) w.sim.protectBranch(lib.id, { name: "main", pushAccessLevel: 40, mergeAccessLevel: 30 });
  w.sim.protectBranch(lib.id, { name: "trusted-*", pushAccessLevel: 40, mergeAccessLevel: 40 });
  w.sim.addHook(lib.id, {
    url: `${w.service.receiverUrl}/webhook`,
    token: TEST_SECRET,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
    pipelineEvents: true,
  });
  const fork = w.sim.fork(lib.id, { ownerId: w.erin.id, path: "erin/lib" });
  return { lib, fork };
}

/** Erin's fork MR into org/lib. */
function openLibMr(w: TrustWorld, lib: SimProject, fork: SimProject) {
  w.sim.push(fork.id, "fix", { userId: w.erin.id });
  return w.sim.openMergeRequest({
    sourceProjectId: fork.id,
    sourceBranch: "fix",
    authorId: w.erin.id,
    targetProjectId: lib.id,
  });
}

function stickyBody(w: TrustWorld, projectId: number, iid: number): string {
  const notes = w.sim.notes(projectId, iid).filter((n) => n.authorId === w.bot.id && n.body.startsWith(STICKY_MARKER));
  assert.equal(notes.length, 1, "exactly one sticky note");
  return notes[0]!.body;
}

describe("per-project policy", () => {
  it("a project's policy file adds a committer there, and another project's MRs do not see it", async () => {
    const w = await start(withPolicy());
    const { lib, fork } = addLib(w, { protectMain: true });
    commitPolicy(w, "committer_users: [dev]\n");
    await w.settle();

    const mr = w.openForkMr();
    const libMr = openLibMr(w, lib, fork);
    await w.settle();

    w.sim.comment(w.app.id, mr.iid, w.dev.id, `/trust ${mr.sha}`);
    w.sim.comment(lib.id, libMr.iid, w.dev.id, `/trust ${libMr.sha}`);
    await w.settle();

    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha, "dev is a committer in org/app");
    assert.equal(w.sim.branch(lib.id, w.trustedBranch(libMr)), undefined, "but not in org/lib");
    const refusal = w.sim
      .notes(lib.id, libMr.iid)
      .find((n) => n.authorId === w.bot.id && /only committers/.test(n.body));
    assert.ok(refusal, "dev is told why in org/lib");
    assert.doesNotMatch(stickyBody(w, w.app.id, mr.iid), /policy/, "a valid policy adds no line to the note");
  });

  it("an invalid policy file is reported in the sticky note (file and key, not its contents) and changes nothing", async () => {
    const w = await start(withPolicy());
    commitPolicy(w, "committer_users: [dev]\nglpat_leak: glpat-abcdef0123456789\n");
    await w.settle();
    const mr = w.openForkMr();
    await w.settle();

    const body = stickyBody(w, w.app.id, mr.iid);
    assert.match(body, /The project policy `\.gitlab\/trusted-mr-bot\.yml` is not used: an unknown key/);
    assert.match(body, /The server's settings apply/);
    assert.doesNotMatch(body, /glpat/, "nothing from the file is echoed");

    w.sim.comment(w.app.id, mr.iid, w.dev.id, `/trust ${mr.sha}`);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined, "the file's committer list is not used");
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha, "the server's committers still trust");
  });

  it("attack: a policy file on an MR's source branch or in a fork does not make its author a committer", async () => {
    const w = await start(withPolicy());
    // Dev (Developer) writes himself in on his own branch; Dave on his fork's default branch.
    w.sim.push(w.app.id, "feature", { userId: w.dev.id, files: { [POLICY]: "committer_users: [dev]\n" } });
    const own = w.sim.openMergeRequest({ sourceProjectId: w.app.id, sourceBranch: "feature", authorId: w.dev.id });
    w.sim.push(w.daveFork.id, "main", { userId: w.dave.id, files: { [POLICY]: "committer_users: [dave]\n" } });
    const forkMr = w.openForkMr("fix");
    await w.settle();

    w.sim.comment(w.app.id, own.iid, w.dev.id, `/trust ${own.sha}`);
    w.sim.comment(w.app.id, forkMr.iid, w.dave.id, `/trust ${forkMr.sha}`);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(own)), undefined);
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(forkMr)), undefined);
    assert.doesNotMatch(stickyBody(w, w.app.id, own.iid), /policy/, "org/app has no policy file: nothing to report");
  });

  it("a push to the default branch that changes the policy file takes effect at once, without a restart", async () => {
    const w = await start(withPolicy());
    commitPolicy(w, "committer_users: [erin]\n");
    await w.settle();
    const mr = w.openForkMr();
    await w.settle(); // the policy is read and cached (for trust.project_policy.cache_seconds, 600 s)

    commitPolicy(w, "committer_users: [erin, dev]\nwelcome_text: Thanks! A committer will review soon.\n");
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.dev.id, `/trust ${mr.sha}`);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr))?.sha, mr.sha, "dev became a committer with the push");

    const second = w.openForkMr("second", w.erin, w.erinFork);
    await w.settle();
    // Erin's MR is from the fork; she is listed, but the welcome is for first-time contributors: the new text.
    assert.match(stickyBody(w, w.app.id, second.iid), /@erin: Thanks\\! A committer will review soon\\./);
  });

  it("attack: a project policy cannot turn require_sha off or lower the committer access level", async () => {
    const w = await start(withPolicy({ require_sha: true }));
    commitPolicy(w, "require_sha: false\n");
    await w.settle();
    const mr = w.openForkMr();
    await w.settle();
    assert.match(stickyBody(w, w.app.id, mr.iid), /is not used: require\\_sha\\: the server requires a SHA/);
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined, "a bare /trust is still refused");

    commitPolicy(w, "committer_access_level: developer\n");
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, w.dev.id, `/trust ${mr.sha}`);
    await w.settle();
    assert.equal(w.sim.branch(w.app.id, w.trustedBranch(mr)), undefined, "a Developer is still no committer");
    assert.match(
      stickyBody(w, w.app.id, mr.iid),
      /is not used: committer\\_access\\_level\\: below the server\\'s Maintainer/,
    );
  });

  it("attack: a policy file on an unprotected default branch is ignored (any Developer could write it)", async () => {
    const w = await start(withPolicy());
    const { lib, fork } = addLib(w, { protectMain: false });
    commitPolicy(w, "committer_users: [dev]\n", lib, w.dev.id); // dev may push to lib's unprotected main
    const libMr = openLibMr(w, lib, fork);
    await w.settle();
    w.sim.comment(lib.id, libMr.iid, w.dev.id, `/trust ${libMr.sha}`);
    await w.settle();
    assert.equal(w.sim.branch(lib.id, w.trustedBranch(libMr)), undefined);
    assert.match(stickyBody(w, lib.id, libMr.iid), /is not used: the default branch is not protected/);
  });
});

describe("policy parsing and merging (pure)", () => {
  const server = configSchema.parse({}).trust;

  it("lists add to the server's, levels and require_sha only tighten, other settings replace", () => {
    const parsed = parsePolicy(
      "committer_users: [alice]\ncommitter_access_level: owner\nrequire_sha: true\ncancel_stale_pipelines: false\nstate_labels: { waiting: needs-review }\n",
      { ...server, committer_users: [7] },
    );
    assert.equal(parsed.kind, "valid");
    const merged = mergePolicy({ ...server, committer_users: [7] }, parsed.kind === "valid" ? parsed.policy : {});
    assert.deepEqual(merged.committer_users, [7, "alice"]);
    assert.equal(merged.committer_access_level, 50);
    assert.equal(merged.require_sha, true);
    assert.equal(merged.cancel_stale_pipelines, false);
    assert.equal(merged.state_labels.waiting, "needs-review");
    assert.equal(merged.state_labels.trusted, server.state_labels.trusted);
    assert.equal(merged.branch_prefix, server.branch_prefix, "not a policy key");
  });

  it("problems name the key, never the value; keys the file may not set are unknown", () => {
    assert.deepEqual(parsePolicy("branch_prefix: x-\n", server), {
      kind: "invalid",
      problem: "an unknown key (see the README's per-project keys)",
    });
    const bad = parsePolicy("committer_group_access_level: sneaky-value\n", server);
    assert.equal(bad.kind, "invalid");
    assert.match(bad.kind === "invalid" ? bad.problem : "", /^committer_group_access_level: one of guest/);
    assert.doesNotMatch(bad.kind === "invalid" ? bad.problem : "", /sneaky/);
    assert.deepEqual(parsePolicy("a: [\n", server).kind, "invalid");
    assert.deepEqual(parsePolicy("", server), { kind: "valid", policy: {} });
  });

  it("a push hook touches the policy when a commit lists it, or when the hook lists fewer commits than were pushed", () => {
    assert.equal(pushTouchesPolicy([{ modified: ["README.md"] }], 1), false);
    assert.equal(pushTouchesPolicy([{ removed: [POLICY] }], 1), true);
    assert.equal(
      pushTouchesPolicy(
        Array.from({ length: 20 }, () => ({ modified: ["x"] })),
        25,
      ),
      true,
    );
  });
});
