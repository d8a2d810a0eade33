/** `GET /groups/:id/projects` (lib/api/groups.rb, GroupProjectsFinder), through `@gitbeaker/rest` over real HTTP. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessLevel } from "../../src/simulator/gitlab-simulator.js";
import { client, rejectsWith, seedWorld } from "./helpers.js";

describe("group projects", () => {
  test("include_subgroups adds the descendants' projects; only readable ones; newest first", async (t) => {
    const { sim } = await seedWorld();
    t.after(() => sim.stop());
    const corp = sim.addGroup({ path: "corp" });
    const team = sim.addGroup({ path: "team", parentId: corp.id });
    const eve = sim.addUser({ username: "eve" });
    sim.addMember({ groupId: corp.id }, eve.id, AccessLevel.Developer);
    const site = sim.addProject({ path: "corp/site", visibility: "private" });
    const lib = sim.addProject({ path: "corp/team/lib", visibility: "private" });
    const api = client(sim, eve);
    const all = await api.Groups.allProjects("corp", { includeSubgroups: true, withShared: false, archived: false });
    assert.deepEqual(
      all.map((p) => p.path_with_namespace),
      [lib.pathWithNamespace, site.pathWithNamespace],
    );
    const own = await api.Groups.allProjects(corp.id, {});
    assert.deepEqual(
      own.map((p) => p.path_with_namespace),
      ["corp/site"],
    );
    assert.deepEqual(
      (await api.Groups.allProjects(team.id, {})).map((p) => p.path_with_namespace),
      ["corp/team/lib"],
    );
  });

  test("a group none of whose projects the user may read is 404 Group Not Found (inferred: groups are private)", async (t) => {
    const { sim, contributor } = await seedWorld();
    t.after(() => sim.stop());
    sim.addGroup({ path: "corp" });
    sim.addProject({ path: "corp/site", visibility: "private" });
    await rejectsWith(client(sim, contributor).Groups.allProjects("corp", {}), 404, "404 Group Not Found");
    await rejectsWith(client(sim, contributor).Groups.allProjects("nope", {}), 404, "404 Group Not Found");
  });
});
