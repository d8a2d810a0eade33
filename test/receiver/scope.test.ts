/**
 * `scope.projects` / `scope.groups`: a webhook from a project the bot does not serve is answered 2xx "not served"
 * and costs no GitLab call (the simulator's request log stays empty); served projects work as before. Routing
 * decides from the payload's `project` alone (GitLab's documented example payloads carry `id` and
 * `path_with_namespace`).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isServed, routeEvent } from "../../src/receiver/route-event.js";
import { worldPerTest } from "../support/trust-world.js";
import { commandNote, examplePayload, postWebhook } from "../support/webhook-client.js";

const start = worldPerTest();

describe("served projects", () => {
  it("a webhook from a project outside scope gets 2xx 'not served' and costs no GitLab call", async () => {
    const w = await start({ config: { scope: { groups: ["acme"] } } });
    w.sim.clearRequestLog();
    const mr = w.openForkMr();
    w.sim.comment(w.app.id, mr.iid, w.maya.id, "/trust");
    await w.settle();
    assert.ok(w.sim.deliveryLog.length > 0, "GitLab delivered the events");
    assert.ok(
      w.sim.deliveryLog.every((d) => d.status === 200 || d.status === 202),
      "every delivery answered 2xx",
    );
    assert.deepEqual(w.sim.requestLog, [], "no GitLab call");
    assert.deepEqual(w.stickyNotes(mr.iid), []);

    const answer = await postWebhook(w.service.receiverUrl!, commandNote("/trust"), { event: "Note Hook" });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { status: "ignored", reason: "project gitlab-org/gitlab-test (5) is not served" });
  });

  it("a project of a listed group (or listed itself) is served as before", async () => {
    const w = await start({ config: { scope: { groups: ["ORG"], projects: ["other/lib"] } } });
    const mr = w.openForkMr();
    await w.settle();
    assert.equal(w.stickyNotes(mr.iid).length, 1);
  });
});

describe("the sweep covers served projects only", () => {
  it("with sweep.projects empty, a Maintainer project outside scope is not swept (no GitLab call about it)", async () => {
    const w = await start({ config: { scope: { groups: ["acme"] }, sweep: { projects: [] } } });
    w.sim.clearRequestLog();
    await w.service.enqueue([{ kind: "sweep", reason: "test" }]);
    await w.settle();
    assert.deepEqual(
      w.sim.requestLog.map((e) => e.route),
      ["GET /projects"],
      "lists the member projects, then nothing about org/app",
    );
  });

  it("in scope, the same project is swept", async () => {
    const w = await start({ config: { scope: { projects: ["org/app"] }, sweep: { projects: [] } } });
    w.sim.clearRequestLog();
    await w.service.enqueue([{ kind: "sweep", reason: "test" }]);
    await w.settle();
    assert.ok(w.sim.requestLog.some((e) => e.path.startsWith(`/projects/${w.app.id}/`)));
  });
});

describe("isServed / routeEvent scope", () => {
  const scope = { projects: ["acme/tools", 42], groups: ["platform/web"] };
  for (const [id, path, served] of [
    [1, "acme/tools", true],
    [42, "else/where", true],
    [2, "Platform/Web/app", true],
    [3, "platform/web/sub/deep/app", true],
    [4, "platform/website", false],
    [5, "platform/web", false],
    [6, "acme/tools2", false],
  ] as const) {
    it(`${path} (${id}): ${served ? "served" : "not served"}`, () => {
      assert.equal(isServed(scope, id, path), served);
    });
  }

  it("empty scope serves everything; a payload without a project is not served when a scope is set", () => {
    const push = examplePayload("push");
    assert.ok("jobs" in routeEvent("Push Hook", push, { trust: { branch_prefix: "trusted-" } }));
    assert.ok(
      "jobs" in
        routeEvent("Push Hook", push, { trust: { branch_prefix: "trusted-" }, scope: { projects: [], groups: [] } }),
    );
    assert.ok(
      "jobs" in
        routeEvent("Push Hook", push, { trust: { branch_prefix: "trusted-" }, scope: { projects: [15], groups: [] } }),
    );
    delete push["project"];
    const routed = routeEvent("Push Hook", push, {
      trust: { branch_prefix: "trusted-" },
      scope: { projects: [15], groups: [] },
    });
    assert.ok("ignored" in routed && /names no project/.test(routed.ignored));
  });
});
