/**
 * The simulator's pipeline-variable setting (`ci_pipeline_variables_minimum_override_role`), as GitLab enforces and
 * shows it: `POST /projects/:id/pipeline` with variables from a user the project does not let set them is GitLab's
 * 400 and creates nothing; `GET /projects/:id` shows the setting to Maintainers only; `PUT /projects/:id` changes it
 * under GitLab's rules (an Owner for `owner` and for leaving `owner` or `no_one_allowed`).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AccessLevel, GitLabSimulator, type SimUser } from "../../src/simulator/gitlab-simulator.js";
import type { PipelineVariablesRole } from "../../src/simulator/model.js";

const REFUSED = { message: { base: ["Insufficient permissions to set pipeline variables"] } };

describe("pipeline variables: ci_pipeline_variables_minimum_override_role", () => {
  let sim: GitLabSimulator;
  let owner: SimUser;
  let maintainer: SimUser;
  let developer: SimUser;
  let reporter: SimUser;
  let projects = 0;

  before(async () => {
    sim = await GitLabSimulator.start();
    owner = sim.addUser({ username: "olga" });
    maintainer = sim.addUser({ username: "maya" });
    developer = sim.addUser({ username: "dev" });
    reporter = sim.addUser({ username: "rita" });
    const org = sim.addGroup({ path: "org" });
    sim.addMember({ groupId: org.id }, owner.id, AccessLevel.Owner);
    sim.addMember({ groupId: org.id }, maintainer.id, AccessLevel.Maintainer);
    sim.addMember({ groupId: org.id }, developer.id, AccessLevel.Developer);
    sim.addMember({ groupId: org.id }, reporter.id, AccessLevel.Reporter);
    sim.webhookMode = "drop";
  });
  after(() => sim.stop());

  function project(o: { role?: PipelineVariablesRole; restrict?: boolean } = {}) {
    return sim.addProject({
      path: `org/app-${++projects}`,
      ...(o.role ? { ciPipelineVariablesMinimumOverrideRole: o.role } : {}),
      ...(o.restrict !== undefined ? { restrictUserDefinedVariables: o.restrict } : {}),
    });
  }

  async function api(user: SimUser, method: string, path: string, body?: unknown) {
    const response = await fetch(`${sim.url}/api/v4${path}`, {
      method,
      headers: { "PRIVATE-TOKEN": user.token, "Content-Type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  const withVariables = { ref: "main", variables: [{ key: "TRUSTED_MR_IID", value: "7" }] };

  it("no_one_allowed (GitLab.com's default): variables are GitLab's 400 for everyone, Owners too, and nothing is created", async () => {
    const app = project({ role: "no_one_allowed" });
    for (const user of [owner, maintainer, developer]) {
      const refused = await api(user, "POST", `/projects/${app.id}/pipeline`, withVariables);
      assert.deepEqual([refused.status, refused.body], [400, REFUSED], user.username);
    }
    assert.deepEqual(sim.pipelines(app.id), [], "nothing was created");
    // Without variables the same users create exactly one pipeline each.
    const plain = await api(maintainer, "POST", `/projects/${app.id}/pipeline`, { ref: "main" });
    assert.equal(plain.status, 201);
    const empty = await api(maintainer, "POST", `/projects/${app.id}/pipeline`, { ref: "main", variables: [] });
    assert.equal(empty.status, 201, "an empty list is no variables");
    assert.equal(sim.pipelines(app.id).length, 2);
    assert.ok(sim.pipelines(app.id).every((p) => p.variables.length === 0));
  });

  it("developer, maintainer, owner: the role and everything above it may set variables", async () => {
    const allowed: Record<Exclude<PipelineVariablesRole, "no_one_allowed">, SimUser[]> = {
      developer: [developer, maintainer, owner],
      maintainer: [maintainer, owner],
      owner: [owner],
    };
    for (const [role, users] of Object.entries(allowed)) {
      const app = project({ role: role as PipelineVariablesRole });
      for (const user of [developer, maintainer, owner]) {
        const result = await api(user, "POST", `/projects/${app.id}/pipeline`, withVariables);
        assert.equal(result.status, users.includes(user) ? 201 : 400, `${role}: ${user.username}`);
        if (result.status === 400) assert.deepEqual(result.body, REFUSED);
      }
      assert.equal(sim.pipelines(app.id).length, users.length, role);
    }
  });

  it("restrict_user_defined_variables off: anyone who may create the pipeline may set variables, whatever the role", async () => {
    const app = project({ role: "no_one_allowed", restrict: false });
    const result = await api(developer, "POST", `/projects/${app.id}/pipeline`, withVariables);
    assert.equal(result.status, 201);
    assert.deepEqual(
      sim.pipeline(app.id, Number(result.body["id"])).variables.map((v) => v.key),
      ["TRUSTED_MR_IID"],
    );
  });

  it("the variables check comes before the protected-ref check, as in GitLab's creation chain", async () => {
    const app = project({ role: "maintainer" });
    sim.protectBranch(app.id, { name: "main", pushAccessLevel: 40, mergeAccessLevel: 40 });
    const withVars = await api(developer, "POST", `/projects/${app.id}/pipeline`, withVariables);
    assert.deepEqual([withVars.status, withVars.body], [400, REFUSED]);
    const without = await api(developer, "POST", `/projects/${app.id}/pipeline`, { ref: "main" });
    assert.deepEqual(
      [without.status, without.body],
      [400, { message: { base: ["Insufficient permissions for protected ref 'main'"] } }],
    );
  });

  it("the default is maintainer with restrict_user_defined_variables on (self-managed); GET shows it to Maintainers only", async () => {
    const app = project();
    for (const user of [maintainer, owner]) {
      const shown = await api(user, "GET", `/projects/${app.id}`);
      assert.equal(shown.body["ci_pipeline_variables_minimum_override_role"], "maintainer");
      assert.equal(shown.body["restrict_user_defined_variables"], true);
    }
    for (const user of [developer, reporter]) {
      const hidden = await api(user, "GET", `/projects/${app.id}`);
      assert.equal(hidden.status, 200);
      assert.ok(!("ci_pipeline_variables_minimum_override_role" in hidden.body), user.username);
      assert.ok(!("restrict_user_defined_variables" in hidden.body), user.username);
    }
  });

  it("PUT /projects/:id: Maintainers change it, but only an Owner sets owner or leaves owner or no_one_allowed", async () => {
    const app = project({ role: "maintainer" });
    const put = (user: SimUser, body: Record<string, unknown>) => api(user, "PUT", `/projects/${app.id}`, body);
    const shown = async () => (await api(owner, "GET", `/projects/${app.id}`)).body;

    assert.equal((await put(developer, { ci_pipeline_variables_minimum_override_role: "developer" })).status, 403);
    const toDeveloper = await put(maintainer, { ci_pipeline_variables_minimum_override_role: "developer" });
    assert.equal(toDeveloper.status, 200);
    assert.equal(toDeveloper.body["ci_pipeline_variables_minimum_override_role"], "developer");

    const toOwner = await put(maintainer, { ci_pipeline_variables_minimum_override_role: "owner" });
    assert.deepEqual(
      [toOwner.status, toOwner.body],
      [400, { message: "Changing the ci_pipeline_variables_minimum_override_role to the owner role is not allowed" }],
    );

    const toNoOne = await put(maintainer, { ci_pipeline_variables_minimum_override_role: "no_one_allowed" });
    assert.equal(toNoOne.status, 200, "a Maintainer may lock it");
    const notAllowed = {
      message:
        "Changing the restrict_user_defined_variables or ci_pipeline_variables_minimum_override_role is not allowed",
    };
    for (const body of [
      { ci_pipeline_variables_minimum_override_role: "maintainer" },
      { restrict_user_defined_variables: false },
    ]) {
      const back = await put(maintainer, body);
      assert.deepEqual([back.status, back.body], [400, notAllowed], JSON.stringify(body));
    }
    const same = await put(maintainer, { ci_pipeline_variables_minimum_override_role: "no_one_allowed" });
    assert.equal(same.status, 200, "setting the value it has changes nothing and needs nothing");
    assert.equal((await shown())["ci_pipeline_variables_minimum_override_role"], "no_one_allowed");

    const unlocked = await put(owner, { ci_pipeline_variables_minimum_override_role: "maintainer" });
    assert.equal(unlocked.status, 200);
    assert.equal((await shown())["ci_pipeline_variables_minimum_override_role"], "maintainer");

    const invalid = await put(owner, { ci_pipeline_variables_minimum_override_role: "guest" });
    assert.deepEqual(
      [invalid.status, invalid.body],
      [400, { error: "ci_pipeline_variables_minimum_override_role does not have a valid value" }],
    );
  });
});
