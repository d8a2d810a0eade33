import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { parse } from "yaml";
import { repoRoot, templatesDir } from "./template-files.js";

const execFileAsync = promisify(execFile);

/**
 * gitlab-ci-local 4.64.1 from the project's devDependencies (its later releases crash on Node 20), called in-process
 * the way its own test suite calls it: `handler(args, writeStreams, jobs)`. Loading it costs about 1.5 s, so one load
 * serves every call; a fresh process per call would cost that much each time.
 */
const gitlabCiLocalSrc = path.join(repoRoot, "node_modules/gitlab-ci-local/src");

interface GitlabCiLocalJob {
  name: string;
}
interface WriteStreamsMock {
  stdoutLines: string[];
  stderrLines: string[];
  flush(): void;
}
interface GitlabCiLocalModules {
  handler(args: Record<string, unknown>, writeStreams: WriteStreamsMock, jobs: GitlabCiLocalJob[]): Promise<unknown>;
  WriteStreamsMock: new () => WriteStreamsMock;
  getFailed(jobs: GitlabCiLocalJob[]): GitlabCiLocalJob[];
}

let modules: Promise<GitlabCiLocalModules> | undefined;

function loadGitlabCiLocal(): Promise<GitlabCiLocalModules> {
  modules ??= (async () => {
    const load = (file: string) => import(pathToFileURL(path.join(gitlabCiLocalSrc, file)).href);
    const [handlerModule, writeStreamsModule, executorModule] = await Promise.all([
      load("handler.js"),
      load("write-streams.js"),
      load("executor.js"),
    ]);
    return {
      handler: handlerModule.handler,
      WriteStreamsMock: writeStreamsModule.WriteStreamsMock,
      getFailed: (jobs) => executorModule.Executor.getFailed(jobs),
    } as GitlabCiLocalModules;
  })();
  return modules;
}

/** The probe job that reports what the config's `workflow:rules` decide; see `listJobs`. */
export const WORKFLOW_PROBE = "workflow-rules-probe";

/**
 * A pipeline context: the predefined variables GitLab would set, plus pipeline variables.
 * `unset` removes variables gitlab-ci-local would otherwise derive from the git checkout (e.g. CI_COMMIT_BRANCH,
 * which GitLab does not set in merge request pipelines).
 */
export interface CiContext {
  variables: Record<string, string>;
  unset?: string[];
}

/** A temporary git repository laid out like the component project, with a project `.gitlab-ci.yml`. */
export interface CiProject {
  dir: string;
  /** HEAD of the temporary repository, which gitlab-ci-local reports as CI_COMMIT_SHA. */
  sha: string;
  remove(): Promise<void>;
}

export interface GitlabCiLocalResult {
  /** 1 when gitlab-ci-local failed or a job failed (not allowed to), as its command line would exit. */
  code: number;
  /** Jobs that failed and were not allowed to. */
  failed: string[];
  stdout: string;
  stderr: string;
  /** The state directory of this invocation, relative to the project. */
  stateDir: string;
}

/** The remote the temporary repository pretends to have; `include: component:` resolves against it. */
export const COMPONENT_PROJECT_PATH = "acme/trusted-mr-ci";
/** `include: component:` of the template in the temporary repository itself, as GitLab's docs do for testing. */
export const LOCAL_COMPONENT = "$CI_SERVER_FQDN/$CI_PROJECT_PATH/trusted-merge-request@$CI_COMMIT_SHA";

/** A clean environment for git: nothing from the runner's own CI variables or GCL_* options may leak in. */
async function cleanEnv(home: string): Promise<NodeJS.ProcessEnv> {
  return {
    // gitlab-ci-local copies the tracked files with rsync before running jobs (scripts/test.sh installs it).
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: home,
    TMPDIR: os.tmpdir(),
    LANG: "C.UTF-8",
    GIT_CONFIG_NOSYSTEM: "1",
  };
}

/**
 * gitlab-ci-local runs shell jobs with this process's environment under its own variables. When this suite itself
 * runs in GitLab CI (even in a trusted pipeline with TRUSTED_* variables), none of that may reach the jobs under test.
 */
async function isolateProcessEnv(): Promise<void> {
  for (const key of Object.keys(process.env)) {
    if (/^(CI|GITLAB_.*|CI_.*|TRUSTED_.*|GCL_.*|FF_.*)$/.test(key)) delete process.env[key];
  }
}

async function git(dir: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync("git", args, { cwd: dir, env });
  return stdout.trim();
}

export interface CiProjectOptions {
  /** The project's `.gitlab-ci.yml`. */
  gitlabCiYml: string;
  /** Replaces the template's text (mutation tests); the real template by default. */
  templateText?: string;
}

/**
 * Creates the repository in os.tmpdir(): `templates/` from ci-templates, the project's `.gitlab-ci.yml`, and a
 * `.gitlab-ci-local.yml` (gitlab-ci-local merges it into the config) holding the workflow probe job.
 */
export async function createCiProject(options: CiProjectOptions): Promise<CiProject> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "trusted-ci-"));
  const home = path.join(dir, ".home");
  await mkdir(home);
  await writeFile(path.join(dir, ".gitignore"), ".home/\n.gcl-*/\n");
  await cp(templatesDir, path.join(dir, "templates"), { recursive: true });
  if (options.templateText !== undefined) {
    await writeFile(path.join(dir, "templates/trusted-merge-request.yml"), options.templateText);
  }
  await writeFile(path.join(dir, ".gitlab-ci.yml"), options.gitlabCiYml);
  // gitlab-ci-local ignores workflow:rules, so the probe job carries exactly the merged config's workflow:rules;
  // job rules and workflow rules share GitLab's semantics: first match wins, `when: never` or no match excludes.
  await writeFile(
    path.join(dir, ".gitlab-ci-local.yml"),
    `${WORKFLOW_PROBE}:\n  stage: .pre\n  rules: !reference [workflow, rules]\n  script: [":"]\n`,
  );
  const env = await cleanEnv(home);
  await git(dir, env, "init", "-q", "-b", "main");
  await git(dir, env, "remote", "add", "origin", `https://gitlab.example.com/${COMPONENT_PROJECT_PATH}.git`);
  await git(dir, env, "add", "-A");
  await git(
    dir,
    env,
    "-c",
    "user.name=Test",
    "-c",
    "user.email=test@example.com",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.hooksPath=/dev/null",
    "commit",
    "-q",
    "-m",
    "fixture",
  );
  const sha = await git(dir, env, "rev-parse", "HEAD");
  return { dir, sha, remove: () => rm(dir, { recursive: true, force: true }) };
}

let invocation = 0;
let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs gitlab-ci-local offline in the project with its own state directory. Calls run one at a time: gitlab-ci-local
 * keeps some state in module scope, and its warnings about unsupported `spec:inputs:regex` go to console.log, which
 * is captured for the duration of a call.
 */
export function gitlabCiLocal(
  project: CiProject,
  args: Record<string, unknown>,
  context: CiContext = { variables: {} },
): Promise<GitlabCiLocalResult> {
  const run = queue.then(async () => {
    const { handler, WriteStreamsMock, getFailed } = await loadGitlabCiLocal();
    await isolateProcessEnv();
    invocation += 1;
    const stateDir = `.gcl-${process.pid}-${invocation}`;
    const writeStreams = new WriteStreamsMock();
    const jobs: GitlabCiLocalJob[] = [];
    const consoleLines: string[] = [];
    const consoleLog = console.log;
    console.log = (...parts: unknown[]) => {
      consoleLines.push(parts.map(String).join(" "));
    };
    let error: unknown;
    try {
      await handler(
        {
          cwd: path.relative(process.cwd(), project.dir) || ".",
          home: path.join(project.dir, ".home"),
          stateDir,
          jsonSchemaValidation: false,
          noColor: true,
          variable: Object.entries(context.variables).map(([key, value]) => `${key}=${value}`),
          unsetVariable: context.unset ?? [],
          ignorePredefinedVars: Object.keys(context.variables),
          ...args,
        },
        writeStreams,
        jobs,
      );
    } catch (e) {
      error = e;
    } finally {
      console.log = consoleLog;
      writeStreams.flush();
    }
    const failed = getFailed(jobs).map((job) => job.name);
    const stderr = [...consoleLines, ...writeStreams.stderrLines, ...(error ? [String(error)] : [])].join("\n");
    return {
      code: error !== undefined || failed.length > 0 ? 1 : 0,
      failed,
      stdout: writeStreams.stdoutLines.join("\n"),
      stderr,
      stateDir,
    };
  });
  queue = run.catch(() => undefined);
  return run;
}

export interface ListedPipeline {
  /** Whether `workflow:rules` create a pipeline in this context. */
  pipeline: boolean;
  /** Jobs whose rules put them in the pipeline (`when` is not `never`), sorted; empty when there is no pipeline. */
  jobs: string[];
  /** `when` of every job as gitlab-ci-local evaluated its rules, whether or not there is a pipeline. */
  when: Record<string, string>;
}

/** `--list-json` in a context: which jobs GitLab would create, and whether it would create a pipeline at all. */
export async function listJobs(project: CiProject, context: CiContext): Promise<ListedPipeline> {
  const result = await gitlabCiLocal(project, { listJson: true }, context);
  if (result.code !== 0) throw new Error(`gitlab-ci-local --list-json failed:\n${result.stdout}\n${result.stderr}`);
  // gitlab-ci-local prints warnings (e.g. "spec:inputs:regex is currently not supported") to stdout first.
  const start = result.stdout.search(/^\[/m);
  if (start < 0) throw new Error(`no JSON in gitlab-ci-local output:\n${result.stdout}\n${result.stderr}`);
  const listed = JSON.parse(result.stdout.slice(start)) as { name: string; when: string }[];
  const when = Object.fromEntries(listed.map((job) => [job.name, job.when]));
  const probe = when[WORKFLOW_PROBE];
  if (probe === undefined) throw new Error("the workflow probe job is missing from gitlab-ci-local's list");
  delete when[WORKFLOW_PROBE];
  const pipeline = probe !== "never";
  const jobs = pipeline
    ? Object.entries(when)
        .filter(([, value]) => value !== "never")
        .map(([name]) => name)
        .sort()
    : [];
  return { pipeline, jobs, when };
}

/** `--preview`: the merged configuration with inputs interpolated, as gitlab-ci-local renders it. */
export async function previewConfig(project: CiProject): Promise<Record<string, unknown>> {
  const result = await gitlabCiLocal(project, { preview: true });
  if (result.code !== 0) throw new Error(`gitlab-ci-local --preview failed:\n${result.stdout}\n${result.stderr}`);
  const start = result.stdout.search(/^---$/m);
  if (start < 0) throw new Error(`no YAML in gitlab-ci-local --preview output:\n${result.stdout}`);
  return parse(result.stdout.slice(start)) as Record<string, unknown>;
}

export interface JobRun {
  code: number;
  failed: string[];
  /** Combined gitlab-ci-local output (job lines are prefixed with the job name). */
  output: string;
  /** The job's own log lines, from gitlab-ci-local's output file. */
  log(job: string): Promise<string>;
}

/**
 * Runs jobs with the shell executor. With job names, gitlab-ci-local runs those jobs regardless of their rules;
 * without, it runs the pipeline, honouring job rules and stage order (not workflow:rules).
 */
export async function runJobs(project: CiProject, context: CiContext, jobs: string[] = []): Promise<JobRun> {
  const result = await gitlabCiLocal(project, { forceShellExecutor: true, job: jobs }, context);
  return {
    code: result.code,
    failed: result.failed,
    output: `${result.stdout}\n${result.stderr}`,
    log: async (job) => readFile(path.join(project.dir, result.stateDir, "output", `${job}.log`), "utf8"),
  };
}
