/**
 * `trusted-mr-bot setup --project <path>`: prepares one GitLab project for the workflow, idempotently (running it
 * again changes nothing that is already right), and `--dry-run` prints the same plan without writing:
 *
 * 1. the bot's own access: Maintainer or more, since it deletes protected trusted branches and runs pipelines on
 *    them (FACTS.md: "Deleting a protected branch needs Maintainer");
 * 2. a protected-branch rule `<trust.branch_prefix>*` that Maintainers (so the bot) may push to and nobody may
 *    force-push, which is what makes a trusted branch's pipeline a protected one. Since any matching rule that
 *    grants is enough (the most permissive wins), every rule that can match a trusted branch is checked, not only
 *    that one (`*`, `trust*`, `*-mr*`, an exact `trusted-feature-mr3`; see `protected-pattern.ts`): none may let
 *    anyone but committers and the bot push or merge, nor allow force push. Such a problem stops setup before the
 *    label and the webhook, so the bot never starts working on a project whose trusted branches are open;
 * 3. the committer-branch label (`trust.committer_branch_label`);
 * 4. the project webhook to the bot (`--webhook-url` or `server.public_url`) with the secret (`webhook.secret`) and
 *    the push, merge request, comment and pipeline events. GitLab never shows a hook's secret, so an existing hook
 *    is saved again to make sure it has this one.
 */
import type { Config } from "../config/config.js";
import { ConfigError, PermanentError } from "../errors.js";
import { GitbeakerAdapter } from "../gitlab/gitbeaker-adapter.js";
import { ACCESS_LEVEL, type GitLabPort, type ProtectedBranchRule, type User } from "../gitlab/port.js";
import type { Logger } from "../logger.js";
import { accessLevelName } from "./authorize.js";
import { matchesBranchWithPrefix } from "./protected-pattern.js";

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

  const prefix = config.trust.branch_prefix;
  const pattern = `${prefix}*`;
  const guarding = (await port.listProtectedBranches(project.id)).filter((r) =>
    matchesBranchWithPrefix(r.name, prefix),
  );
  const own = guarding.find((r) => r.name === pattern);
  if (!own) {
    step(`protected branches ${pattern}`, "create", "Maintainers may push and merge, nobody may force-push");
    if (!dryRun) {
      await port.protectBranch(project.id, {
        name: pattern,
        pushAccessLevel: ACCESS_LEVEL.maintainer,
        mergeAccessLevel: ACCESS_LEVEL.maintainer,
        allowForcePush: false,
      });
    }
  }
  const named = namedUserIds(guarding, bot);
  const listedIds = await listedCommitterIds(port, config.trust.committer_users, named);
  const review: RuleReviewContext = {
    bot,
    committerAccessLevel: config.trust.committer_access_level,
    listedIds,
    usernames: await usernames(
      port,
      [...named].filter((id) => !listedIds.has(id)),
    ),
  };
  for (const rule of own ? [own, ...guarding.filter((r) => r !== own)] : guarding) {
    const { findings, fixes } = reviewTrustedRule(rule, review);
    if (rule === own) {
      const botMayPush = rule.pushUserIds.includes(bot.id) || rule.pushAccessLevels.some((l) => l > 0 && l <= level);
      if (!botMayPush) {
        findings.push(
          `@${bot.username} may not push to it (allowed: ${rule.pushAccessLevels.map(accessLevelName).join(", ") || "no one"})`,
        );
        fixes.push(`set "Allowed to push" to Maintainers or add the bot`);
      }
    }
    const what = `protected branches ${rule.name}`;
    const where = rule.inherited ? " (the rule is inherited: change it in the group's settings)" : "";
    if (findings.length === 0) {
      step(
        what,
        "ok",
        rule === own
          ? "exists and the bot may push to it"
          : "matches trusted branches too; only committers may push or merge",
      );
    } else if (rule === own) {
      step(what, "problem", `${findings.join("; ")}; fix: ${fixes.join("; ")}${where}`);
    } else {
      step(
        what,
        "problem",
        `matches trusted branches too (where rules overlap, the most permissive wins) and ${findings.join("; ")}; fix: remove rule ${rule.name} or rename it so that it matches no ${pattern} branch, or ${fixes.join("; ")}${where}`,
      );
    }
  }
  // Open trusted branches would hand protected variables to anyone who may push there: stop before the webhook
  // makes the bot act on this project.
  if (steps.some((s) => s.action === "problem")) return finish(steps);

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

export interface RuleReviewContext {
  bot: User;
  committerAccessLevel: number;
  /** Ids of the users `trust.committer_users` names (as far as the rules need them). */
  listedIds: ReadonlySet<number>;
  /** Usernames of the other named users, for the messages (absent: no such user). */
  usernames: ReadonlyMap<number, string>;
}

/** What is wrong with one rule that can match a trusted branch, and what to change (empty when it is safe). */
export function reviewTrustedRule(
  rule: ProtectedBranchRule,
  ctx: RuleReviewContext,
): { findings: string[]; fixes: string[] } {
  const findings: string[] = [];
  const fixes: string[] = [];
  // Role levels: "No one" (0) grants nothing; anything from the committer level up is a committer already.
  const below = (levels: number[]) => levels.filter((l) => l !== ACCESS_LEVEL.none && l < ctx.committerAccessLevel);
  const lowPush = below(rule.pushAccessLevels);
  const lowMerge = below(rule.mergeAccessLevels);
  const target =
    ctx.committerAccessLevel <= ACCESS_LEVEL.maintainer ? "Maintainers" : "No one (and add the bot by name)";
  if (lowPush.length > 0) findings.push(`${roleNames(lowPush)} may push`);
  if (lowMerge.length > 0) findings.push(`${roleNames(lowMerge)} may merge`);
  if (lowPush.length > 0 || lowMerge.length > 0) {
    const which = lowPush.length > 0 && lowMerge.length > 0 ? "push and merge" : lowPush.length > 0 ? "push" : "merge";
    fixes.push(`set "Allowed to ${which}" to ${target}`);
  }
  if (rule.allowForcePush) {
    findings.push("force push is allowed");
    fixes.push(`disable "Allowed to force push"`);
  }
  for (const [list, action] of [
    [rule.pushAccess, "push"],
    [rule.mergeAccess, "merge"],
  ] as const) {
    for (const access of list) {
      const field = `"Allowed to ${action}"`;
      if (access.kind === "user" && access.userId !== ctx.bot.id && !ctx.listedIds.has(access.userId)) {
        const username = ctx.usernames.get(access.userId);
        const who = username !== undefined ? `@${username}` : `user ${access.userId}`;
        findings.push(`${field} names ${who}, who is neither the bot nor in trust.committer_users`);
        fixes.push(`remove ${who} from ${field}`);
      } else if (access.kind === "group") {
        findings.push(`${field} names group ${access.groupId}, whose members setup cannot vouch for`);
        fixes.push(`remove group ${access.groupId} from ${field}`);
      } else if (access.kind === "deployKey") {
        findings.push(`${field} names deploy key ${access.deployKeyId}`);
        fixes.push(`remove deploy key ${access.deployKeyId} from ${field}`);
      }
    }
  }
  return { findings, fixes };
}

/** The users the rules name, other than the bot. */
function namedUserIds(rules: ProtectedBranchRule[], bot: User): Set<number> {
  const ids = new Set<number>();
  for (const rule of rules) {
    for (const access of [...rule.pushAccess, ...rule.mergeAccess]) {
      if (access.kind === "user" && access.userId !== bot.id) ids.add(access.userId);
    }
  }
  return ids;
}

/**
 * The ids among `named` that `trust.committer_users` lists. Like the workflow (committers.ts), the list is matched
 * by user id, never by the name a user has now: a username is mutable and, once freed, anyone may take it. Listed
 * ids count as they are; listed usernames are resolved (`GET /users?username=`) only when a rule names someone
 * those ids do not cover.
 */
async function listedCommitterIds(
  port: GitLabPort,
  committerUsers: ReadonlyArray<string | number>,
  named: ReadonlySet<number>,
): Promise<Set<number>> {
  const ids = new Set(committerUsers.filter((u): u is number => typeof u === "number"));
  if ([...named].every((id) => ids.has(id))) return ids;
  for (const entry of committerUsers) {
    if (typeof entry !== "string") continue;
    const user = await port.findUserByUsername(entry.replace(/^@/, ""));
    if (user) ids.add(user.id);
  }
  return ids;
}

/** Current usernames, so that a problem names the person (`@dave`) rather than an id. */
async function usernames(port: GitLabPort, ids: number[]): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  for (const id of ids) {
    const user = await port.getUser(id);
    if (user) names.set(id, user.username);
  }
  return names;
}

const ROLE_NAMES: Readonly<Record<number, string>> = {
  5: "Minimal access users",
  10: "Guests",
  15: "Planners",
  20: "Reporters",
  30: "Developers",
  40: "Maintainers",
  50: "Owners",
};

function roleNames(levels: number[]): string {
  return [...new Set(levels)].map((l) => ROLE_NAMES[l] ?? `access level ${l}`).join(" and ");
}

function finish(steps: SetupStep[]): SetupStep[] {
  const problems = steps.filter((s) => s.action === "problem");
  if (problems.length > 0) {
    const first = problems[0]!;
    const message = `setup found ${problems.length} problem(s)`;
    // Every problem, each saying what to change: the CLI prints the hint as "to fix:".
    const hint = problems.map((p) => `${p.what}: ${p.detail}`).join("\n  ");
    throw first.what === "webhook" && /no (URL|secret)/.test(first.detail)
      ? new ConfigError(`${message}: ${hint}`)
      : new PermanentError(message, hint);
  }
  return steps;
}
