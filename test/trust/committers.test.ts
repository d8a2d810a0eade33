/**
 * `Committers` against the GitLab simulator over HTTP (through the gitbeaker adapter) and a real Redis: which facts
 * it asks GitLab for, what it caches (names resolved to ids, refusals) and what it never caches (grants). Then the
 * attacks on who counts as a committer, end to end through `/trust` with the real service.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { configSchema } from "../../src/config/config.js";
import { GitbeakerAdapter } from "../../src/gitlab/gitbeaker-adapter.js";
import { createMetrics } from "../../src/metrics.js";
import type { Redis } from "../../src/redis.js";
import { AccessLevel, GitLabSimulator, type SimProject, type SimUser } from "../../src/simulator/gitlab-simulator.js";
import { Committers, REFUSAL_CACHE_SECONDS, UNRESOLVED_RETRY_MS } from "../../src/trust/committers.js";
import { TrustStore } from "../../src/trust/store.js";
import { captureLogger } from "../support/capture-logger.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";

const startWorld = worldPerTest();

describe("Committers", () => {
  let sim: GitLabSimulator;
  let redis: Redis;
  let prefix: string;
  let bot: SimUser;
  let maya: SimUser;
  let alice: SimUser;
  let gus: SimUser;
  let app: SimProject;
  let org: { id: number };
  let core: { id: number };
  const metrics = createMetrics({ defaultMetrics: false });

  beforeEach(async () => {
    sim = await GitLabSimulator.start();
    sim.webhookMode = "drop";
    bot = sim.addUser({ username: "trusted-bot", bot: true });
    maya = sim.addUser({ username: "maya" });
    alice = sim.addUser({ username: "alice" });
    gus = sim.addUser({ username: "gus" });
    org = sim.addGroup({ path: "org" });
    core = sim.addGroup({ path: "core", parentId: org.id });
    sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
    sim.addMember({ groupId: org.id }, maya.id, AccessLevel.Maintainer);
    app = sim.addProject({ path: "org/app" });
    redis = testRedis();
    prefix = uniquePrefix();
  });

  afterEach(async () => {
    await sim.stop();
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  function committers(trust: Record<string, unknown> = {}, now?: () => number) {
    const config = configSchema.parse({ gitlab: { url: sim.url, token: bot.token }, trust });
    const { logger, lines } = captureLogger("info");
    const port = new GitbeakerAdapter({ config, metrics });
    const store = new TrustStore(redis, prefix);
    const c = new Committers({ port, config: config.trust, store, logger, ...(now ? { now } : {}) });
    return { committers: c, lines };
  }

  /** The routes of the API calls made by `fn`. */
  async function calls(fn: () => Promise<unknown>): Promise<string[]> {
    sim.clearRequestLog();
    await fn();
    return sim.requestLog.map((e) => e.route);
  }

  it("resolves committer_users names to ids once per process, and matches commenters by id", async () => {
    const { committers: c } = committers({ committer_users: ["@Alice"] });
    const first = await calls(async () => {
      assert.equal((await c.authorize(app.id, alice)).committer, true);
    });
    assert.deepEqual(first, ["GET /users"], "resolved once; a listed user needs no membership look-up");
    assert.deepEqual(
      await calls(async () => assert.equal((await c.authorize(app.id, alice)).committer, true)),
      [],
      "the id is kept",
    );

    // Alice renames herself and Mallory takes the old name: the id decides.
    sim.renameUser(alice.id, "alice-new");
    const mallory = sim.addUser({ username: "alice" });
    const refused = await c.authorize(app.id, { id: mallory.id, username: "alice" });
    assert.equal(refused.committer, false);
    assert.match(refused.reason, /^@alice is not a member of this project/);
    const renamed = await c.authorize(app.id, { id: alice.id, username: "alice-new" });
    assert.equal(renamed.committer, true);
    assert.match(renamed.reason, /^@alice-new is listed in trust\.committer_users/);
  });

  it("a project's own list (its policy file) counts there only, and the reason names it", async () => {
    const config = configSchema.parse({
      gitlab: { url: sim.url, token: bot.token },
      trust: { committer_users: [gus.id] },
    });
    const lib = sim.addProject({ path: "org/lib" });
    const c = new Committers({
      port: new GitbeakerAdapter({ config, metrics }),
      config: config.trust,
      store: new TrustStore(redis, prefix),
      logger: captureLogger("warn").logger,
      // What policy.ts merges for org/app: alice added to the server's list.
      configFor: async (projectId) =>
        projectId === app.id ? { ...config.trust, committer_users: [gus.id, "alice"] } : config.trust,
    });
    assert.match((await c.authorize(app.id, alice)).reason, /^@alice is listed in the project's policy file/);
    assert.match((await c.authorize(app.id, gus)).reason, /^@gus is listed in trust\.committer_users/);
    const elsewhere = await c.authorize(lib.id, alice);
    assert.equal(elsewhere.committer, false, "a name resolved for org/app makes no committer in org/lib");
  });

  it("accepts numeric user ids in committer_users, with no look-up at all", async () => {
    const { committers: c } = committers({ committer_users: [gus.id] });
    assert.deepEqual(await calls(async () => assert.equal((await c.authorize(app.id, gus)).committer, true)), []);
  });

  it("a name nobody has is logged and looked up again only after 10 minutes", async () => {
    let now = 1_000_000;
    const { committers: c, lines } = committers({ committer_users: ["zoe"] }, () => now);
    const warnings = () => lines.filter((l) => l["level"] === "warn" && l["username"] === "zoe");
    assert.equal((await c.authorize(app.id, maya)).committer, true, "a Maintainer all the same");
    assert.equal(warnings().length, 1);
    // Zoe signs up: until the retry is due, the name is still unresolved.
    const zoe = sim.addUser({ username: "zoe" });
    now += UNRESOLVED_RETRY_MS - 1;
    const early = await calls(() => c.authorize(app.id, zoe));
    assert.ok(!early.includes("GET /users"), `no look-up before 10 minutes: ${early.join(", ")}`);
    await redis.del(`${prefix}:trust:refusal:${app.id}:${zoe.id}`); // the refusal just cached, forgotten
    now += 1;
    assert.deepEqual(await calls(async () => assert.equal((await c.authorize(app.id, zoe)).committer, true)), [
      "GET /users",
    ]);
    assert.equal(warnings().length, 1);
  });

  it("concurrent commands share one look-up of the names", async () => {
    const { committers: c } = committers({ committer_users: ["alice", "zoe"] });
    const routes = await calls(() => Promise.all([c.authorize(app.id, alice), c.authorize(app.id, alice)]));
    assert.deepEqual(routes, ["GET /users", "GET /users"], "one per configured name, not per command");
  });

  it("compares the level in a committer group: an inherited Guest is no committer, a Developer is", async () => {
    // Gus is a Guest of org; org/core (a subgroup) is the committer group: `members/all` lists him there as Guest.
    sim.addMember({ groupId: org.id }, gus.id, AccessLevel.Guest);
    const { committers: c } = committers({ committer_groups: ["org/core"] });
    const result = await c.authorize(app.id, gus);
    assert.equal(result.committer, false);
    assert.match(result.reason, /only the Guest role in committer group org\/core \(Developer or higher needed\)/);

    // A Developer of the committer group itself is a committer (the default bar), whatever the project level.
    const dan = sim.addUser({ username: "dan" });
    sim.addMember({ groupId: core.id }, dan.id, AccessLevel.Developer);
    const granted = await c.authorize(app.id, dan);
    assert.equal(granted.committer, true, granted.reason);
    assert.match(granted.reason, /Developer role in committer group org\/core/);
  });

  it("caches a refusal per (project, user), never a grant", async () => {
    const dev = sim.addUser({ username: "dev" });
    sim.addMember({ projectId: app.id }, dev.id, AccessLevel.Developer);
    const { committers: c } = committers({ committer_groups: ["org/core"] });
    const first = await calls(async () => assert.equal((await c.authorize(app.id, dev)).committer, false));
    assert.deepEqual(first, ["GET /projects/:id/members/all/:user_id", "GET /groups/:id/members/all/:user_id"]);
    assert.deepEqual(
      await calls(async () => assert.equal((await c.authorize(app.id, dev)).committer, false)),
      [],
      "the refusal is reused",
    );
    const ttl = await redis.ttl(`${prefix}:trust:refusal:${app.id}:${dev.id}`);
    assert.ok(ttl > 0 && ttl <= REFUSAL_CACHE_SECONDS, `ttl ${ttl}`);

    // Maya is a Maintainer: granted, and asked again every time, so a demotion counts at once.
    assert.equal((await c.authorize(app.id, maya)).committer, true);
    sim.addMember({ groupId: org.id }, maya.id, AccessLevel.Reporter);
    const demoted = await calls(async () => assert.equal((await c.authorize(app.id, maya)).committer, false));
    assert.ok(demoted.includes("GET /projects/:id/members/all/:user_id"));
  });
});

describe("attacks on who is a committer, end to end", () => {
  /** The trusted pipelines (any `trusted-*` ref) for the MR's current head. */
  function trustedPipelines(w: TrustWorld, iid: number) {
    const head = w.mr(iid).sha;
    return w.sim.pipelines(w.app.id).filter((p) => p.ref.startsWith("trusted-") && p.sha === head);
  }

  it("attack: an inherited Guest of a committer group cannot trust", async () => {
    const w = await startWorld({ config: { trust: { committer_groups: ["corp/core"] } } });
    const corp = w.sim.addGroup({ path: "corp" });
    const core = w.sim.addGroup({ path: "core", parentId: corp.id });
    // Gus is only a Guest of corp; `members/all` of corp/core lists him, inherited, as a Guest.
    const gus = w.sim.addUser({ username: "gus" });
    w.sim.addMember({ groupId: corp.id }, gus.id, AccessLevel.Guest);
    const mr = w.openForkMr();
    await w.settle();
    w.sim.comment(w.app.id, mr.iid, gus.id, "/trust");
    await w.settle();
    assert.deepEqual(trustedPipelines(w, mr.iid), []);
    const replies = w.replies(mr.iid).map((n) => n.body);
    assert.equal(replies.length, 1);
    assert.match(
      replies[0] ?? "",
      /^@gus is not a member of this project and only the Guest role in committer group corp\/core \(Developer or higher needed\)/,
    );

    // A Developer of the committer group itself can.
    const dan = w.sim.addUser({ username: "dan" });
    w.sim.addMember({ groupId: core.id }, dan.id, AccessLevel.Developer);
    w.sim.comment(w.app.id, mr.iid, dan.id, "/trust");
    await w.settle();
    assert.equal(trustedPipelines(w, mr.iid).length, 1);
  });

  it("attack: a user who takes a committer's old username cannot trust", async () => {
    const w = await startWorld({ config: { trust: { committer_users: ["carol"] } } });
    const carol = w.sim.addUser({ username: "carol" });
    const first = w.openForkMr("first");
    const second = w.openForkMr("second");
    await w.settle();
    w.sim.comment(w.app.id, first.iid, carol.id, "/trust");
    await w.settle();
    assert.equal(trustedPipelines(w, first.iid).length, 1, "carol is a committer by listing");

    // Carol renames herself; Mallory signs up with the freed name and comments as @carol.
    w.sim.renameUser(carol.id, "carol-renamed");
    const mallory = w.sim.addUser({ username: "carol" });
    w.sim.comment(w.app.id, second.iid, mallory.id, "/trust");
    await w.settle();
    assert.deepEqual(trustedPipelines(w, second.iid), []);
    const replies = w.replies(second.iid).map((n) => n.body);
    assert.equal(replies.length, 1);
    assert.match(replies[0] ?? "", /^@carol is not a member of this project/);

    // The renamed original still can.
    w.sim.comment(w.app.id, second.iid, carol.id, "/trust");
    await w.settle();
    assert.equal(trustedPipelines(w, second.iid).length, 1);
    assert.equal(w.replies(second.iid).length, 1, "no second refusal");
  });
});
