/**
 * Configuration: one YAML file (optional) plus environment overrides, validated once at start and passed in.
 *
 * Every key is documented in README.md ("Configuration reference"); keep the two in step.
 */
import { existsSync, readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ConfigError } from "../errors.js";

const ACCESS_LEVELS = { guest: 10, planner: 15, reporter: 20, developer: 30, maintainer: 40, owner: 50 } as const;

const accessLevel = z
  .union([z.enum(Object.keys(ACCESS_LEVELS) as [keyof typeof ACCESS_LEVELS]), z.number().int().min(10).max(50)], {
    error: "one of guest, planner, reporter, developer, maintainer, owner, or a number from 10 to 50",
  })
  .transform((v) => (typeof v === "number" ? v : ACCESS_LEVELS[v]));

const byteSize = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)?$/i, "a size such as 25mb")])
  .transform((v) => {
    if (typeof v === "number") return v;
    const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(v)!;
    const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[2] ?? "b").toLowerCase() as "b"];
    return Math.round(Number(m[1]) * unit);
  });

const secret = z.string().min(1);

export const configSchema = z.strictObject({
  gitlab: z
    .strictObject({
      /** Base URL of the GitLab instance, without /api/v4. */
      url: z.url().default("http://127.0.0.1:3080"),
      /** Token of the bot's own user (api scope). */
      token: secret.optional(),
      /** Per-request timeout towards GitLab. */
      request_timeout_ms: z.number().int().positive().default(15_000),
    })
    .prefault({}),
  webhook: z
    .strictObject({
      /** The project hook's secret token (`X-Gitlab-Token`). */
      secret: secret.optional(),
      /** `whsec_<base64>`: also verify GitLab's Standard-Webhooks signature. */
      signing_token: z.string().startsWith("whsec_", "a whsec_<base64> signing token").optional(),
      /** Optional shared secret of a relay that adds a `X-Hub-Signature-256: sha256=<hex>` header. */
      relay_signature_secret: secret.optional(),
      /** Accept webhooks without any secret. Only for local experiments. */
      insecure: z.boolean().default(false),
      body_limit: byteSize.default(25 * 1024 * 1024),
      /** How long a delivery's Idempotency-Key is remembered. */
      dedup_ttl_seconds: z.number().int().positive().default(7 * 24 * 3600),
      /** Standard-Webhooks timestamp tolerance. */
      signature_tolerance_seconds: z.number().int().positive().default(300),
    })
    .prefault({}),
  redis: z
    .strictObject({
      url: z.string().regex(/^rediss?:\/\//, "a redis:// or rediss:// URL").default("redis://127.0.0.1:6379"),
      /** Key prefix for queues, locks, dedup keys and the audit stream. */
      prefix: z.string().min(1).default("tmr"),
    })
    .prefault({}),
  server: z
    .strictObject({
      host: z.string().default("0.0.0.0"),
      port: z.number().int().min(0).max(65535).default(8080),
      /** The URL GitLab sends webhooks to (what `setup` registers as the project hook), e.g. https://bot.example.com/webhook. */
      public_url: z.url().optional(),
    })
    .prefault({}),
  worker: z
    .strictObject({
      concurrency: z.number().int().min(1).max(256).default(4),
      /** Attempts for a job whose failures are transient. */
      attempts: z.number().int().min(1).default(10),
      backoff_base_ms: z.number().int().positive().default(1000),
      backoff_max_ms: z.number().int().positive().default(5 * 60_000),
      /** Per-MR lock lifetime; renewed while the job runs. */
      mr_lock_ttl_ms: z.number().int().positive().default(30_000),
      /** SIGTERM: how long active jobs may take to finish before the process exits anyway. */
      shutdown_timeout_ms: z.number().int().positive().default(25_000),
    })
    .prefault({}),
  trust: z
    .strictObject({
      /** Minimum effective access level in the target project that makes someone a committer. */
      committer_access_level: accessLevel.default(40),
      /** Extra committers by username, regardless of access level. */
      committer_users: z.array(z.string().min(1)).default([]),
      /** Extra committers: members (inherited counts) of these groups, by full path or id. */
      committer_groups: z.array(z.union([z.string().min(1), z.number().int()])).default([]),
      branch_prefix: z
        .string()
        .min(1)
        // The same characters the CI template accepts for its `trusted-branch-prefix` input.
        .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, "a branch-name prefix of letters, digits, _ and -, such as trusted-")
        .default("trusted-"),
      status_name: z.string().min(1).default("trusted-pipeline"),
      /** Cancel running trusted pipelines when new commits make their SHA stale. */
      cancel_stale_pipelines: z.boolean().default(true),
      /** Label put on MRs from committer branches. */
      committer_branch_label: z.string().min(1).default("no-detached-pipeline"),
      welcome_first_time_contributors: z.boolean().default(true),
    })
    .prefault({}),
  sweep: z
    .strictObject({
      /** Seconds between sweeps in `serve`/`worker`; 0 turns the periodic sweep off. */
      interval_seconds: z.number().int().min(0).default(900),
      /** A trusted branch whose MR is merged, closed or gone is deleted only after this long. */
      grace_seconds: z.number().int().min(0).default(3600),
      /**
       * Projects (full path or id) the sweep covers. Empty: every project the bot's user is a Maintainer of
       * (`GET /projects?membership=true&min_access_level=40`).
       */
      projects: z.array(z.union([z.string().min(1), z.number().int().positive()])).default([]),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;

/** Environment variables that override file keys. */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: readonly [string, string]; type: "string" | "int" }> =
  [
    { env: "GITLAB_URL", path: ["gitlab", "url"], type: "string" },
    { env: "GITLAB_TOKEN", path: ["gitlab", "token"], type: "string" },
    { env: "GITLAB_WEBHOOK_SECRET", path: ["webhook", "secret"], type: "string" },
    { env: "GITLAB_WEBHOOK_SIGNING_TOKEN", path: ["webhook", "signing_token"], type: "string" },
    { env: "REDIS_URL", path: ["redis", "url"], type: "string" },
    { env: "PORT", path: ["server", "port"], type: "int" },
  ];

const SECRET_KEYS = new Set(["token", "secret", "signing_token", "relay_signature_secret"]);

export const DEFAULT_CONFIG_PATH = "./trusted-mr-bot.yml";

export interface LoadOptions {
  /** `--config` value; falls back to `TMR_CONFIG`, then `./trusted-mr-bot.yml` if it exists. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  /** Values layered over the file and under the environment (used by `demo` and tests). */
  defaults?: Record<string, unknown>;
}

export interface LoadedConfig {
  config: Config;
  /** Where the values came from, for messages: the file path or "(no file)". */
  source: string;
}

/** Load, merge and validate. Throws {@link ConfigError} naming the key, the source and what is expected. */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const explicit = options.path ?? env["TMR_CONFIG"];
  const path = explicit ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  let raw: unknown = {};
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (cause) {
      throw new ConfigError(`cannot read config file ${path}: ${(cause as Error).message}`, { cause });
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (cause) {
      throw new ConfigError(`config file ${path} is not valid YAML: ${(cause as Error).message}`, { cause });
    }
    if (typeof raw !== "object" || Array.isArray(raw)) {
      throw new ConfigError(`config file ${path}: expected a mapping of sections (gitlab, webhook, redis, ...)`);
    }
  }
  const merged = deepMerge(structuredClone(options.defaults ?? {}), raw as Record<string, unknown>);
  const source = path ?? "(no file)";
  for (const o of ENV_OVERRIDES) {
    const value = env[o.env];
    if (value === undefined || value === "") continue;
    let parsed: string | number = value;
    if (o.type === "int") {
      parsed = Number(value);
      if (!Number.isInteger(parsed)) throw new ConfigError(`${o.env}: expected an integer, got "${value}"`);
    }
    const [section, key] = o.path;
    merged[section] ??= {};
    (merged[section] as Record<string, unknown>)[key] = parsed;
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.join(".") || "(top level)";
      const envName = ENV_OVERRIDES.find((o) => o.path.join(".") === key)?.env;
      const from = envName && env[envName] ? `env ${envName}` : source;
      if (issue.code === "unrecognized_keys") {
        const where = issue.path.length ? `${issue.path.join(".")}.` : "";
        return `${issue.keys.map((k) => where + k).join(", ")} (${from}): unknown key; see the configuration reference in README.md`;
      }
      return `${key} (${from}): ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  return { config: result.data, source };
}

/** Checks that need the role: the receiver needs a secret unless `insecure`, anything that calls GitLab a token. */
export function requireFor(config: Config, role: { receiver?: boolean; gitlab?: boolean }, source: string): void {
  const problems: string[] = [];
  if (role.receiver && !config.webhook.secret && !config.webhook.insecure) {
    problems.push(
      `webhook.secret (${source} or env GITLAB_WEBHOOK_SECRET): required to verify X-Gitlab-Token; set webhook.insecure: true only for local experiments`,
    );
  }
  if (role.gitlab && !config.gitlab.token) {
    problems.push(`gitlab.token (${source} or env GITLAB_TOKEN): required; a token of the bot's user with api scope`);
  }
  if (problems.length) throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
}

/** The effective config with every secret replaced by a mask, for `check-config` and logs. */
export function maskSecrets(config: Config): unknown {
  const mask = (value: unknown, key?: string): unknown => {
    if (key && SECRET_KEYS.has(key)) return value === undefined ? undefined : "********";
    if (key === "url" && typeof value === "string") return maskUrlPassword(value);
    if (Array.isArray(value)) return value.map((v) => mask(v));
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(v, k)]));
    }
    return value;
  };
  return mask(config);
}

function maskUrlPassword(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = "********";
    return u.toString();
  } catch {
    return url;
  }
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(over)) {
    const b = base[k];
    if (v && typeof v === "object" && !Array.isArray(v) && b && typeof b === "object" && !Array.isArray(b)) {
      base[k] = deepMerge(b as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      base[k] = v;
    }
  }
  return base;
}
