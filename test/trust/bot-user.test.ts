/**
 * The bot's own user (`GET /user`) is on every job's path: a command asks for it twice before its first GitLab call.
 * A process reads it once and keeps it (workflow.ts `botUser`), rather than reading Redis on every job: each read was
 * a round trip between the `/trust` webhook and the trusted pipeline (issue 10, `/trust` latency).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { worldPerTest } from "../support/trust-world.js";

const start = worldPerTest();

describe("the bot's user", () => {
  it("is read once per process: a later command reads it neither from Redis nor from GitLab", async () => {
    const w = await start();
    const mr = w.openForkMr("feature");
    await w.settle(); // the first look at the MR read it (GitLab, then kept in Redis)
    // Without the Redis copy, a job that reads the bot's user again has to ask GitLab: the request log shows it.
    await w.redis.del(`${w.prefix}:trust:bot-user`);
    const before = w.sim.requestLog.length;
    w.sim.comment(w.app.id, mr.iid, w.maya.id, `/trust ${mr.sha}`);
    await w.settle();

    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).length, 1, "the command was carried out");
    const reads = w.sim.requestLog.slice(before).filter((e) => e.route === "GET /user");
    assert.equal(reads.length, 0);
  });
});
