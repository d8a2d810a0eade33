/**
 * A person's "Resend" from a hook's Recent events after the receiver has forgotten the delivery id
 * (`webhook.dedup_ttl_seconds`, here 1 s instead of an hour): the command note is still remembered by note and is
 * not stored again, while the MR event is stored again and only makes the worker look at the MR once more, which
 * changes nothing in GitLab (level-triggered, STYLE.md 3). The GitLab simulator over HTTP, the real service, Redis.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deliveryKey } from "../../src/queue/inbox.js";
import { type TrustWorld, worldPerTest } from "../support/trust-world.js";
import { waitFor } from "../support/wait.js";

const start = worldPerTest();

/** API requests that change something in GitLab. */
/** Requests that change something: not GET or HEAD, nor a GraphQL query (`POST /api/graphql` only reads here). */
function writes(w: TrustWorld) {
  return w.sim.requestLog
    .filter((r) => r.method !== "GET" && r.method !== "HEAD" && r.route !== "POST /api/graphql")
    .map((r) => `${r.method} ${r.route}`);
}

describe("resend after the delivery window", () => {
  it("the command note is a duplicate; the MR event is stored again and only reconciles, writing nothing", async () => {
    const w = await start({ config: { webhook: { dedup_ttl_seconds: 1 } } });
    w.sim.webhookMode = "hold";
    const mr = w.openForkMr();
    const command = w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.sim.idle();
    const deliveries = w.sim.takeHeldDeliveries();
    assert.deepEqual([...new Set(deliveries.map((d) => d.event))].sort(), ["Merge Request Hook", "Note Hook"]);
    w.sim.webhookMode = "deliver";
    for (const d of deliveries) assert.equal((await w.sim.redeliver(d)).status, 202, d.event);
    await w.settle();
    const [pipeline] = w.pipelinesOn(w.trustedBranch(mr)).filter((p) => p.source === "api");
    assert.ok(pipeline, "the /trust ran");

    await waitFor("the delivery ids to be forgotten", async () => {
      const alive = await Promise.all(deliveries.map((d) => w.redis.exists(deliveryKey(w.config, d.idempotencyKey))));
      return alive.every((n) => n === 0);
    });
    w.sim.clearRequestLog();
    for (const d of deliveries) {
      const answer = await w.sim.redeliver(d);
      const body = JSON.parse(answer.body) as { status: string };
      if (d.event === "Note Hook") assert.equal(body.status, "duplicate", "the command is remembered by its note");
      else assert.equal(body.status, "queued", `${d.event}: only a hint, stored again`);
    }
    await w.settle();

    assert.deepEqual(writes(w), [], "the resent MR event wrote nothing to GitLab");
    assert.ok(
      w.sim.requestLog.some((r) => r.route === "GET /projects/:id/merge_requests/:iid"),
      "the resent MR event made the worker read the MR again",
    );
    assert.equal(w.pipelinesOn(w.trustedBranch(mr)).filter((p) => p.source === "api").length, 1);
    assert.equal(w.stickyNotes(mr.iid).length, 1);
    assert.equal(w.replies(mr.iid).length, 0);
    assert.equal(w.sim.awardEmoji(w.app.id, mr.iid, command.id).length, 1);
  });
});
