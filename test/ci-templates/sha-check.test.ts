import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parseTrustedBranchName, trustedBranchName } from "../../src/trust/decide.js";
import {
  type FakeMergeRequest,
  type FakeMergeRequestsApi,
  startFakeMergeRequestsApi,
} from "./fake-merge-requests-api.js";
import {
  type CiContext,
  type CiProject,
  createCiProject,
  LOCAL_COMPONENT,
  previewConfig,
  runJobs,
} from "./gitlab-ci-local.js";

// The SHA check's exit status and output: its script as gitlab-ci-local renders it from the template, run with
// `sh -e` (dash here; busybox ash in the default image), and the job run through gitlab-ci-local (bash -eo pipefail).

const TRUSTED_SHA = "3f2c0b1d7e9a4c6b8d0e2f4a6c8e0b2d4f6a8c0e";
const OTHER_SHA = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d";
const TOKEN = "glpat-test-token";
/** The bot's username, given to the template as input `bot-username` in `botProject`. */
const BOT_USERNAME = "trusted-bot";
const PROJECT_ID = 42;
const FORK_ID = 99;
const HEADING = "Checking for matching commit SHAs between trusted branch and review branch";

const projectJobs = `
build:
  stage: build
  script: [echo "build ran"]

protected-tests:
  extends: .trusted-protected
  stage: test
  script: [echo "protected tests ran"]
`;

let project: CiProject;
let failOpenProject: CiProject;
let botProject: CiProject;
/** The check job's script with default inputs, with `fail-unchecked: false`, and with `bot-username` set. */
let script: string;
let failOpenScript: string;
let botScript: string;
let rendered: Record<string, unknown>;
const apis: FakeMergeRequestsApi[] = [];

function jobScript(config: Record<string, unknown>, job: string): string {
  const lines = (config[job] as { script?: unknown } | undefined)?.script;
  assert.ok(Array.isArray(lines) && lines.every((l) => typeof l === "string"), `${job} has no script`);
  return lines.join("\n");
}

before(async () => {
  project = await createCiProject({ gitlabCiYml: `include:\n  - component: ${LOCAL_COMPONENT}\n${projectJobs}` });
  failOpenProject = await createCiProject({
    gitlabCiYml: `include:
  - component: ${LOCAL_COMPONENT}
    inputs:
      fail-unchecked: false
      contributor-guidance-fails: true
${projectJobs}`,
  });
  botProject = await createCiProject({
    gitlabCiYml: `include:
  - component: ${LOCAL_COMPONENT}
    inputs:
      bot-username: ${BOT_USERNAME}
${projectJobs}`,
  });
  rendered = await previewConfig(project);
  script = jobScript(rendered, "trusted-sha-check");
  failOpenScript = jobScript(await previewConfig(failOpenProject), "trusted-sha-check");
  botScript = jobScript(await previewConfig(botProject), "trusted-sha-check");
});

after(async () => {
  await Promise.all([
    project?.remove(),
    failOpenProject?.remove(),
    botProject?.remove(),
    ...apis.map((api) => api.close()),
  ]);
});

async function fakeApi(
  mergeRequests: FakeMergeRequest[],
  options: { pretty?: boolean; decoySha?: string } = {},
): Promise<FakeMergeRequestsApi> {
  const api = await startFakeMergeRequestsApi({ projectId: PROJECT_ID, token: TOKEN, mergeRequests, ...options });
  apis.push(api);
  return api;
}

function mr(iid: number, sha: string, extra: Partial<FakeMergeRequest> = {}): FakeMergeRequest {
  return { iid, sha, sourceBranch: "fix-parser", sourceProjectId: FORK_ID, ...extra };
}

interface ScriptRun {
  code: number;
  output: string;
  lines: string[];
}

/** Runs the script as GitLab Runner would run a job's script: `sh -e`, only the given variables set. */
function runScript(text: string, variables: Record<string, string>, pathDirs?: string): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-e", "-c", text], {
      env: { PATH: pathDirs ?? process.env["PATH"] ?? "/usr/bin:/bin", ...variables },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, output, lines: output.split("\n").filter(Boolean) }));
  });
}

/** The trusted branch of MR !12 from fix-parser, named as the bot names it. */
const TRUSTED_BRANCH = trustedBranchName("trusted-", { sourceBranch: "fix-parser", iid: 12 });

/** A pipeline on the trusted branch of !12 at TRUSTED_SHA, as GitLab sets it up. */
function trustedPipeline(apiUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CI_PIPELINE_SOURCE: "web",
    CI_COMMIT_BRANCH: TRUSTED_BRANCH,
    CI_COMMIT_SHA: TRUSTED_SHA,
    CI_COMMIT_REF_PROTECTED: "true",
    CI_PROJECT_ID: String(PROJECT_ID),
    CI_API_V4_URL: apiUrl,
    ...extra,
  };
}

const bot = {
  CI_PIPELINE_SOURCE: "api",
  TRUSTED_MR_IID: "12",
  TRUSTED_SOURCE_SHA: TRUSTED_SHA,
  TRUSTED_SOURCE_PROJECT_ID: String(FORK_ID),
  TRUSTED_SOURCE_BRANCH: "fix-parser",
  TRUSTED_GRANTED_BY: "alice",
};

test("the rendered check job runs first, without checkout, in the pinned image with a shell entrypoint", () => {
  const job = rendered["trusted-sha-check"] as Record<string, unknown>;
  assert.equal(job["stage"], ".pre");
  assert.deepEqual(job["variables"], { GIT_STRATEGY: "none" });
  assert.deepEqual(job["inherit"], { default: ["tags"] });
  const image = job["image"] as { name?: string; entrypoint?: string[] };
  assert.match(image.name ?? "", /^curlimages\/curl:[\d.]+@sha256:[0-9a-f]{64}$/);
  assert.deepEqual(image.entrypoint, [""]);
  assert.equal((rendered["contributor-guidance"] as Record<string, unknown>)["stage"], ".post");
});

describe("SHA check script, pipeline started by the bot", () => {
  test("matching TRUSTED_SOURCE_SHA: passes, prints both branches and SHAs, asks the API nothing", async () => {
    const api = await fakeApi([]);
    const run = await runScript(script, trustedPipeline(api.apiUrl, bot));
    assert.equal(run.code, 0, run.output);
    assert.deepEqual(run.lines, [
      HEADING,
      "Trusted branch: trusted-fix-parser-mr12",
      `Trusted branch SHA: ${TRUSTED_SHA}`,
      "Review branch: fix-parser (merge request !12, source project 99)",
      `Review branch SHA: ${TRUSTED_SHA} (the reviewed commit, trust granted by alice)`,
      "OK: the SHAs match; this pipeline tests exactly the reviewed commit.",
    ]);
    assert.deepEqual(api.requests, []);
  });

  test("mismatching TRUSTED_SOURCE_SHA: fails, with both SHAs and the way out", async () => {
    const api = await fakeApi([]);
    const run = await runScript(script, trustedPipeline(api.apiUrl, { ...bot, TRUSTED_SOURCE_SHA: OTHER_SHA }));
    assert.equal(run.code, 1, run.output);
    assert.equal(run.lines[0], HEADING);
    assert.ok(run.lines.includes(`Trusted branch SHA: ${TRUSTED_SHA}`), run.output);
    assert.ok(run.lines.includes(`Review branch SHA: ${OTHER_SHA} (the reviewed commit, trust granted by alice)`));
    assert.ok(run.lines.includes("Review branch: fix-parser (merge request !12, source project 99)"));
    assert.match(
      run.output,
      /FAILED: the SHAs do not match\. trusted-fix-parser-mr12 is not at the commit that was reviewed/,
    );
    assert.match(run.output, /comments \/trust on the merge request again/);
    assert.doesNotMatch(run.output, /^OK/m);
    assert.deepEqual(api.requests, []);
  });

  test("without TRUSTED_SOURCE_BRANCH and TRUSTED_MR_IID the review branch and MR come from the name", async () => {
    const run = await runScript(
      script,
      trustedPipeline("http://127.0.0.1:9/api/v4", { CI_PIPELINE_SOURCE: "api", TRUSTED_SOURCE_SHA: TRUSTED_SHA }),
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(run.lines.includes("Review branch: fix-parser (merge request !12)"), run.output);
    assert.ok(
      run.lines.includes(
        `Review branch SHA: ${TRUSTED_SHA} (the reviewed commit, trust granted by an unnamed committer)`,
      ),
    );
  });

  test("an unprotected trusted branch gets a warning", async () => {
    const run = await runScript(
      script,
      trustedPipeline("http://127.0.0.1:9/api/v4", { ...bot, CI_COMMIT_REF_PROTECTED: "false" }),
    );
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /WARNING: trusted-fix-parser-mr12 is not a protected branch here; protect trusted-\*/);
  });
});

/**
 * A project that allows no pipeline variables (GitLab.com's default for new projects, `no_one_allowed`): the bot
 * creates the trusted pipeline without TRUSTED_* variables. GitLab itself sets GITLAB_USER_LOGIN (the user who
 * created the pipeline) and CI_PIPELINE_SOURCE; the template's input `bot-username` names the bot's user.
 */
const startedByBot = { CI_PIPELINE_SOURCE: "api", GITLAB_USER_LOGIN: BOT_USERNAME };

describe("SHA check script, pipeline started by the bot without variables (input bot-username)", () => {
  test("the bot's user through the API on the protected trusted branch: passes, asks the API nothing", async () => {
    const api = await fakeApi([mr(12, OTHER_SHA)]);
    const run = await runScript(botScript, trustedPipeline(api.apiUrl, startedByBot));
    assert.equal(run.code, 0, run.output);
    assert.deepEqual(run.lines, [
      HEADING,
      "Trusted branch: trusted-fix-parser-mr12",
      `Trusted branch SHA: ${TRUSTED_SHA}`,
      "Review branch: fix-parser (merge request !12)",
      `Review branch SHA: ${TRUSTED_SHA} (the commit the bot pinned trusted-fix-parser-mr12 to: @trusted-bot started`,
      "this pipeline through the API, CI_PIPELINE_SOURCE api)",
      "OK: the bot started this pipeline on the trusted commit; it tests exactly the reviewed commit.",
    ]);
    assert.deepEqual(api.requests, []);
  });

  test("a child pipeline of the bot's pipeline (parent_pipeline, same commit, the bot's user) passes too", async () => {
    const run = await runScript(
      botScript,
      trustedPipeline("http://127.0.0.1:9/api/v4", { ...startedByBot, CI_PIPELINE_SOURCE: "parent_pipeline" }),
    );
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /CI_PIPELINE_SOURCE parent_pipeline\)\nOK: the bot started this pipeline/);
  });

  test("the bot's TRUSTED_SOURCE_SHA, when the pipeline has it, still decides: a mismatch fails", async () => {
    const run = await runScript(
      botScript,
      trustedPipeline("http://127.0.0.1:9/api/v4", { ...startedByBot, ...bot, TRUSTED_SOURCE_SHA: OTHER_SHA }),
    );
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /FAILED: the SHAs do not match/);
  });

  test("started through the API by someone else, without variables: the merge request is looked up", async () => {
    const alice = { CI_PIPELINE_SOURCE: "api", GITLAB_USER_LOGIN: "alice" };
    const api = await fakeApi([mr(12, TRUSTED_SHA)]);
    const noToken = await runScript(botScript, trustedPipeline(api.apiUrl, alice));
    assert.equal(noToken.code, 1, noToken.output);
    assert.ok(
      noToken.lines.includes(
        "This pipeline was started by @alice (CI_PIPELINE_SOURCE api), not by the bot @trusted-bot",
      ),
      noToken.output,
    );
    assert.match(noToken.output, /Could not check: the protected CI\/CD variable TRUSTED_API_TOKEN is not set/);
    assert.match(noToken.output, /^FAILED:/m);

    const withToken = await runScript(botScript, trustedPipeline(api.apiUrl, { ...alice, TRUSTED_API_TOKEN: TOKEN }));
    assert.equal(withToken.code, 0, withToken.output);
    assert.ok(withToken.lines.includes(`Review branch SHA: ${TRUSTED_SHA} (the head of the open merge request)`));
    assert.equal(api.requests.length, 1);

    const movedOn = await fakeApi([mr(12, OTHER_SHA)]);
    const fails = await runScript(botScript, trustedPipeline(movedOn.apiUrl, { ...alice, TRUSTED_API_TOKEN: TOKEN }));
    assert.equal(fails.code, 1, fails.output);
    assert.match(fails.output, /FAILED: the SHAs do not match/);
  });

  test("the bot's username is not enough: started by hand (web) or by a trigger it is looked up", async () => {
    for (const source of ["web", "trigger", "pipeline", "schedule", ""]) {
      const api = await fakeApi([mr(12, OTHER_SHA)]);
      const run = await runScript(
        botScript,
        trustedPipeline(api.apiUrl, { ...startedByBot, CI_PIPELINE_SOURCE: source, TRUSTED_API_TOKEN: TOKEN }),
      );
      assert.equal(run.code, 1, `${source}: ${run.output}`);
      assert.match(run.output, /not by the bot @trusted-bot\nthrough the API/, source);
      assert.match(run.output, /FAILED: the SHAs do not match/, source);
      assert.equal(api.requests.length, 1, source);
    }
  });

  test("a name that only starts like the bot's, or differs in case, is not the bot", async () => {
    for (const login of ["trusted-bot2", "trusted-bo", "Trusted-Bot", " trusted-bot", ""]) {
      const run = await runScript(
        botScript,
        trustedPipeline("http://127.0.0.1:9/api/v4", { ...startedByBot, GITLAB_USER_LOGIN: login }),
      );
      assert.equal(run.code, 1, `${JSON.stringify(login)}: ${run.output}`);
      assert.match(run.output, /Could not check: the protected CI\/CD variable TRUSTED_API_TOKEN is not set/);
    }
  });

  test("on an unprotected trusted branch the bot's user proves nothing: looked up, fails closed without a token", async () => {
    const run = await runScript(
      botScript,
      trustedPipeline("http://127.0.0.1:9/api/v4", { ...startedByBot, CI_COMMIT_REF_PROTECTED: "false" }),
    );
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /WARNING: trusted-fix-parser-mr12 is not a protected branch here/);
    assert.match(run.output, /@trusted-bot started this pipeline, but trusted-fix-parser-mr12 is not protected/);
    assert.match(run.output, /^FAILED:/m);
  });

  test("without the input (default empty), a bot-started pipeline without variables fails closed and says why", async () => {
    const run = await runScript(script, trustedPipeline("http://127.0.0.1:9/api/v4", startedByBot));
    assert.equal(run.code, 1, run.output);
    assert.ok(
      run.lines.includes(
        "This pipeline carries no TRUSTED_SOURCE_SHA from the bot (and the input bot-username is not set), so",
      ),
      run.output,
    );
    assert.match(run.output, /set the template input bot-username to the bot's username/);
    assert.match(run.output, /^FAILED:/m);
  });
});

describe("SHA check script, pipeline started by hand (no TRUSTED_SOURCE_SHA)", () => {
  test("no API token: says it could not check, and fails closed", async () => {
    const api = await fakeApi([mr(12, TRUSTED_SHA)]);
    const run = await runScript(script, trustedPipeline(api.apiUrl));
    assert.equal(run.code, 1, run.output);
    assert.equal(run.lines[0], HEADING);
    assert.match(
      run.output,
      /Could not check: the protected CI\/CD variable TRUSTED_API_TOKEN is not set in this pipeline\.\nFAILED:/,
    );
    assert.deepEqual(api.requests, []);
  });

  test("no API token with fail-unchecked: false: says so, warns, passes", async () => {
    const run = await runScript(failOpenScript, trustedPipeline("http://127.0.0.1:9/api/v4"));
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /Could not check: the protected CI\/CD variable TRUSTED_API_TOKEN is not set/);
    assert.match(run.output, /WARNING: continuing without a SHA check, because the template input fail-unchecked/);
    assert.doesNotMatch(run.output, /^OK/m);
  });

  test("the open MR's head is the commit under test: passes, after one authenticated lookup", async () => {
    const api = await fakeApi([mr(12, TRUSTED_SHA)], { pretty: true });
    const run = await runScript(script, trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN }));
    assert.equal(run.code, 0, run.output);
    assert.ok(
      run.lines.includes("the head of the open merge request !12 from fix-parser is looked up through the GitLab API."),
      run.output,
    );
    assert.ok(run.lines.includes("Review branch: fix-parser (merge request !12, source project 99)"), run.output);
    assert.ok(run.lines.includes(`Review branch SHA: ${TRUSTED_SHA} (the head of the open merge request)`));
    assert.deepEqual(api.requests, [
      {
        method: "GET",
        path: `/api/v4/projects/${PROJECT_ID}/merge_requests`,
        query: { state: "opened", source_branch: "fix-parser", "iids[]": "12" },
        privateToken: TOKEN,
      },
    ]);
    assert.deepEqual(api.unknownRoutes, []);
  });

  test("the MR moved on: fails, even when its description and nested objects carry the trusted SHA", async () => {
    const decoy = `Looks fine. {"sha":"${TRUSTED_SHA}","iid":12} \\" "sha":"${TRUSTED_SHA}"`;
    for (const pretty of [false, true]) {
      const api = await fakeApi([mr(12, OTHER_SHA, { description: decoy })], { pretty, decoySha: TRUSTED_SHA });
      const run = await runScript(script, trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN }));
      assert.equal(run.code, 1, run.output);
      assert.ok(run.lines.includes(`Review branch SHA: ${OTHER_SHA} (the head of the open merge request)`), run.output);
      assert.match(run.output, /FAILED: the SHAs do not match/);
    }
  });

  test("attack: a hand-started pipeline on trusted-feature-mr2 is checked against !2, not an MR from a branch named feature-mr2", async () => {
    // Anybody can open MR !3 from a fork branch literally named feature-mr2; its trusted branch would be
    // trusted-feature-mr2-mr3. The lookup of the whole name would find !3 and pass or fail by !3's head.
    const branch = { CI_COMMIT_BRANCH: "trusted-feature-mr2", TRUSTED_API_TOKEN: TOKEN };
    const own = (sha: string, state?: FakeMergeRequest["state"]) =>
      mr(2, sha, { sourceBranch: "feature", ...(state ? { state } : {}) });
    const decoy = (sha: string) => mr(3, sha, { sourceBranch: "feature-mr2", sourceProjectId: 100 });

    // !2 is at the trusted commit: passes, even though !3 is elsewhere.
    const api = await fakeApi([own(TRUSTED_SHA), decoy(OTHER_SHA)]);
    const passes = await runScript(script, trustedPipeline(api.apiUrl, branch));
    assert.equal(passes.code, 0, passes.output);
    assert.ok(passes.lines.includes("Review branch: feature (merge request !2, source project 99)"), passes.output);

    // !2 moved on to unreviewed commits: fails, even though !3's head is the trusted commit.
    const movedOn = await fakeApi([own(OTHER_SHA), decoy(TRUSTED_SHA)]);
    const fails = await runScript(script, trustedPipeline(movedOn.apiUrl, branch));
    assert.equal(fails.code, 1, fails.output);
    assert.ok(fails.lines.includes("Review branch: feature (merge request !2, source project 99)"), fails.output);
    assert.match(fails.output, /FAILED: the SHAs do not match/);

    // !2 is closed: nothing to check, fails closed instead of taking !3.
    const closed = await fakeApi([own(TRUSTED_SHA, "closed"), decoy(TRUSTED_SHA)]);
    const unchecked = await runScript(script, trustedPipeline(closed.apiUrl, branch));
    assert.equal(unchecked.code, 1, unchecked.output);
    assert.match(unchecked.output, /Could not check: no open merge request !2 from feature was found\./);

    for (const { requests } of [api, movedOn, closed]) {
      assert.deepEqual(
        requests.map((r) => r.query),
        [{ state: "opened", source_branch: "feature", "iids[]": "2" }],
      );
    }
  });

  test("trusted branch <prefix><branch>-mr<iid>: looks up that MR from <branch> and nothing else", async () => {
    const api = await fakeApi([mr(12, OTHER_SHA), mr(13, TRUSTED_SHA, { sourceProjectId: 100 })]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: "trusted-fix-parser-mr13" }),
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(run.lines.includes("Review branch: fix-parser (merge request !13, source project 100)"), run.output);
    assert.deepEqual(
      api.requests.map((r) => r.query),
      [{ state: "opened", source_branch: "fix-parser", "iids[]": "13" }],
    );
  });

  test("a source branch named like <branch>-mr<n> is found through its own suffix", async () => {
    const api = await fakeApi([
      mr(12, TRUSTED_SHA, { sourceBranch: "fix-mr7" }),
      mr(7, OTHER_SHA, { sourceBranch: "fix" }),
    ]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, {
        TRUSTED_API_TOKEN: TOKEN,
        CI_COMMIT_BRANCH: trustedBranchName("trusted-", { sourceBranch: "fix-mr7", iid: 12 }),
      }),
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(run.lines.includes("Review branch: fix-mr7 (merge request !12, source project 99)"), run.output);
    assert.deepEqual(
      api.requests.map((r) => r.query),
      [{ state: "opened", source_branch: "fix-mr7", "iids[]": "12" }],
    );
  });

  test("the name is read back as the bot reads it (parseTrustedBranchName); names without the suffix stay whole", async () => {
    const names = [
      "trusted-feat/x-mr3",
      "trusted-a-mr1-mr2",
      "trusted-a-mr-mr2",
      "trusted-a-mr2-mrx",
      "trusted-fix-mr07",
      "trusted-fix-mr0",
      "trusted-fix-mr7x",
      "trusted-fix-mr",
      "trusted--mr5",
      "trusted-mr5",
      "trusted-12",
      "trusted-fix parser-mr4",
    ];
    for (const name of names) {
      const api = await fakeApi([]);
      const run = await runScript(
        script,
        trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: name }),
      );
      assert.equal(run.code, 1, run.output);
      const parsed = parseTrustedBranchName("trusted-", name);
      const expected = parsed
        ? { state: "opened", source_branch: parsed.sourceBranch, "iids[]": String(parsed.iid) }
        : { state: "opened", source_branch: name.slice("trusted-".length) };
      assert.deepEqual(
        api.requests.map((r) => r.query),
        [expected],
        name,
      );
    }
  });

  test("a name without the suffix (older bot, or by hand) is looked up whole; two open MRs: TRUSTED_MR_IID decides", async () => {
    const legacy = { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: "trusted-fix-parser" };
    const api = await fakeApi([mr(12, OTHER_SHA), mr(13, TRUSTED_SHA, { sourceProjectId: 100 })]);
    const ambiguous = await runScript(script, trustedPipeline(api.apiUrl, legacy));
    assert.equal(ambiguous.code, 1, ambiguous.output);
    assert.match(ambiguous.output, /Could not check: 2 open merge requests come from fix-parser \(!12, !13\)/);
    assert.match(ambiguous.output, /run the pipeline with TRUSTED_MR_IID set/);
    assert.deepEqual(api.requests[0]?.query, { state: "opened", source_branch: "fix-parser" });

    const byIid = await runScript(script, trustedPipeline(api.apiUrl, { ...legacy, TRUSTED_MR_IID: "13" }));
    assert.equal(byIid.code, 0, byIid.output);
    assert.ok(byIid.lines.includes("Review branch: fix-parser (merge request !13, source project 100)"));

    const byProject = await runScript(
      script,
      trustedPipeline(api.apiUrl, { ...legacy, TRUSTED_SOURCE_PROJECT_ID: "99" }),
    );
    assert.equal(byProject.code, 1, byProject.output);
    assert.match(byProject.output, /FAILED: the SHAs do not match/);
  });

  test("TRUSTED_MR_IID and TRUSTED_SOURCE_BRANCH set by hand win over the name", async () => {
    // An older bot named the trusted branch of !5 from a branch release-mr2 trusted-release-mr2.
    const api = await fakeApi([
      mr(5, TRUSTED_SHA, { sourceBranch: "release-mr2" }),
      mr(2, OTHER_SHA, { sourceBranch: "release" }),
    ]);
    const legacy = { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: "trusted-release-mr2" };
    const byIid = await runScript(script, trustedPipeline(api.apiUrl, { ...legacy, TRUSTED_MR_IID: "5" }));
    assert.equal(byIid.code, 0, byIid.output);
    assert.ok(byIid.lines.includes("Review branch: release-mr2 (merge request !5, source project 99)"), byIid.output);

    const byBranch = await runScript(
      script,
      trustedPipeline(api.apiUrl, { ...legacy, TRUSTED_SOURCE_BRANCH: "release-mr2" }),
    );
    assert.equal(byBranch.code, 0, byBranch.output);
    assert.ok(byBranch.lines.includes("Review branch: release-mr2 (merge request !5, source project 99)"));

    const byName = await runScript(script, trustedPipeline(api.apiUrl, legacy));
    assert.equal(byName.code, 1, byName.output);
    assert.ok(byName.lines.includes("Review branch: release (merge request !2, source project 99)"), byName.output);

    assert.deepEqual(
      api.requests.map((r) => r.query),
      [
        { state: "opened", source_branch: "release-mr2", "iids[]": "5" },
        { state: "opened", source_branch: "release-mr2" },
        { state: "opened", source_branch: "release", "iids[]": "2" },
      ],
    );
  });

  test("a TRUSTED_MR_IID that is not a number: says so, fails closed, asks nothing", async () => {
    const api = await fakeApi([mr(12, TRUSTED_SHA)]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, TRUSTED_MR_IID: "12&state=all" }),
    );
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /Could not check: TRUSTED_MR_IID \(12&state=all\) is not a merge request iid\./);
    assert.deepEqual(api.requests, []);
  });

  test("more open MRs from forks' same-named branches than fit on a page: the iid in the query finds the one", async () => {
    const forks = Array.from({ length: 25 }, (_, i) =>
      mr(100 - i, OTHER_SHA, { sourceBranch: "main", sourceProjectId: 1000 + i }),
    );
    const api = await fakeApi([...forks, mr(3, TRUSTED_SHA, { sourceBranch: "main" })]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: "trusted-main-mr3" }),
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(run.lines.includes("Review branch: main (merge request !3, source project 99)"), run.output);
  });

  test("branch names are percent-encoded in the query", async () => {
    const branch = "feat/ä b&c#1+x";
    const api = await fakeApi([mr(12, TRUSTED_SHA, { sourceBranch: branch })]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: `trusted-${branch}-mr12` }),
    );
    assert.equal(run.code, 0, run.output);
    assert.deepEqual(api.requests[0]?.query, { state: "opened", source_branch: branch, "iids[]": "12" });
  });

  test("only closed or merged MRs: no open MR found, fails closed", async () => {
    const api = await fakeApi([mr(12, TRUSTED_SHA, { state: "merged" }), mr(11, TRUSTED_SHA, { state: "closed" })]);
    const run = await runScript(script, trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN }));
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /Could not check: no open merge request !12 from fix-parser was found\./);
  });

  test("the API refuses the token: fails closed with curl's error", async () => {
    const api = await fakeApi([mr(12, TRUSTED_SHA)]);
    const run = await runScript(script, trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: "wrong" }));
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /401/);
    assert.match(run.output, /Could not check: the GitLab API did not answer the merge request lookup/);
  });

  test("the API is unreachable: fails closed", async () => {
    const run = await runScript(script, trustedPipeline("http://127.0.0.1:9/api/v4", { TRUSTED_API_TOKEN: TOKEN }));
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /Could not check: the GitLab API did not answer/);
  });

  test("no curl in the image: says so, fails closed", async () => {
    const bin = await mkdtemp(path.join(os.tmpdir(), "no-curl-"));
    try {
      // Only awk on PATH; the shell is started by its absolute path.
      const awk = await findOnPath("awk");
      await symlink(awk, path.join(bin, "awk"));
      const api = await fakeApi([mr(12, TRUSTED_SHA)]);
      const run = await runScript(script, trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN }), bin);
      assert.equal(run.code, 1, run.output);
      assert.match(run.output, /Could not check: curl is not available in the image of this job\./);
      assert.deepEqual(api.requests, []);
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });
});

async function findOnPath(command: string): Promise<string> {
  const run = await runScript(`command -v ${command}`, {});
  assert.equal(run.code, 0, `${command} not found`);
  return run.output.trim();
}

/** A pipeline context for gitlab-ci-local: a trusted branch pipeline at the temporary repository's HEAD. */
function trustedContext(variables: Record<string, string>): CiContext {
  return {
    variables: {
      CI_PIPELINE_SOURCE: "web",
      CI_COMMIT_BRANCH: TRUSTED_BRANCH,
      CI_COMMIT_REF_NAME: TRUSTED_BRANCH,
      CI_COMMIT_REF_PROTECTED: "true",
      CI_PROJECT_ID: String(PROJECT_ID),
      ...variables,
    },
  };
}

describe("through gitlab-ci-local (shell executor, bash)", () => {
  test("the job passes for the bot's matching SHA and prints the check", async () => {
    const run = await runJobs(project, trustedContext({ ...bot, TRUSTED_SOURCE_SHA: project.sha }), [
      "trusted-sha-check",
    ]);
    assert.equal(run.code, 0, run.output);
    const log = await run.log("trusted-sha-check");
    assert.match(log, new RegExp(`^${HEADING}$`, "m"));
    assert.match(log, new RegExp(`^Trusted branch SHA: ${project.sha}$`, "m"));
    assert.match(log, /^OK: the SHAs match/m);
  });

  test("the job fails for a mismatching SHA", async () => {
    const run = await runJobs(project, trustedContext({ ...bot, TRUSTED_SOURCE_SHA: OTHER_SHA }), [
      "trusted-sha-check",
    ]);
    assert.equal(run.code, 1, run.output);
    assert.deepEqual(run.failed, ["trusted-sha-check"]);
    assert.match(await run.log("trusted-sha-check"), /^FAILED: the SHAs do not match/m);
  });

  test("a hand-started pipeline passes after the API lookup", async () => {
    const api = await fakeApi([mr(12, project.sha)]);
    const run = await runJobs(project, trustedContext({ CI_API_V4_URL: api.apiUrl, TRUSTED_API_TOKEN: TOKEN }), [
      "trusted-sha-check",
    ]);
    assert.equal(run.code, 0, run.output);
    assert.equal(api.requests.length, 1);
    assert.match(
      await run.log("trusted-sha-check"),
      /^Review branch SHA: [0-9a-f]{40} \(the head of the open merge request\)$/m,
    );
  });

  test("the whole pipeline: a failed check stops every later job, so protected jobs never run", async () => {
    const run = await runJobs(project, trustedContext({ ...bot, TRUSTED_SOURCE_SHA: OTHER_SHA }));
    assert.equal(run.code, 1, run.output);
    assert.deepEqual(run.failed, ["trusted-sha-check"]);
    assert.doesNotMatch(run.output, /protected tests ran/);
    assert.doesNotMatch(run.output, /build ran/);
  });

  test("the whole pipeline: a passed check lets the protected jobs run", async () => {
    const run = await runJobs(project, trustedContext({ ...bot, TRUSTED_SOURCE_SHA: project.sha }));
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /protected tests ran/);
    assert.match(run.output, /build ran/);
  });

  test("the whole pipeline by hand without a token: fails closed before the protected jobs", async () => {
    const run = await runJobs(project, trustedContext({}));
    assert.equal(run.code, 1, run.output);
    assert.deepEqual(run.failed, ["trusted-sha-check"]);
    assert.doesNotMatch(run.output, /protected tests ran/);
  });
});

describe("through gitlab-ci-local, without pipeline variables (input bot-username)", () => {
  test("the whole pipeline started by the bot's user through the API: the check passes, protected jobs run", async () => {
    const run = await runJobs(botProject, trustedContext(startedByBot));
    assert.equal(run.code, 0, run.output);
    const log = await run.log("trusted-sha-check");
    assert.match(log, new RegExp(`^Review branch SHA: ${botProject.sha} \\(the commit the bot pinned`, "m"));
    assert.match(log, /^OK: the bot started this pipeline on the trusted commit/m);
    assert.match(run.output, /protected tests ran/);
  });

  test("the whole pipeline started through the API by someone else, no token: stops before protected jobs", async () => {
    const run = await runJobs(botProject, trustedContext({ CI_PIPELINE_SOURCE: "api", GITLAB_USER_LOGIN: "alice" }));
    assert.equal(run.code, 1, run.output);
    assert.deepEqual(run.failed, ["trusted-sha-check"]);
    assert.doesNotMatch(run.output, /protected tests ran/);
  });
});

describe("contributor guidance job", () => {
  const mergeRequest: CiContext = {
    variables: {
      CI_PIPELINE_SOURCE: "merge_request_event",
      CI_MERGE_REQUEST_IID: "12",
      CI_MERGE_REQUEST_PROJECT_ID: String(PROJECT_ID),
      CI_MERGE_REQUEST_SOURCE_PROJECT_ID: String(FORK_ID),
      CI_MERGE_REQUEST_PROJECT_URL: "https://gitlab.example.com/acme/app",
      CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: "fix-parser",
      CI_MERGE_REQUEST_SOURCE_BRANCH_PROTECTED: "false",
      CI_COMMIT_REF_PROTECTED: "false",
    },
    unset: ["CI_COMMIT_BRANCH"],
  };

  test("explains /trust, names the trusted branch, links the MR, and passes", async () => {
    const run = await runJobs(project, mergeRequest, ["contributor-guidance"]);
    assert.equal(run.code, 0, run.output);
    const log = await run.log("contributor-guidance");
    assert.match(log, /^This merge request comes from a contributor branch: fix-parser$/m);
    assert.match(log, /reviews the changes: https:\/\/gitlab\.example\.com\/acme\/app\/-\/merge_requests\/12$/m);
    assert.match(log, /comments \/trust on the merge request/);
    assert.match(log, /pins the protected branch trusted-fix-parser-mr12$/m);
    assert.match(log, /^ +to exactly the reviewed commit and runs the full pipeline there/m);
  });

  test("with contributor-guidance-fails: true it fails on purpose", async () => {
    const run = await runJobs(failOpenProject, mergeRequest, ["contributor-guidance"]);
    assert.equal(run.code, 1, run.output);
    assert.deepEqual(run.failed, ["contributor-guidance"]);
    assert.match(await run.log("contributor-guidance"), /fails on purpose until the protected pipeline has run/);
  });
});
