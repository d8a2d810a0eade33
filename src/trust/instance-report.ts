/**
 * What the bot can tell about the GitLab it talks to, and which of its behaviours depend on it: for `setup` and
 * `check-config --gitlab`. Only what the API says is reported; what it does not say is "unknown", never a guess.
 *
 * - Version and edition: `GET /metadata` (15.2+; `GET /version` before) gives the version and whether the build is
 *   Enterprise Edition. The tier (Free, Premium, Ultimate) is not there: an instance's license is visible to
 *   administrators only (`GET /license`), a namespace's plan to its Owners only (`plan` in `GET /namespaces/:id`).
 *   A Community Edition build has the Free features.
 * - Webhook signing: GitLab 19.0 takes a hook's `signing_token` and signs deliveries with it (Standard Webhooks),
 *   behind the `webhook_signing_token` feature flag, on by default (`config/feature_flags/beta/webhook_signing_token.yml`,
 *   `app/services/web_hook_service.rb`). An older instance, or one with the flag off, drops the parameter without a
 *   word (`lib/api/helpers/web_hooks_helpers.rb`), so setup reads the hook back (`signing_token_present`).
 */
import type { Config } from "../config/config.js";
import type { GitLabInstance, GitLabPort, User } from "../gitlab/port.js";

/** The first release that can sign webhooks. */
export const SIGNING_SINCE = { major: 19, minor: 0 } as const;

/**
 * The format GitLab accepts for a signing token: `whsec_` and the base64 of 32 bytes
 * (`WebHooks::Hook::SIGNING_TOKEN_FORMAT`); GitLab refuses any other with a 422.
 */
export const GITLAB_SIGNING_TOKEN_FORMAT = /^whsec_[A-Za-z0-9+/]{43}=$/;

/** How merge requests are gated today: the only mechanism the bot has. */
/**
 * How merges are gated with this configuration on this instance (README "Merge gating"): same-project MRs by the
 * trusted status in their head pipeline ("Pipelines must succeed"), every MR by `/merge-trusted`, and, where
 * configured and the edition has them, the bot's approval (Premium) and an external status check (Ultimate).
 */
export function gatingMechanism(
  trust: Pick<Config["trust"], "approve" | "external_status_check">,
  instance: GitLabInstance | undefined,
): string {
  const parts = [
    'same-project MRs: the trusted status in the MR\'s head pipeline (blocks merging with "Pipelines must succeed")',
    "every MR: /merge-trusted (merges once the trusted pipeline for the head passed)",
  ];
  const ee = instance?.enterprise;
  if (trust.approve)
    parts.push(`the bot's approval${ee === false ? " (not on Community Edition)" : " (Premium and up)"}`);
  if (trust.external_status_check) {
    parts.push(`an external status check${ee === false ? " (not on Community Edition)" : " (Ultimate)"}`);
  }
  return parts.join("; ");
}

/** `major.minor` of a GitLab version string (`19.0.0-ee`, `17.11.2`), or undefined when it is not one. */
export function parseVersion(version: string): { major: number; minor: number } | undefined {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** Whether the instance can sign webhooks: `no` before 19.0, `maybe` from 19.0 (the feature flag decides). */
export function signingSupport(instance: GitLabInstance | undefined): "no" | "maybe" | "unknown" {
  const v = instance ? parseVersion(instance.version) : undefined;
  if (!v) return "unknown";
  const since = v.major > SIGNING_SINCE.major || (v.major === SIGNING_SINCE.major && v.minor >= SIGNING_SINCE.minor);
  return since ? "maybe" : "no";
}

/** The edition as far as the API tells it. */
export function editionOf(instance: GitLabInstance | undefined): string {
  if (!instance || instance.enterprise === undefined) return "edition unknown";
  return instance.enterprise
    ? "Enterprise Edition, tier unknown (the license is visible to administrators only)"
    : "Community Edition (Free features)";
}

/** The instance, or the reason it could not be read (reading it must not stop setup). */
export async function readInstance(port: GitLabPort): Promise<{ instance?: GitLabInstance; error?: string }> {
  try {
    return { instance: await port.instance() };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** One line on the instance: `GitLab 19.0.0 (Community Edition (Free features)), revision abc`. */
export function instanceLine(read: { instance?: GitLabInstance; error?: string }): string {
  if (!read.instance) return `version unknown (${read.error ?? "not read"})`;
  const revision = read.instance.revision ? `, revision ${read.instance.revision}` : "";
  return `GitLab ${read.instance.version} (${editionOf(read.instance)}${revision})`;
}

/**
 * The webhook-signing behaviour, and a problem when the configuration asks for signing the instance cannot give:
 * the receiver would then refuse every delivery (401) and GitLab would disable the hook.
 */
export function signingReport(
  config: Pick<Config, "webhook">,
  instance: GitLabInstance | undefined,
): { line: string; problem?: string } {
  const configured = Boolean(config.webhook.signing_token);
  const support = signingSupport(instance);
  const version = instance?.version ?? "unknown";
  if (support === "no") {
    return configured
      ? { line: "not supported (GitLab signs webhooks from 19.0)", problem: unsupportedSigning(version) }
      : { line: "not supported (GitLab signs webhooks from 19.0); not configured" };
  }
  const can =
    support === "maybe"
      ? "supported (19.0+, unless the webhook_signing_token feature flag is off; setup checks the hook)"
      : "unknown (version unknown; setup checks the hook)";
  return { line: `${can}; ${configured ? "configured (webhook.signing_token)" : "not configured"}` };
}

/** The problem line for a signing token this GitLab will not use. */
export function unsupportedSigning(version: string): string {
  return `this GitLab (version ${version}) does not sign webhooks; unset webhook.signing_token or every delivery will be refused (401) and GitLab will disable the hook`;
}

export interface InstanceReport {
  lines: string[];
  problems: string[];
}

/**
 * `check-config --gitlab`: the instance, the bot's user and the behaviours that depend on them. Pipeline variables
 * are a project setting (`ci_pipeline_variables_minimum_override_role`), so they are reported per project by setup.
 */
export async function describeInstance(
  port: GitLabPort,
  config: Pick<Config, "webhook" | "gitlab" | "trust">,
  /** The URL as printed (credentials masked); default `gitlab.url`. */
  shownUrl = config.gitlab.url,
): Promise<InstanceReport> {
  const bot: User = await port.currentUser();
  const read = await readInstance(port);
  const signing = signingReport(config, read.instance);
  const lines = [
    `GitLab: ${shownUrl}`,
    `version: ${read.instance?.version ?? `unknown (${read.error ?? "not read"})`}`,
    `edition: ${editionOf(read.instance)}`,
    `bot user: @${bot.username} (id ${bot.id})`,
    `webhook signing: ${signing.line}`,
    "pipeline variables: per project (a project setting); see `trusted-mr-bot setup --project <path> --dry-run`",
    `merge gating: ${gatingMechanism(config.trust, read.instance)}`,
  ];
  return { lines, problems: signing.problem ? [`webhook signing: ${signing.problem}`] : [] };
}
