import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import {
  type CiContext,
  type CiProject,
  createCiProject,
  LOCAL_COMPONENT,
  type ListedPipeline,
  listJobs,
} from "./gitlab-ci-local.js";
import { readmeExample, templateFile } from "./template-files.js";

// Rule behaviour per pipeline context, evaluated by gitlab-ci-local 4.64.1 (`--list-json`). Job rules are its own
// evaluation; workflow:rules, which it ignores, are evaluated through the probe job described in gitlab-ci-local.ts.

const PROJECT_ID = "42";
const FORK_PROJECT_ID = "99";
const SOURCE_SHA = "3f2c0b1d7e9a4c6b8d0e2f4a6c8e0b2d4f6a8c0e";

/** A branch pipeline: push, api, web, trigger, schedule, ... */
function branchPipeline(source: string, branch: string, isProtected: boolean, extra: Record<string, string> = {}) {
  return {
    variables: {
      CI_PIPELINE_SOURCE: source,
      CI_COMMIT_BRANCH: branch,
      CI_COMMIT_REF_NAME: branch,
      CI_COMMIT_REF_PROTECTED: String(isProtected),
      CI_DEFAULT_BRANCH: "main",
      CI_PROJECT_ID: PROJECT_ID,
      ...extra,
    },
  } satisfies CiContext;
}

/** What the bot passes when it creates the trusted pipeline. */
const botVariables = {
  TRUSTED_MR_IID: "12",
  TRUSTED_SOURCE_SHA: SOURCE_SHA,
  TRUSTED_SOURCE_PROJECT_ID: FORK_PROJECT_ID,
  TRUSTED_SOURCE_BRANCH: "x",
  TRUSTED_GRANTED_BY: "alice",
};

/** A merge request pipeline; GitLab sets no CI_COMMIT_BRANCH there. */
function mergeRequestPipeline(options: {
  sourceBranch: string;
  sourceBranchProtected: boolean;
  labels?: string[];
  fork?: boolean;
}): CiContext {
  const labels = options.labels ?? [];
  return {
    variables: {
      CI_PIPELINE_SOURCE: "merge_request_event",
      CI_COMMIT_REF_NAME: options.sourceBranch,
      CI_COMMIT_REF_PROTECTED: "false",
      CI_DEFAULT_BRANCH: "main",
      CI_PROJECT_ID: PROJECT_ID,
      CI_MERGE_REQUEST_IID: "12",
      CI_MERGE_REQUEST_PROJECT_ID: PROJECT_ID,
      CI_MERGE_REQUEST_PROJECT_URL: "https://gitlab.example.com/acme/app",
      CI_MERGE_REQUEST_SOURCE_PROJECT_ID: options.fork ? FORK_PROJECT_ID : PROJECT_ID,
      CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: options.sourceBranch,
      CI_MERGE_REQUEST_SOURCE_BRANCH_PROTECTED: String(options.sourceBranchProtected),
      CI_MERGE_REQUEST_TARGET_BRANCH_NAME: "main",
      ...(labels.length > 0 ? { CI_MERGE_REQUEST_LABELS: labels.join(",") } : {}),
    },
    unset: ["CI_COMMIT_BRANCH"],
  };
}

interface Expected {
  pipeline: boolean;
  jobs: string[];
}
const NO_PIPELINE: Expected = { pipeline: false, jobs: [] };
const pipelineWith = (...jobs: string[]): Expected => ({ pipeline: true, jobs: [...jobs].sort() });

interface Case {
  name: string;
  context: CiContext;
  expected: Expected;
}

const projectJobs = `
build:
  stage: build
  script: [echo "build ran"]

protected-tests:
  extends: .trusted-protected
  stage: test
  script: [echo "protected tests ran"]
`;

const componentProjectYml = `include:
  - component: ${LOCAL_COMPONENT}
${projectJobs}`;

/** Default inputs, `include: component:`. */
const defaultCases: Case[] = [
  {
    name: "push to trusted-x: no pipeline",
    context: branchPipeline("push", "trusted-x", true),
    expected: NO_PIPELINE,
  },
  {
    name: "schedule on trusted-x: no pipeline",
    context: branchPipeline("schedule", "trusted-x", true),
    expected: NO_PIPELINE,
  },
  {
    name: "API pipeline from the bot on trusted-x: SHA check, then everything",
    context: branchPipeline("api", "trusted-x", true, botVariables),
    expected: pipelineWith("trusted-sha-check", "build", "protected-tests"),
  },
  {
    name: "API pipeline on trusted-x with a mismatching TRUSTED_SOURCE_SHA: the same jobs (the check fails them)",
    context: branchPipeline("api", "trusted-x", true, { ...botVariables, TRUSTED_SOURCE_SHA: "0".repeat(40) }),
    expected: pipelineWith("trusted-sha-check", "build", "protected-tests"),
  },
  {
    name: "web pipeline on trusted-x without the bot's variables: SHA check too",
    context: branchPipeline("web", "trusted-x", true),
    expected: pipelineWith("trusted-sha-check", "build", "protected-tests"),
  },
  {
    name: "trigger pipeline on trusted-x",
    context: branchPipeline("trigger", "trusted-x", true),
    expected: pipelineWith("trusted-sha-check", "build", "protected-tests"),
  },
  {
    name: "child pipeline of a trusted pipeline",
    context: branchPipeline("parent_pipeline", "trusted-x", true),
    expected: pipelineWith("trusted-sha-check", "build", "protected-tests"),
  },
  {
    name: "API pipeline on an unprotected trusted-x (misconfigured): SHA check, no protected jobs",
    context: branchPipeline("api", "trusted-x", false, botVariables),
    expected: pipelineWith("trusted-sha-check", "build"),
  },
  {
    name: "push to a protected committer branch: protected jobs, no SHA check",
    context: branchPipeline("push", "feature-a", true),
    expected: pipelineWith("build", "protected-tests"),
  },
  {
    name: "push to an unprotected branch: no protected jobs",
    context: branchPipeline("push", "contrib-b", false),
    expected: pipelineWith("build"),
  },
  {
    name: "push to the protected default branch",
    context: branchPipeline("push", "main", true),
    expected: pipelineWith("build", "protected-tests"),
  },
  {
    name: "push to untrusted-x (the prefix not at the start): an ordinary branch",
    context: branchPipeline("push", "untrusted-x", false),
    expected: pipelineWith("build"),
  },
  {
    name: "API pipeline on the default branch: not a trusted branch, no SHA check",
    context: branchPipeline("api", "main", true),
    expected: pipelineWith("build", "protected-tests"),
  },
  {
    name: "MR pipeline from an unprotected branch, no labels: contributor guidance",
    context: mergeRequestPipeline({ sourceBranch: "contrib-b", sourceBranchProtected: false }),
    expected: pipelineWith("build", "contributor-guidance"),
  },
  {
    name: "MR pipeline with the no-detached-pipeline label: no pipeline",
    context: mergeRequestPipeline({
      sourceBranch: "feature-a",
      sourceBranchProtected: true,
      labels: ["no-detached-pipeline"],
    }),
    expected: NO_PIPELINE,
  },
  {
    name: "MR pipeline with the label among others: no pipeline",
    context: mergeRequestPipeline({
      sourceBranch: "feature-a",
      sourceBranchProtected: true,
      labels: ["bug", "no-detached-pipeline", "ui"],
    }),
    expected: NO_PIPELINE,
  },
  {
    name: "MR pipeline with a label that only contains the name: a pipeline",
    context: mergeRequestPipeline({
      sourceBranch: "contrib-b",
      sourceBranchProtected: false,
      labels: ["no-detached-pipeline-please", "x-no-detached-pipeline"],
    }),
    expected: pipelineWith("build", "contributor-guidance"),
  },
  {
    name: "MR pipeline from a protected committer branch before the bot labelled it: no guidance",
    context: mergeRequestPipeline({ sourceBranch: "feature-a", sourceBranchProtected: true }),
    expected: pipelineWith("build"),
  },
  {
    name: "fork MR pipeline (source branch protected in the fork): guidance, no protected jobs",
    context: mergeRequestPipeline({ sourceBranch: "main", sourceBranchProtected: true, fork: true }),
    expected: pipelineWith("build", "contributor-guidance"),
  },
];

const customInputsYml = `include:
  - component: ${LOCAL_COMPONENT}
    inputs:
      trusted-branch-prefix: ok-to-test-
      no-detached-pipeline-label: ci-committer
      contributor-guidance: false
${projectJobs}`;

const customCases: Case[] = [
  {
    name: "push to ok-to-test-x: no pipeline",
    context: branchPipeline("push", "ok-to-test-x", true),
    expected: NO_PIPELINE,
  },
  {
    name: "API pipeline on ok-to-test-x: SHA check",
    context: branchPipeline("api", "ok-to-test-x", true, botVariables),
    expected: pipelineWith("trusted-sha-check", "build", "protected-tests"),
  },
  {
    name: "push to trusted-x: an ordinary protected branch under this prefix",
    context: branchPipeline("push", "trusted-x", true),
    expected: pipelineWith("build", "protected-tests"),
  },
  {
    name: "MR pipeline with the ci-committer label: no pipeline",
    context: mergeRequestPipeline({ sourceBranch: "feature-a", sourceBranchProtected: true, labels: ["ci-committer"] }),
    expected: NO_PIPELINE,
  },
  {
    name: "MR pipeline with the default label only: a pipeline, and no guidance job (switched off)",
    context: mergeRequestPipeline({
      sourceBranch: "contrib-b",
      sourceBranchProtected: false,
      labels: ["no-detached-pipeline"],
    }),
    expected: pipelineWith("build"),
  },
  {
    name: "fork MR pipeline: no guidance job (switched off)",
    context: mergeRequestPipeline({ sourceBranch: "main", sourceBranchProtected: true, fork: true }),
    expected: pipelineWith("build"),
  },
];

const localIncludeYml = `include:
  - local: templates/trusted-merge-request.yml
    inputs:
      trusted-branch-prefix: trusted-
${projectJobs}`;

/** The same template through `include: local:` with inputs. */
const localIncludeCases: Case[] = defaultCases.filter((c) =>
  [/^push to trusted-x/, /^API pipeline from the bot/, /^MR pipeline with the no-detached/, /^fork MR/].some((re) =>
    re.test(c.name),
  ),
);

/** The README's examples use a released component; the tests include the working copy of it instead. */
function withLocalComponent(example: string): string {
  const replaced = example.replace(/component: \S+\/trusted-merge-request@\S+/g, `component: ${LOCAL_COMPONENT}`);
  assert.notEqual(replaced, example, "the README example does not include the component");
  return replaced;
}

const openMergeRequest = { CI_OPEN_MERGE_REQUESTS: "acme/app!12" };

const readmeCompleteCases: Case[] = [
  {
    name: "push to trusted-x: no pipeline",
    context: branchPipeline("push", "trusted-x", true),
    expected: NO_PIPELINE,
  },
  {
    name: "API pipeline from the bot on trusted-x",
    context: branchPipeline("api", "trusted-x", true, botVariables),
    expected: pipelineWith("trusted-sha-check", "build", "unit-tests", "integration-tests"),
  },
  {
    name: "web pipeline on trusted-x",
    context: branchPipeline("web", "trusted-x", true),
    expected: pipelineWith("trusted-sha-check", "build", "unit-tests", "integration-tests"),
  },
  {
    name: "contributor MR pipeline",
    context: mergeRequestPipeline({ sourceBranch: "contrib-b", sourceBranchProtected: false }),
    expected: pipelineWith("build", "unit-tests", "contributor-guidance"),
  },
  {
    name: "committer MR pipeline with the label: no pipeline",
    context: mergeRequestPipeline({
      sourceBranch: "feature-a",
      sourceBranchProtected: true,
      labels: ["no-detached-pipeline"],
    }),
    expected: NO_PIPELINE,
  },
  {
    name: "fork MR pipeline",
    context: mergeRequestPipeline({ sourceBranch: "main", sourceBranchProtected: true, fork: true }),
    expected: pipelineWith("build", "unit-tests", "contributor-guidance"),
  },
  {
    name: "push to an unprotected branch with an open MR: no branch pipeline",
    context: branchPipeline("push", "contrib-b", false, openMergeRequest),
    expected: NO_PIPELINE,
  },
  {
    name: "push to an unprotected branch without an MR",
    context: branchPipeline("push", "contrib-b", false),
    expected: pipelineWith("build", "unit-tests"),
  },
  {
    name: "push to a protected committer branch with an open MR: the branch pipeline, with protected jobs",
    context: branchPipeline("push", "feature-a", true, openMergeRequest),
    expected: pipelineWith("build", "unit-tests", "integration-tests"),
  },
  {
    name: "push to the default branch: publishes",
    context: branchPipeline("push", "main", true),
    expected: pipelineWith("build", "unit-tests", "integration-tests", "publish"),
  },
];

const readmeOwnWorkflowCases: Case[] = [
  {
    name: "push to trusted-x: no pipeline",
    context: branchPipeline("push", "trusted-x", true),
    expected: NO_PIPELINE,
  },
  {
    name: "API pipeline on trusted-x",
    context: branchPipeline("api", "trusted-x", true, botVariables),
    expected: pipelineWith("trusted-sha-check"),
  },
  {
    name: "MR pipeline with the label: no pipeline",
    context: mergeRequestPipeline({
      sourceBranch: "feature-a",
      sourceBranchProtected: true,
      labels: ["no-detached-pipeline"],
    }),
    expected: NO_PIPELINE,
  },
  {
    name: "contributor MR pipeline",
    context: mergeRequestPipeline({ sourceBranch: "contrib-b", sourceBranchProtected: false }),
    expected: pipelineWith("contributor-guidance"),
  },
  {
    name: "tag pipeline: the project's own rules decide (none matches)",
    context: {
      variables: {
        CI_PIPELINE_SOURCE: "push",
        CI_COMMIT_TAG: "v1.0.0",
        CI_COMMIT_REF_NAME: "v1.0.0",
        CI_COMMIT_REF_PROTECTED: "true",
      },
      unset: ["CI_COMMIT_BRANCH"],
    },
    expected: NO_PIPELINE,
  },
];

/** Mutations of the template that a correct matrix must notice: each breaks one rule. */
const mutations: { name: string; from: string; to: string; context: string }[] = [
  {
    name: "the workflow rule for trusted branches matches no source",
    from: "$CI_PIPELINE_SOURCE !~ /^(api|web|trigger|pipeline|parent_pipeline)$/",
    to: '$CI_PIPELINE_SOURCE == "no-such-source"',
    context: "push to trusted-x: no pipeline",
  },
  {
    name: "the label rule matches the label anywhere in the list",
    from: "$CI_MERGE_REQUEST_LABELS =~ /(^|,)$[[ inputs.no-detached-pipeline-label ]](,|$)/",
    to: "$CI_MERGE_REQUEST_LABELS =~ /$[[ inputs.no-detached-pipeline-label ]]/",
    context: "MR pipeline with a label that only contains the name: a pipeline",
  },
  {
    name: ".trusted-protected tests that CI_COMMIT_REF_PROTECTED is set, not that it is true",
    from: 'if: $CI_COMMIT_REF_PROTECTED == "true"',
    to: "if: $CI_COMMIT_REF_PROTECTED",
    context: "MR pipeline from an unprotected branch, no labels: contributor guidance",
  },
  {
    name: "the SHA check job's rule is not anchored at the start of the branch name",
    from: "  rules:\n    - if: $CI_COMMIT_BRANCH =~ /^$[[ inputs.trusted-branch-prefix ]]/\n  script:",
    to: "  rules:\n    - if: $CI_COMMIT_BRANCH =~ /$[[ inputs.trusted-branch-prefix ]]/\n  script:",
    context: "push to untrusted-x (the prefix not at the start): an ordinary branch",
  },
];

interface Suite {
  name: string;
  projectYml: () => Promise<string>;
  templateText?: () => Promise<string>;
  cases: Case[];
}

const suites: Suite[] = [
  { name: "default inputs, include: component", projectYml: async () => componentProjectYml, cases: defaultCases },
  { name: "other inputs, include: component", projectYml: async () => customInputsYml, cases: customCases },
  { name: "include: local with inputs", projectYml: async () => localIncludeYml, cases: localIncludeCases },
  {
    name: "README: the complete example project",
    projectYml: async () => withLocalComponent(await readmeExample("complete-project")),
    cases: readmeCompleteCases,
  },
  {
    name: "README: a project with its own workflow",
    projectYml: async () => withLocalComponent(await readmeExample("own-workflow")),
    cases: readmeOwnWorkflowCases,
  },
];

const projects: CiProject[] = [];
const results = new Map<string, ListedPipeline>();
const mutationResults = new Map<string, ListedPipeline>();

before(async () => {
  const template = await readFile(templateFile, "utf8");
  const runs: { key: string; project: CiProject; context: CiContext; into: Map<string, ListedPipeline> }[] = [];
  for (const suite of suites) {
    const project = await createCiProject({ gitlabCiYml: await suite.projectYml() });
    projects.push(project);
    for (const c of suite.cases)
      runs.push({ key: `${suite.name}: ${c.name}`, project, context: c.context, into: results });
  }
  for (const mutation of mutations) {
    assert.ok(template.includes(mutation.from), `mutation "${mutation.name}" no longer applies to the template`);
    const project = await createCiProject({
      gitlabCiYml: componentProjectYml,
      templateText: template.replaceAll(mutation.from, mutation.to),
    });
    projects.push(project);
    const target = defaultCases.find((c) => c.name === mutation.context);
    assert.ok(target, `no case named ${mutation.context}`);
    runs.push({ key: mutation.name, project, context: target.context, into: mutationResults });
  }
  // gitlab-ci-local calls run one after another (see gitlab-ci-local.ts); each takes a few milliseconds.
  for (const run of runs) run.into.set(run.key, await listJobs(run.project, run.context));
});

after(async () => {
  await Promise.all(projects.map((p) => p.remove()));
});

for (const suite of suites) {
  describe(suite.name, () => {
    for (const c of suite.cases) {
      test(c.name, () => {
        const listed = results.get(`${suite.name}: ${c.name}`);
        assert.ok(listed, "no result");
        assert.deepEqual({ pipeline: listed.pipeline, jobs: listed.jobs }, c.expected, JSON.stringify(listed.when));
      });
    }
  });
}

describe("the matrix notices a broken rule", () => {
  for (const mutation of mutations) {
    test(mutation.name, () => {
      const listed = mutationResults.get(mutation.name);
      const expected = defaultCases.find((c) => c.name === mutation.context)?.expected;
      assert.ok(listed && expected);
      assert.notDeepEqual(
        { pipeline: listed.pipeline, jobs: listed.jobs },
        expected,
        `with the mutation, "${mutation.context}" still gives ${JSON.stringify(expected)}`,
      );
    });
  }
});
