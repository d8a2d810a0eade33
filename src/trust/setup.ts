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
 * 3. the committer-branch label (`trust.committer_branch_label`) and, with `trust.state_labels`, the four trust-state
 *    labels (plain project labels; the `::` in their default names needs no Premium);
 * 4. the project webhook to the bot (`--webhook-url` or `server.public_url`) with the secret (`webhook.secret`) and
 *    the push, merge request, comment (internal ones too: `Confidential Note Hook`) and pipeline events. GitLab
 *    never shows a hook's secret, so an existing hook is saved again to make sure it has this one. With
 *    `webhook.signing_token`, the hook gets it too, and setup reads the hook back: a GitLab that does not sign
 *    drops the token silently, and the receiver would refuse every unsigned delivery (instance-report.ts);
 * 5. with `trust.approve`, the approval rule requiring the bot (Premium), and with `trust.external_status_check`
 *    the external status check (Ultimate); "not available on this tier" where GitLab has neither.
 *
 * It starts by saying which GitLab it found (version, edition) and what the bot will do there because of it.
 */
import { type Config, maskSecrets } from "../config/config.js";
import { ConfigError, PermanentError } from "../errors.js";
import { GitbeakerAdapter } from "../gitlab/gitbeaker-adapter.js";
import { ACCESS_LEVEL, type GitLabPort, type Project, type ProtectedBranchRule, type User } from "../gitlab/port.js";
import type { Logger } from "../logger.js";
import { accessLevelName } from "./authorize.js";
import {
  gatingMechanism,
  GITLAB_SIGNING_TOKEN_FORMAT,
  instanceLine,
  readInstance,
  signingReport,
  signingSupport,
  unsupportedSigning,
} from "./instance-report.js";
import { statusCheckName } from "./decide.js";
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

/** The trust-state labels (`trust.state_labels`): colour and description per state. */
const STATE_LABELS = {
  waiting: { color: "#e9a23b", description: "Trusted MR bot: waiting for a committer to review and /trust the head" },
  trusted: { color: "#1f75cb", description: "Trusted MR bot: the head is trusted; its pipeline runs or passed" },
  stale: { color: "#868686", description: "Trusted MR bot: new commits since the trusted one; review them" },
  failed: { color: "#dd2b0e", description: "Trusted MR bot: the trusted pipeline for the head failed" },
} as const;

export async function runSetup(options: SetupOptions): Promise<SetupStep[]> {
  const { config, dryRun, out } = options;
  const port = options.port ?? new GitbeakerAdapter({ config });
  const steps: SetupStep[] = [];
  const step = stepWriter(steps, out, dryRun);
  out.write(`${dryRun ? "Plan (dry run, nothing is changed)" : "Setting up"} ${options.projectPath}\n`);
  const found = await instanceStep(port, config, step);
  return setupProject(port, options, found, steps, step);
}

export interface GroupSetupOptions extends Omit<SetupOptions, "projectPath"> {
  /** `group/subgroup` (or a numeric id). */
  groupPath: string;
}

/** How setting up one project of a group went. */
export interface ProjectSetupResult {
  project: string;
  steps: SetupStep[];
  /** Why the project could not be set up; absent when it was (or, in a dry run, could be). */
  error?: Error;
}

/**
 * `setup --group`: the same setup for every unarchived project of a group and its subgroups. The instance is
 * reported once, then each project's steps under its name; a project that fails does not stop the others. Ends with
 * a summary table, and throws when any project could not be set up (so the CLI exits non-zero).
 */
export async function runGroupSetup(options: GroupSetupOptions): Promise<ProjectSetupResult[]> {
  const { config, dryRun, out, groupPath } = options;
  const port = options.port ?? new GitbeakerAdapter({ config });
  out.write(`${dryRun ? "Plan (dry run, nothing is changed)" : "Setting up"} every project of group ${groupPath}\n`);
  const found = await instanceStep(port, config, stepWriter([], out, dryRun));
  const projects = await port.listGroupProjects(/^\d+$/.test(groupPath) ? Number(groupPath) : groupPath);
  if (!projects) {
    throw new PermanentError(
      `group ${groupPath} not found`,
      `check the path, and that the bot's user @${found.bot.username} is a member of the group (private groups are invisible to others)`,
    );
  }
  // GitLab lists them newest first; by path, subgroups' projects sit next to each other.
  projects.sort((a, b) => a.pathWithNamespace.localeCompare(b.pathWithNamespace));
  out.write(`${projects.length} project(s), subgroups included; archived projects are skipped (not set up)\n`);
  const results: ProjectSetupResult[] = [];
  for (const project of projects) {
    out.write(`\n${project.pathWithNamespace}\n`);
    const steps: SetupStep[] = [];
    const step = stepWriter(steps, out, dryRun, "  ");
    try {
      await setupProject(port, { ...options, projectPath: String(project.id) }, found, steps, step);
      results.push({ project: project.pathWithNamespace, steps });
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      // Problems are printed as steps already; anything else (an API error) is printed here.
      if (!steps.some((s) => s.action === "problem")) out.write(`  [PROBLEM] ${failure.message}\n`);
      results.push({ project: project.pathWithNamespace, steps, error: failure });
    }
  }
  out.write(`\n${summaryTable(results, dryRun)}`);
  const failed = results.filter((r) => r.error);
  if (failed.length > 0) {
    throw new PermanentError(
      `setup failed for ${failed.length} of ${results.length} project(s): ${failed.map((r) => r.project).join(", ")}`,
      "see each project's [PROBLEM] lines above; fix them and run setup again (projects already set up stay as they are)",
    );
  }
  return results;
}

/** One row per project: what changed (creates and updates), how many problems, and the result. */
function summaryTable(results: ProjectSetupResult[], dryRun: boolean): string {
  const rows = results.map((r) => {
    const creates = r.steps.filter((s) => s.action === "create").length;
    const updates = r.steps.filter((s) => s.action === "update").length;
    const problems = r.steps.filter((s) => s.action === "problem").length || (r.error ? 1 : 0);
    const changes = [creates ? `${creates} create` : "", updates ? `${updates} update` : ""].filter(Boolean);
    return [
      r.project,
      changes.length > 0 ? `${dryRun ? "would " : ""}${changes.join(", ")}` : "none",
      String(problems),
      r.error ? "FAILED" : dryRun ? "ready" : "set up",
    ];
  });
  const table = [["project", "changes", "problems", "result"], ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const line = (row: string[]) => `${row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ")}`.trimEnd();
  return `${table.map(line).join("\n")}\n`;
}

/** What setup learns once per GitLab: the bot's user and the instance (reported as the first step). */
interface Found {
  bot: User;
  instance: Awaited<ReturnType<typeof readInstance>>;
  signing: ReturnType<typeof signingReport>;
}

/** Records a step and prints it as `[ok]`, `[create]` (`[would create]` in a dry run), `[PROBLEM]`... */
function stepWriter(steps: SetupStep[], out: SetupOptions["out"], dryRun: boolean, indent = ""): StepFn {
  return (what, action, detail) => {
    steps.push({ what, action, detail });
    const verb = action === "ok" ? "ok" : action === "problem" ? "PROBLEM" : dryRun ? `would ${action}` : action;
    out.write(`${indent}[${verb}] ${what}: ${detail}\n`);
  };
}

async function instanceStep(port: GitLabPort, config: Config, step: StepFn): Promise<Found> {
  const bot = await port.currentUser();
  const instance = await readInstance(port);
  const signing = signingReport(config, instance.instance);
  step(
    "instance",
    "ok",
    `${instanceLine(instance)} at ${(maskSecrets(config) as Config).gitlab.url}; webhook signing: ${signing.line}; merge gating: ${gatingMechanism(config.trust, instance.instance)}`,
  );
  return { bot, instance, signing };
}

/** Steps 1 to 5 for one project; throws (`finish`) when a step found a problem. */
async function setupProject(
  port: GitLabPort,
  options: Pick<SetupOptions, "config" | "projectPath" | "dryRun" | "webhookUrl">,
  { bot, instance, signing }: Found,
  steps: SetupStep[],
  step: StepFn,
): Promise<SetupStep[]> {
  const { config, dryRun } = options;
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
  // Whichever way it goes, the trusted pipeline starts: never a problem, only what to put in the CI template.
  step("pipeline variables", "ok", pipelineVariablesReport(project, level, bot));

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
  if (config.trust.state_labels.enabled) {
    for (const state of ["waiting", "trusted", "stale", "failed"] as const) {
      const name = config.trust.state_labels[state];
      const label = STATE_LABELS[state];
      if (await port.getLabel(project.id, name)) step(`label ${name}`, "ok", "exists");
      else {
        step(`label ${name}`, "create", `trust state ${state}`);
        if (!dryRun) await port.createLabel(project.id, { name, color: label.color, description: label.description });
      }
    }
  }

  const url = options.webhookUrl ?? config.server.public_url;
  const secret = config.webhook.secret;
  if (!url) {
    step("webhook", "problem", "no URL: pass --webhook-url or set server.public_url");
  } else if (!secret && !config.webhook.insecure) {
    step("webhook", "problem", "no secret: set webhook.secret (env GITLAB_WEBHOOK_SECRET)");
  } else {
    const signingToken = config.webhook.signing_token;
    const signingProblem = !signingToken
      ? undefined
      : !GITLAB_SIGNING_TOKEN_FORMAT.test(signingToken)
        ? "webhook.signing_token must be whsec_ followed by the base64 of a 32-byte key, the only format GitLab accepts (e.g. `echo whsec_$(openssl rand -base64 32)`)"
        : signing.problem;
    if (signingProblem) {
      // Before the hook is saved: a hook the receiver would refuse every delivery of is never left behind.
      step("webhook signing", "problem", signingProblem);
      return finish(steps);
    }
    const hooks = await port.listHooks(project.id);
    const existing = hooks.find((h) => h.url === url);
    const wanted = {
      url,
      ...(secret ? { token: secret } : {}),
      ...(signingToken ? { signingToken } : {}),
      pushEvents: true,
      mergeRequestsEvents: true,
      noteEvents: true,
      confidentialNoteEvents: true,
      pipelineEvents: true,
      enableSslVerification: !url.startsWith("http://"),
    };
    const signed = signingToken ? " and signing token" : "";
    if (existing) {
      step(`webhook ${url}`, "update", `re-save events, secret${signed} (GitLab does not show a hook's secrets)`);
    } else {
      step(
        `webhook ${url}`,
        "create",
        `push, merge request, comment (internal ones too) and pipeline events, with the secret${signed}`,
      );
    }
    if (!dryRun) {
      const saved = await port.saveHook(project.id, wanted, existing?.id);
      if (signingToken) {
        // GitLab drops a signing token it cannot use without an error; only the hook it answers with tells.
        if (saved.signingTokenPresent === true) {
          step("webhook signing", "ok", "GitLab kept the signing token: deliveries are signed (Standard Webhooks)");
        } else {
          const version = instance.instance?.version ?? "unknown";
          const why =
            signingSupport(instance.instance) === "maybe" ? " (the webhook_signing_token feature flag is off)" : "";
          step("webhook signing", "problem", `${unsupportedSigning(version)}${why}`);
        }
      }
    } else if (signingToken) {
      step("webhook signing", "ok", "would send the signing token; setup checks that GitLab keeps it");
    }
  }
  if (config.trust.approve) await approvalRuleStep(port, project, bot, dryRun, step);
  const checkName = statusCheckName(config.trust);
  if (checkName !== undefined) {
    await statusCheckStep(port, project, checkName, config.server.public_url ?? options.webhookUrl, dryRun, step);
  }
  return finish(steps);
}

/** The approval rule that makes the bot's approval required (`trust.approve`). */
export const APPROVAL_RULE_NAME = "trusted-mr-bot";

type StepFn = (what: string, action: SetupAction, detail: string) => void;

/**
 * `trust.approve`: a project approval rule requiring one approval from the bot, so no MR merges before the trusted
 * pipeline passed for its head. Approval rules are Premium; the tier is not readable, so setup asks for the rules
 * and takes "no such route" (CE), 403 or 401 as "not on this tier". Found by name: running setup again changes nothing.
 */
async function approvalRuleStep(port: GitLabPort, project: Project, bot: User, dryRun: boolean, step: StepFn) {
  const what = `approval rule ${APPROVAL_RULE_NAME}`;
  const rules = await port.listApprovalRules(project.id);
  if (rules === undefined) {
    step(
      what,
      "ok",
      "not available on this tier (approval rules need GitLab Premium): the bot's approval is given but gates nothing; merges are gated by the commit status and sticky note only",
    );
    return;
  }
  const rule = rules.find((r) => r.name === APPROVAL_RULE_NAME);
  if (!rule) {
    step(
      what,
      "create",
      `requires 1 approval from @${bot.username}, given once the trusted pipeline passed for the head`,
    );
    if (!dryRun) {
      await port.createApprovalRule(project.id, { name: APPROVAL_RULE_NAME, approvalsRequired: 1, userIds: [bot.id] });
    }
  } else if (rule.approvalsRequired < 1 || !rule.userIds.includes(bot.id)) {
    step(
      what,
      "problem",
      `exists but does not require an approval from @${bot.username}; fix: set its approvers to @${bot.username} only and "Approvals required" to 1`,
    );
  } else if (rule.userIds.length > 1) {
    step(
      what,
      "problem",
      `names other approvers besides @${bot.username}, whose approval would count instead; fix: leave @${bot.username} as its only approver`,
    );
  } else {
    step(what, "ok", `requires an approval from @${bot.username}`);
  }
}

/**
 * `trust.external_status_check` (Ultimate): registers the check the bot answers. GitLab POSTs every MR change to
 * its `external_url`; the bot does not need those calls (it answers from its own pipeline events), so the URL is
 * only where GitLab sends them (the bot's public URL; its receiver refuses them as unsigned).
 */
async function statusCheckStep(
  port: GitLabPort,
  project: Project,
  name: string,
  url: string | undefined,
  dryRun: boolean,
  step: StepFn,
) {
  const what = `external status check ${name}`;
  const checks = await port.listExternalStatusChecks(project.id);
  if (checks === undefined) {
    step(what, "ok", "not available on this tier (external status checks need GitLab Ultimate): nothing to answer");
  } else if (checks.some((c) => c.name === name)) {
    step(what, "ok", "registered; the bot answers it passed or failed for the head as the trusted pipeline ends");
  } else if (!url) {
    step(what, "problem", "no URL to register: set server.public_url or pass --webhook-url");
  } else {
    step(what, "create", `external URL ${url} (GitLab posts MR changes there; the bot does not need them)`);
    if (!dryRun) await port.createExternalStatusCheck(project.id, { name, externalUrl: url });
  }
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

/**
 * What the project's "Minimum role to use pipeline variables" means for the trusted pipeline, as setup reports it.
 * GitLab lets a user set pipeline variables when `restrict_user_defined_variables` is off, or when their role
 * reaches `ci_pipeline_variables_minimum_override_role`; under `no_one_allowed` nobody may
 * (`ProjectCiCdSetting#override_pipeline_variables_allowed?`). Where the bot may, it passes its TRUSTED_* variables;
 * where it may not, it starts the pipeline without them (the port's `createPipeline`), and the CI template needs its
 * input `bot-username` to recognize the bot's pipelines.
 */
export function pipelineVariablesReport(project: Project, botLevel: number, bot: User): string {
  const input = `the CI template's input bot-username: ${bot.username}`;
  const without = `the bot starts trusted pipelines without variables, and the CI template checks them by the bot's user (set ${input})`;
  const withVariables = (why: string) =>
    `${why}, so the bot passes its TRUSTED_* variables (set ${input} as well, in case the setting changes)`;
  const role = project.pipelineVariablesMinimumRole;
  if (project.restrictUserDefinedVariables === false) {
    return withVariables(
      `not restricted (restrict_user_defined_variables is off): anyone who may run a pipeline may set them`,
    );
  }
  switch (role) {
    case "no_one_allowed":
      return `no_one_allowed (GitLab.com's default for new projects): nobody may set pipeline variables, so ${without}`;
    case "developer":
    case "maintainer":
    case "owner": {
      const least = {
        developer: ACCESS_LEVEL.developer,
        maintainer: ACCESS_LEVEL.maintainer,
        owner: ACCESS_LEVEL.owner,
      }[role];
      return botLevel >= least
        ? withVariables(`${role}: @${bot.username} is ${accessLevelName(botLevel)}`)
        : `${role}: more than @${bot.username}'s ${accessLevelName(botLevel)}, so ${without}`;
    }
    case "unknown":
      return `a value this bot does not know (ci_pipeline_variables_minimum_override_role): the bot tries its TRUSTED_* variables, and where GitLab refuses them ${without}`;
    case undefined:
      // Before GitLab 17.1 only `restrict_user_defined_variables` existed: on, it allowed Maintainers and up.
      if (project.restrictUserDefinedVariables === true) {
        return botLevel >= ACCESS_LEVEL.maintainer
          ? withVariables(
              `restricted to Maintainers (GitLab before 17.1): @${bot.username} is ${accessLevelName(botLevel)}`,
            )
          : `restricted to Maintainers (GitLab before 17.1), so ${without}`;
      }
      return `GitLab does not say: the bot tries its TRUSTED_* variables, and where GitLab refuses them ${without}`;
  }
}
