import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
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
/** The check job's script with default inputs, and with `fail-unchecked: false`. */
let script: string;
let failOpenScript: string;
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
  rendered = await previewConfig(project);
  script = jobScript(rendered, "trusted-sha-check");
  failOpenScript = jobScript(await previewConfig(failOpenProject), "trusted-sha-check");
});

after(async () => {
  await Promise.all([project?.remove(), failOpenProject?.remove(), ...apis.map((api) => api.close())]);
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

/** A pipeline on trusted-fix-parser at TRUSTED_SHA, as GitLab sets it up. */
function trustedPipeline(apiUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CI_PIPELINE_SOURCE: "web",
    CI_COMMIT_BRANCH: "trusted-fix-parser",
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
      "Trusted branch: trusted-fix-parser",
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
      /FAILED: the SHAs do not match\. trusted-fix-parser is not at the commit that was reviewed/,
    );
    assert.match(run.output, /comments \/trust on the merge request again/);
    assert.doesNotMatch(run.output, /^OK/m);
    assert.deepEqual(api.requests, []);
  });

  test("without TRUSTED_SOURCE_BRANCH the review branch is the trusted branch without the prefix", async () => {
    const run = await runScript(
      script,
      trustedPipeline("http://127.0.0.1:9/api/v4", { CI_PIPELINE_SOURCE: "api", TRUSTED_SOURCE_SHA: TRUSTED_SHA }),
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(run.lines.includes("Review branch: fix-parser"), run.output);
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
    assert.match(run.output, /WARNING: trusted-fix-parser is not a protected branch here; protect trusted-\*/);
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
    assert.ok(run.lines.includes("Review branch: fix-parser (merge request !12, source project 99)"), run.output);
    assert.ok(run.lines.includes(`Review branch SHA: ${TRUSTED_SHA} (the head of the open merge request)`));
    assert.deepEqual(api.requests, [
      {
        method: "GET",
        path: `/api/v4/projects/${PROJECT_ID}/merge_requests`,
        query: { state: "opened", source_branch: "fix-parser" },
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

  test("two open MRs from same-named branches: cannot tell which, fails; TRUSTED_MR_IID decides", async () => {
    const api = await fakeApi([mr(12, OTHER_SHA), mr(13, TRUSTED_SHA, { sourceProjectId: 100 })]);
    const ambiguous = await runScript(script, trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN }));
    assert.equal(ambiguous.code, 1, ambiguous.output);
    assert.match(ambiguous.output, /Could not check: 2 open merge requests come from fix-parser \(!12, !13\)/);
    assert.match(ambiguous.output, /run the pipeline with TRUSTED_MR_IID set/);

    const byIid = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, TRUSTED_MR_IID: "13" }),
    );
    assert.equal(byIid.code, 0, byIid.output);
    assert.ok(byIid.lines.includes("Review branch: fix-parser (merge request !13, source project 100)"));

    const byProject = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, TRUSTED_SOURCE_PROJECT_ID: "99" }),
    );
    assert.equal(byProject.code, 1, byProject.output);
    assert.match(byProject.output, /FAILED: the SHAs do not match/);
  });

  test("trusted branch <prefix><branch>-mr<iid>: looks up <branch> and picks that MR", async () => {
    const api = await fakeApi([mr(12, OTHER_SHA), mr(13, TRUSTED_SHA, { sourceProjectId: 100 })]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: "trusted-fix-parser-mr13" }),
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(run.lines.includes("Review branch: fix-parser (merge request !13, source project 100)"), run.output);
    assert.deepEqual(
      api.requests.map((r) => r.query["source_branch"]),
      ["fix-parser-mr13", "fix-parser"],
    );
  });

  test("a branch named like <branch>-mr<n> that has an open MR of its own is not split", async () => {
    const api = await fakeApi([
      mr(12, TRUSTED_SHA, { sourceBranch: "fix-mr7" }),
      mr(7, OTHER_SHA, { sourceBranch: "fix" }),
    ]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: "trusted-fix-mr7" }),
    );
    assert.equal(run.code, 0, run.output);
    assert.ok(run.lines.includes("Review branch: fix-mr7 (merge request !12, source project 99)"), run.output);
    assert.equal(api.requests.length, 1);
  });

  test("branch names are percent-encoded in the query", async () => {
    const branch = "feat/ä b&c#1+x";
    const api = await fakeApi([mr(12, TRUSTED_SHA, { sourceBranch: branch })]);
    const run = await runScript(
      script,
      trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN, CI_COMMIT_BRANCH: `trusted-${branch}` }),
    );
    assert.equal(run.code, 0, run.output);
    assert.deepEqual(api.requests[0]?.query, { state: "opened", source_branch: branch });
  });

  test("only closed or merged MRs: no open MR found, fails closed", async () => {
    const api = await fakeApi([mr(12, TRUSTED_SHA, { state: "merged" }), mr(11, TRUSTED_SHA, { state: "closed" })]);
    const run = await runScript(script, trustedPipeline(api.apiUrl, { TRUSTED_API_TOKEN: TOKEN }));
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /Could not check: no open merge request from fix-parser was found\./);
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
      CI_COMMIT_BRANCH: "trusted-fix-parser",
      CI_COMMIT_REF_NAME: "trusted-fix-parser",
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
    assert.match(log, /pins the protected branch trusted-fix-parser to exactly the reviewed/);
  });

  test("with contributor-guidance-fails: true it fails on purpose", async () => {
    const run = await runJobs(failOpenProject, mergeRequest, ["contributor-guidance"]);
    assert.equal(run.code, 1, run.output);
    assert.deepEqual(run.failed, ["contributor-guidance"]);
    assert.match(await run.log("contributor-guidance"), /fails on purpose until the protected pipeline has run/);
  });
});
