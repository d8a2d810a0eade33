#!/usr/bin/env node
/**
 * `trusted-mr-bot <command>`: one binary for every process shape. Exit codes: 0 success, 1 failure, 2 bad
 * configuration or usage (the message names the key and the source).
 */
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { stringify as toYaml } from "yaml";
import { type Config, loadConfig, maskSecrets, requireFor } from "./config/config.js";
import { ConfigError } from "./errors.js";
import { createLogger, type Logger } from "./logger.js";
import { runSweepOnce, type Service, type ServiceRoles, startService } from "./runtime.js";

const USAGE = `Usage: trusted-mr-bot [command] [options]

Commands:
  serve          receiver and worker in one process (default)
  receiver       only the webhook receiver (POST /webhook, /healthz, /readyz, /metrics)
  worker         only the worker (serves /healthz, /readyz, /metrics)
  sweep          one reconcile pass over every MR with trust state, then exit
  setup          configure a project: protected trusted-branch rule, label, webhook
                   --project <group/project> [--webhook-url <url>] [--dry-run]
                   --group <group path or id>: instead, every unarchived project of the group and its
                   subgroups, then a summary table; exit 1 if any project could not be set up
  check-config   print the effective configuration, secrets masked (--format yaml|json)
                   --gitlab: instead, connect to GitLab with the configured token and report its URL,
                   version and edition, the bot's user, and what the bot will do there (webhook signing,
                   pipeline variables, merge gating); exit 1 on a problem
  demo           play the whole workflow against the built-in GitLab simulator (needs no config)
                   [--redis-url <url>] [--log-level <level>]

Options:
  -c, --config <file>   YAML config (default: $TMR_CONFIG, else ./trusted-mr-bot.yml if present)
  -h, --help            show this help

Environment overrides: GITLAB_URL, GITLAB_TOKEN, GITLAB_WEBHOOK_SECRET, GITLAB_WEBHOOK_SIGNING_TOKEN, REDIS_URL, PORT.
`;

type Options = NonNullable<ParseArgsConfig["options"]>;

const COMMON: Options = {
  config: { type: "string", short: "c" },
  help: { type: "boolean", short: "h" },
};

const COMMANDS: Record<string, Options> = {
  serve: {},
  receiver: {},
  worker: {},
  sweep: {},
  setup: {
    project: { type: "string" },
    group: { type: "string" },
    "webhook-url": { type: "string" },
    "dry-run": { type: "boolean" },
  },
  "check-config": { format: { type: "string" }, gitlab: { type: "boolean" } },
  demo: { "redis-url": { type: "string" }, "log-level": { type: "string" } },
};

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/** Runs one command and resolves with the process exit code. Long-running commands resolve after shutdown. */
export async function main(
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  const command = argv[0] !== undefined && !argv[0].startsWith("-") ? argv[0] : "serve";
  const rest = command === argv[0] ? argv.slice(1) : argv;
  const commandOptions = COMMANDS[command];
  if (!commandOptions) {
    io.stderr.write(`trusted-mr-bot: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: rest, options: { ...COMMON, ...commandOptions }, strict: true }) as {
      values: Record<string, string | boolean | undefined>;
    });
  } catch (error) {
    io.stderr.write(`trusted-mr-bot ${command}: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values["help"]) {
    io.stdout.write(USAGE);
    return 0;
  }

  if (command === "demo") {
    try {
      // Loaded only by this command: the demo brings the simulator along.
      const { runDemo } = await import("./demo/demo.js");
      await runDemo({
        out: io.stdout,
        logLevel: values["log-level"] as string | undefined,
        redisUrl: values["redis-url"] as string | undefined,
      });
      return 0;
    } catch (error) {
      return fail(io, error);
    }
  }

  let config: Config;
  let source: string;
  try {
    ({ config, source } = loadConfig({ path: values["config"] as string | undefined, env: io.env }));
    requireFor(config, requirements(command), source);
  } catch (error) {
    return fail(io, error);
  }

  try {
    switch (command) {
      case "check-config":
        if (values["gitlab"] === true) return await checkGitLab(config, io);
        return checkConfig(config, source, values["format"], io);
      case "serve":
        return await serve(config, { receiver: true, worker: true, scheduler: true });
      case "receiver":
        return await serve(config, { receiver: true });
      case "worker":
        return await serve(config, { worker: true, scheduler: true, http: true });
      case "sweep": {
        const result = await runSweepOnce({ config, logger: createLogger({ level: config.log.level }) });
        return result.failed > 0 ? 1 : 0;
      }
      default:
        return await setup(config, values, io);
    }
  } catch (error) {
    return fail(io, error);
  }
}

/** What each command needs from the configuration (`requireFor`); `check-config` checks what `serve` needs. */
function requirements(command: string): { receiver?: boolean; gitlab?: boolean } {
  switch (command) {
    case "serve":
    case "check-config":
      return { receiver: true, gitlab: true };
    case "receiver":
      return { receiver: true };
    case "worker":
    case "sweep":
    case "setup":
      return { gitlab: true };
    default:
      return {};
  }
}

function checkConfig(config: Config, source: string, format: unknown, io: CliIo): number {
  const masked = maskSecrets(config);
  if (format === "json") {
    io.stdout.write(`${JSON.stringify(masked, null, 2)}\n`);
  } else if (format === undefined || format === "yaml") {
    io.stdout.write(`# effective configuration: ${source} + environment; secrets masked\n${toYaml(masked)}`);
  } else {
    io.stderr.write(`trusted-mr-bot check-config: --format must be yaml or json\n`);
    return 2;
  }
  return 0;
}

/** `check-config --gitlab`: the instance as the bot's token sees it (instance-report.ts). */
async function checkGitLab(config: Config, io: CliIo): Promise<number> {
  // Loaded only by this command.
  const { GitbeakerAdapter } = await import("./gitlab/gitbeaker-adapter.js");
  const { describeInstance } = await import("./trust/instance-report.js");
  // The URL as check-config prints it: credentials in it masked.
  const shownUrl = (maskSecrets(config) as { gitlab: { url: string } }).gitlab.url;
  const report = await describeInstance(new GitbeakerAdapter({ config }), config, shownUrl);
  io.stdout.write(report.lines.map((line) => `${line}\n`).join(""));
  for (const problem of report.problems) io.stdout.write(`[PROBLEM] ${problem}\n`);
  return report.problems.length > 0 ? 1 : 0;
}

async function serve(config: Config, roles: ServiceRoles): Promise<number> {
  const logger = createLogger({ level: config.log.level });
  const service = await startService({ config, logger, roles });
  return runUntilSignal(service, logger, config.worker.shutdown_timeout_ms);
}

/**
 * Run until SIGTERM or SIGINT, then stop taking work, let active jobs finish within `timeoutMs`, close
 * connections and resolve 0. A second signal exits at once. (Kubernetes sends SIGTERM and waits
 * `terminationGracePeriodSeconds`, 30 s by default, before SIGKILL: keep `worker.shutdown_timeout_ms` below it.)
 */
export async function runUntilSignal(service: Service, logger: Logger, timeoutMs: number): Promise<number> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  logger.info({ signal, timeoutMs }, "shutting down");
  const force = (again: NodeJS.Signals) => {
    logger.warn({ signal: again }, "second signal; exiting without waiting");
    process.exit(1);
  };
  process.once("SIGTERM", force);
  process.once("SIGINT", force);
  await service.close({ timeoutMs });
  return 0;
}

async function setup(config: Config, values: Record<string, unknown>, io: CliIo): Promise<number> {
  const projectPath = values["project"];
  const groupPath = values["group"];
  const given = (value: unknown): value is string => typeof value === "string" && value !== "";
  if (given(projectPath) === given(groupPath)) {
    io.stderr.write(
      `trusted-mr-bot setup: ${given(projectPath) ? "--project and --group exclude each other" : "--project <group/project> or --group <group> is required"}\n\n${USAGE}`,
    );
    return 2;
  }
  // Loaded only by this command.
  const { runGroupSetup, runSetup } = await import("./trust/setup.js");
  const webhookUrl = values["webhook-url"];
  const options = {
    config,
    logger: createLogger({ level: config.log.level, destination: io.stderr }),
    dryRun: values["dry-run"] === true,
    ...(typeof webhookUrl === "string" ? { webhookUrl } : {}),
    out: io.stdout,
  };
  // Both throw when a project could not be set up (`fail`: exit 1, or 2 for a configuration error).
  if (given(groupPath)) {
    await runGroupSetup({ ...options, groupPath });
    return 0;
  }
  const steps = await runSetup({ ...options, projectPath: projectPath as string });
  // Problems are printed by setup itself, one per line, saying what to fix.
  return steps.some((step) => step.action === "problem") ? 1 : 0;
}

/** One clear line (config errors list each key on its own line), exit 2 for configuration, 1 otherwise. */
function fail(io: CliIo, error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  const hint = (error as { hint?: unknown }).hint;
  io.stderr.write(`trusted-mr-bot: ${message}${typeof hint === "string" ? `\n  to fix: ${hint}` : ""}\n`);
  return error instanceof ConfigError ? 2 : 1;
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`trusted-mr-bot: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}
