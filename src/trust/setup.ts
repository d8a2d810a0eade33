/**
 * `trusted-mr-bot setup --project <path>`: prepares one GitLab project for the workflow, idempotently (running it
 * again changes nothing that is already right), and `--dry-run` prints the same plan without writing:
 *
 * 1. the bot's own access: Maintainer or more, since it deletes protected trusted branches and runs pipelines on
 *    them (FACTS.md: "Deleting a protected branch needs Maintainer");
 * 2. a protected-branch rule `<trust.branch_prefix>*` that Maintainers (so the bot) may push to and nobody may
 *    force-push, which is what makes a trusted branch's pipeline a protected one;
 * 3. the committer-branch label (`trust.committer_branch_label`);
 * 4. the project webhook to the bot (`--webhook-url` or `server.public_url`) with the secret (`webhook.secret`) and
 *    the push, merge request, comment and pipeline events. GitLab never shows a hook's secret, so an existing hook
 *    is saved again to make sure it has this one.
 */
import type { Config } from "../config/config.js";
import { ConfigError, PermanentError } from "../errors.js";
import { GitbeakerAdapter } from "../gitlab/gitbeaker-adapter.js";
import { ACCESS_LEVEL, type GitLabPort } from "../gitlab/port.js";
import type { Logger } from "../logger.js";
import { accessLevelName } from "./authorize.js";

export interface SetupOptions {
  config: Config;
  logger: Logger;
  /** `group/project` (or a numeric id). */
  projectPath: string;
  dryRun: boolean;
  /** Where GitLab should send webhooks; defaults to `server.public_url`. */
  webhookUrl?: string;
  out: { write(text: string): unknown };
  /** Tests pass a port; by default the gitbeaker adapter for `config.gitlab`. */
  port?: GitLabPort;
}

export type SetupAction = "ok" | "create" | "update" | "problem";

export interface SetupStep {
  what: string;
  action: SetupAction;
  detail: string;
}

const LABEL_COLOR = "#6699cc";

export async function runSetup(options: SetupOptions): Promise<SetupStep[]> {
  const { config, dryRun, out } = options;
  const port = options.port ?? new GitbeakerAdapter({ config });
  const steps: SetupStep[] = [];
  const step = (what: string, action: SetupAction, detail: string) => {
    steps.push({ what, action, detail });
    const verb = action === "ok" ? "ok" : action === "problem" ? "PROBLEM" : dryRun ? `would ${action}` : action;
    out.write(`[${verb}] ${what}: ${detail}\n`);
  };
  out.write(`${dryRun ? "Plan (dry run, nothing is changed)" : "Setting up"} ${options.projectPath}\n`);

  const bot = await port.currentUser();
  const project = await port.getProject(
    /^\d+$/.test(options.projectPath) ? Number(options.projectPath) : options.projectPath,
  );
  if (!project) {
    throw new PermanentError(
      `project ${options.projectPath} not found`,
      `check the path, and that the bot's user @${bot.username} is a member of the project (private projects are invisible to others)`,
    );
  }

  const level = await port.effectiveAccessLevel(project.id, bot.id);
  if (level < ACCESS_LEVEL.maintainer) {
    step(
      "bot access",
      "problem",
      `@${bot.username} has ${accessLevelName(level)} in ${project.pathWithNamespace}; it needs Maintainer to delete protected trusted branches and run their pipelines`,
    );
    return finish(steps);
  }
  step("bot access", "ok", `@${bot.username} is ${accessLevelName(level)}`);

  const pattern = `${config.trust.branch_prefix}*`;
  const rule = await port.getProtectedBranch(project.id, pattern);
  if (!rule) {
    step(`protected branches ${pattern}`, "create", "Maintainers may push and merge, nobody may force-push");
    if (!dryRun) {
      await port.protectBranch(project.id, {
        name: pattern,
        pushAccessLevel: ACCESS_LEVEL.maintainer,
        mergeAccessLevel: ACCESS_LEVEL.maintainer,
        allowForcePush: false,
      });
    }
  } else {
    const botMayPush = rule.pushUserIds.includes(bot.id) || rule.pushAccessLevels.some((l) => l > 0 && l <= level);
    if (botMayPush) step(`protected branches ${pattern}`, "ok", "exists and the bot may push to it");
    else {
      step(
        `protected branches ${pattern}`,
        "problem",
        `exists but @${bot.username} may not push to it (allowed: ${rule.pushAccessLevels.map(accessLevelName).join(", ") || "no one"}); set "Allowed to push" to Maintainers or add the bot`,
      );
    }
  }

  const labelName = config.trust.committer_branch_label;
  if (await port.getLabel(project.id, labelName)) step(`label ${labelName}`, "ok", "exists");
  else {
    step(`label ${labelName}`, "create", "for merge requests from committer branches");
    if (!dryRun) {
      await port.createLabel(project.id, {
        name: labelName,
        color: LABEL_COLOR,
        description: "From a protected branch of this project: its pipelines already run as a committer's",
      });
    }
  }

  const url = options.webhookUrl ?? config.server.public_url;
  const secret = config.webhook.secret;
  if (!url) {
    step("webhook", "problem", "no URL: pass --webhook-url or set server.public_url");
  } else if (!secret && !config.webhook.insecure) {
    step("webhook", "problem", "no secret: set webhook.secret (env GITLAB_WEBHOOK_SECRET)");
  } else {
    const hooks = await port.listHooks(project.id);
    const existing = hooks.find((h) => h.url === url);
    const wanted = {
      url,
      ...(secret ? { token: secret } : {}),
      pushEvents: true,
      mergeRequestsEvents: true,
      noteEvents: true,
      pipelineEvents: true,
      enableSslVerification: !url.startsWith("http://"),
    };
    if (existing) {
      step(`webhook ${url}`, "update", "re-save events and secret (GitLab does not show a hook's secret)");
    } else {
      step(`webhook ${url}`, "create", "push, merge request, comment and pipeline events, with the secret");
    }
    if (!dryRun) await port.saveHook(project.id, wanted, existing?.id);
  }
  return finish(steps);
}

function finish(steps: SetupStep[]): SetupStep[] {
  const problems = steps.filter((s) => s.action === "problem");
  if (problems.length > 0) {
    const first = problems[0]!;
    const message = `setup found ${problems.length} problem(s)`;
    const hint = `${first.what}: ${first.detail}`;
    throw first.what === "webhook" && /no (URL|secret)/.test(first.detail)
      ? new ConfigError(`${message}: ${hint}`)
      : new PermanentError(message, hint);
  }
  return steps;
}
