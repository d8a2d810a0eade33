/**
 * Configuration: one YAML file (optional) plus environment overrides, validated once at start and passed in.
 *
 * Every key is documented in README.md ("Configuration reference"); keep the two in step.
 */
import { existsSync, readFileSync } from "node:fs";
import { type ErrorCode, isMap, isScalar, isSeq, parseDocument, type YAMLParseError } from "yaml";
import { z } from "zod";
import { ConfigError } from "../errors.js";

const ACCESS_LEVELS = { guest: 10, planner: 15, reporter: 20, developer: 30, maintainer: 40, owner: 50 } as const;

/** A GitLab access level by name or number (also the per-project policy's, src/trust/policy.ts). */
export const accessLevel = z
  .union([z.enum(Object.keys(ACCESS_LEVELS) as [keyof typeof ACCESS_LEVELS]), z.number().int().min(10).max(50)], {
    error: "one of guest, planner, reporter, developer, maintainer, owner, or a number from 10 to 50",
  })
  .transform((v) => (typeof v === "number" ? v : ACCESS_LEVELS[v]));

/** A committer by username or user id (also the per-project policy's). */
export const committerUser = z.union([
  // GitLab usernames are letters, digits, `_`, `.` and `-`; a leading `@` is accepted and dropped.
  z.string().regex(/^@?[A-Za-z0-9_.-]+$/, "a username such as alice (or @alice) or a numeric user id"),
  z.number().int().positive(),
]);

const byteSize = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)?$/i, "a size such as 25mb")])
  .transform((v) => {
    if (typeof v === "number") return v;
    const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(v)!;
    const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[2] ?? "b").toLowerCase() as "b"];
    return Math.round(Number(m[1]) * unit);
  });

const secret = z.string().min(1);

/** `host:port`, `host` (port 26379) or `[v6]:port`. */
const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+))(?::(\d{1,5}))?$/;
const SENTINEL_PORT = 26379;

/**
 * Sentinel addresses: a list of `host:port` strings or `{host, port}` mappings, or one comma-separated string (as
 * `REDIS_SENTINELS` gives it). The port defaults to Sentinel's 26379.
 */
const sentinelList = z
  .union([
    z.string(),
    z.array(
      z.union([
        z.string(),
        z.strictObject({
          host: z.string().min(1),
          port: z.number().int().min(1).max(65535).default(SENTINEL_PORT),
        }),
      ]),
    ),
  ])
  .transform((value, ctx) => {
    const items = typeof value === "string" ? value.split(",").map((part) => part.trim()) : value;
    const out: Array<{ host: string; port: number }> = [];
    for (const [index, item] of items.entries()) {
      if (typeof item !== "string") {
        out.push(item);
        continue;
      }
      const m = HOST_PORT.exec(item);
      const port = Number(m?.[3] ?? SENTINEL_PORT);
      if (!m || port < 1 || port > 65535) {
        // A list from YAML points at the entry; the env variable is one string.
        ctx.addIssue({
          code: "custom",
          path: typeof value === "string" ? [] : [index],
          message: "Sentinel addresses as host:port (e.g. 10.0.0.5:26379), comma-separated in REDIS_SENTINELS",
        });
      } else {
        out.push({ host: (m[1] ?? m[2])!, port });
      }
    }
    if (items.length === 0) ctx.addIssue({ code: "custom", message: "at least one Sentinel address (host:port)" });
    return out;
  });

export const configSchema = z.strictObject({
  gitlab: z
    .strictObject({
      /** Base URL of the GitLab instance, without /api/v4. */
      url: z.url().default("http://127.0.0.1:3080"),
      /** Token of the bot's own user (api scope). */
      token: secret.optional(),
      /** Per-request timeout towards GitLab. */
      request_timeout_ms: z.number().int().positive().default(15_000),
      /**
       * Requests per minute for all processes together (call-budget.ts); 0 = no limit. Under GitLab.com's ~2000 per
       * minute per user (FACTS.md "Rate limits").
       */
      rate_limit_per_minute: z.number().int().nonnegative().default(1800),
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
      /**
       * How long every delivery's id (Idempotency-Key, or the signed webhook-id) is remembered: an hour covers what
       * arrives twice on its own (a relay's retry, `WebHookWorker`'s Sidekiq retries, a quick manual "Resend"). A
       * later resend of an event that is only a hint (MR, push, pipeline) costs one reconcile that changes nothing
       * (level-triggered); commands are remembered longer, by note (`command_dedup_ttl_seconds`). inbox.ts.
       */
      dedup_ttl_seconds: z.number().int().positive().default(3600),
      /**
       * How long a command note (project, note id, action) is remembered, whatever delivery brought it: 7 days, as
       * far back as GitLab lists a hook's events for a "Resend" (`WebHookLog::MAX_RECENT_DAYS`). inbox.ts.
       */
      command_dedup_ttl_seconds: z.number().int().positive().default(7 * 24 * 3600),
      /** Standard-Webhooks timestamp tolerance. */
      signature_tolerance_seconds: z.number().int().positive().default(300),
    })
    .prefault({}),
  redis: z
    .strictObject({
      /** The Redis; with `sentinels`, only its user name, password and database number are used (src/redis.ts). */
      url: z.string().regex(/^rediss?:\/\//, "a redis:// or rediss:// URL").default("redis://127.0.0.1:6379"),
      /** Key prefix for queues, locks, dedup keys and the audit stream. */
      prefix: z.string().min(1).default("tmr"),
      /** Redis Sentinels to ask for the primary of `sentinel_name`, instead of connecting to `url`'s host. */
      sentinels: sentinelList.optional(),
      /** The Sentinels' name for the primary (`sentinel monitor <name> ...`). */
      sentinel_name: z.string().min(1).default("mymaster"),
      /** `requirepass` of the Sentinels, when they have one (the data nodes' password is `url`'s). */
      sentinel_password: secret.optional(),
      /**
       * Replicas that must confirm a delivery before the receiver acknowledges it (`WAIT`). Unset: 1 with
       * `sentinels`, else 0. See "Scaling" in README.md.
       */
      wait_replicas: z.number().int().min(0).optional(),
    })
    .superRefine((redis, ctx) => {
      if (redis.sentinels && redis.url.startsWith("rediss://")) {
        ctx.addIssue({
          code: "custom",
          path: ["url"],
          message: "TLS (rediss://) is not supported with redis.sentinels; use a redis:// URL",
        });
      }
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
      /**
       * Extra committers regardless of access level, by username or user id. Usernames are resolved to ids once per
       * process (src/trust/committers.ts): a user who later takes over a freed username does not become a committer.
       */
      committer_users: z.array(committerUser).default([]),
      /** Extra committers: members (inherited counts) of these groups, by full path or id. */
      committer_groups: z.array(z.union([z.string().min(1), z.number().int()])).default([]),
      /** Minimum access level (inherited counts) in a `committer_groups` group that makes its member a committer. */
      committer_group_access_level: accessLevel.default(30),
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
      /** The welcome sentence for first-time contributors instead of the built-in one; shown as plain text. */
      welcome_text: z.string().min(1).max(1000).optional(),
      /**
       * Per-project policy (`.gitlab/trusted-mr-bot.yml` on a protected default branch, src/trust/policy.ts). Whoever
       * can write a protected default branch already runs code with the project's protected variables, so letting
       * them add committers there gives nothing new; `false` keeps every project on these settings. `cache_seconds`:
       * how long a read is used before the file is read again (pushes that touch it and the sweep read it at once).
       */
      project_policy: z
        .strictObject({
          enabled: z.boolean().default(true),
          cache_seconds: z.number().int().min(0).default(3600),
        })
        .prefault({}),
      /**
       * A bare `/trust` is refused: committers must name the SHA they reviewed (`/trust <sha>`: 40 hex, or at least
       * 12 that the note's payload also saw as the head), which closes the window between reading a diff and
       * commenting (docs/security.md).
       */
      require_sha: z.boolean().default(false),
      /**
       * Premium: the bot approves the MR (`sha` = the trusted head) once the trusted pipeline for the head passed,
       * and withdraws its approval when trust goes stale, is revoked or the pipeline fails. An approval rule that
       * requires the bot (`setup` creates one) then gates every MR, fork MRs included (docs/trust-workflow.md).
       */
      approve: z.boolean().default(false),
      /**
       * Ultimate: the bot answers the project's external status check (`name`, registered by `setup`) with passed or
       * failed for the head SHA as the trusted pipeline ends. `true` means the name `trusted-mr-bot`.
       */
      external_status_check: z
        .union([z.boolean(), z.strictObject({ name: z.string().min(1).default("trusted-mr-bot") })])
        .default(false),
      /**
       * Labels that mirror the trust state of each open MR (one at a time), so GitLab's own MR list filter shows
       * "waiting for a committer" across a group. Plain labels: the `::` needs no Premium (scoped labels only add
       * GitLab's mutual exclusivity, which the bot keeps itself).
       */
      state_labels: z
        .strictObject({
          enabled: z.boolean().default(true),
          waiting: z.string().min(1).default("trust::waiting"),
          trusted: z.string().min(1).default("trust::trusted"),
          stale: z.string().min(1).default("trust::stale"),
          failed: z.string().min(1).default("trust::failed"),
        })
        .prefault({}),
    })
    .prefault({}),
  sweep: z
    .strictObject({
      /** Seconds between sweeps in `serve`/`worker`; 0 turns the periodic sweep off. */
      interval_seconds: z.number().int().min(0).default(900),
      /** A trusted branch whose MR is merged, closed or gone is deleted only after this long. */
      grace_seconds: z.number().int().min(0).default(3600),
      /**
       * Every open MR gets a full look (every read again, whatever the cache says) about this often, spread over
       * the passes: each pass verifies the `N × interval_seconds / verify_interval_seconds` MRs verified longest ago.
       */
      verify_interval_seconds: z.number().int().min(60).default(2 * 24 * 3600),
      /**
       * Projects (full path or id) the sweep covers. Empty: every project the bot's user is a Maintainer of
       * (`GET /projects?membership=true&min_access_level=40`).
       */
      projects: z.array(z.union([z.string().min(1), z.number().int().positive()])).default([]),
    })
    .prefault({}),
  scope: z
    .strictObject({
      /**
       * Projects (full path or id) the bot serves; with `groups`, empty both: every project whose webhook reaches it.
       * A webhook from any other project is answered 2xx "not served" without a GitLab call (route-event.ts).
       */
      projects: z.array(z.union([z.string().min(1), z.number().int().positive()])).default([]),
      /**
       * Groups (full path) whose projects, subgroups' included, the bot serves. Paths only: a webhook payload names
       * its project's path but no group id (`Project#hook_attrs`), and routing decides from the payload alone.
       */
      groups: z
        .array(z.string().regex(/^[^/\s]+(\/[^/\s]+)*$/, "a group's full path such as acme/platform"))
        .default([]),
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
    { env: "REDIS_SENTINELS", path: ["redis", "sentinels"], type: "string" },
    { env: "REDIS_SENTINEL_NAME", path: ["redis", "sentinel_name"], type: "string" },
    { env: "REDIS_SENTINEL_PASSWORD", path: ["redis", "sentinel_password"], type: "string" },
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
    raw = parseConfigYaml(path, text);
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
    const hide = secretRedactor(merged);
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.join(".") || "(top level)";
      const envName = ENV_OVERRIDES.find((o) => o.path.join(".") === key)?.env;
      const from = envName && env[envName] ? `env ${envName}` : source;
      if (issue.code === "unrecognized_keys") {
        const where = issue.path.length ? `${issue.path.join(".")}.` : "";
        return `${issue.keys.map((k) => where + k).join(", ")} (${from}): unknown key; see the configuration reference in README.md`;
      }
      // Messages name what is expected, not what was given; a custom one might, so secret values are cut out.
      return `${key} (${from}): ${hide(issue.message)}`;
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
    if (key && isSecretKey(key)) return value === undefined ? undefined : MASK;
    // Any URL, not only keys named `url`: `server.public_url` or a list of Sentinel URLs carry credentials alike.
    if (typeof value === "string" && URL_LIKE.test(value)) return maskUrl(value);
    if (Array.isArray(value)) return value.map((v) => mask(v));
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(v, k)]));
    }
    return value;
  };
  return mask(config);
}

const MASK = "********";

const URL_LIKE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * Query (and fragment) parameters whose value is a credential, by name: `password`, `private_token`,
 * `access_token`, `client_secret`, `api_key`, `X-Amz-Signature`, `auth`, ... Masking a harmless one costs nothing.
 */
const SECRET_PARAM = /pass|pwd|token|secret|key|auth|cred|sig|session/i;

/** A config key whose value is a secret: the known ones, and any later `*_token`, `*_secret` or `*_password`. */
function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key) || /(^|_)(token|secret|password)$/.test(key);
}

/**
 * A URL fit to print: the password of the userinfo (`redis://:pw@host`) and the values of secret-looking query and
 * fragment parameters (`?password=pw`, `#access_token=...`) masked. A user name alone is masked too, since
 * `https://<token>@host` is a common way to put a token into a URL. A string that does not parse as a URL is masked
 * whole after its scheme: nothing tells where its secrets are.
 */
export function maskUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${URL_LIKE.exec(url)?.[0] ?? ""}${MASK}`;
  }
  const search = maskParams(u.search);
  const hash = maskParams(u.hash);
  // Printed as written when there is nothing to mask (`URL` would add a trailing slash, re-encode, ...).
  if (!u.password && !u.username && search === u.search && hash === u.hash) return url;
  if (u.password) u.password = MASK;
  else if (u.username) u.username = MASK;
  u.search = search;
  u.hash = hash;
  return u.toString();
}

/** `?a=1&password=x` → `?a=1&password=********`; also for a `#...` fragment. Other text is left as written. */
function maskParams(part: string): string {
  if (part.length < 2) return part;
  const pairs = part
    .slice(1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      return eq > 0 && SECRET_PARAM.test(decodeLoosely(pair.slice(0, eq))) ? `${pair.slice(0, eq + 1)}${MASK}` : pair;
    });
  return `${part[0]}${pairs.join("&")}`;
}

function decodeLoosely(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    return text;
  }
}

/**
 * Cuts the secrets of the raw (unvalidated) input out of a message: values under secret keys, and the userinfo and
 * secret parameter values of every URL, as written and decoded. Values shorter than 4 characters are left alone;
 * cutting every "a" out of a message would hide the message, not a secret.
 */
function secretRedactor(input: unknown): (text: string) => string {
  const secrets = new Set<string>();
  const add = (value: string) => {
    for (const v of [value, decodeLoosely(value)]) if (v.length >= 4) secrets.add(v);
  };
  const collect = (value: unknown, secret: boolean): void => {
    if (Array.isArray(value)) {
      for (const v of value) collect(v, secret);
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) collect(v, secret || isSecretKey(k));
    } else if (secret && value !== undefined && value !== null) {
      add(String(value));
    } else if (typeof value === "string" && URL_LIKE.test(value)) {
      const userinfo = /^[^:]+:\/\/([^/?#]*)@/.exec(value)?.[1];
      if (userinfo) for (const part of [userinfo, ...userinfo.split(":")]) add(part);
      for (const [, name, v] of value.matchAll(/[?&#;]([^=&#;]+)=([^&#;]*)/g)) {
        if (SECRET_PARAM.test(decodeLoosely(name!))) add(v!);
      }
    }
  };
  collect(input, false);
  const longestFirst = [...secrets].sort((a, b) => b.length - a.length);
  return (text) => longestFirst.reduce((out, secret) => out.replaceAll(secret, MASK), text);
}

/**
 * The file's YAML as plain data. The yaml package's messages quote the offending lines (a code frame), and a line
 * of this file may hold a token (a stray quote in `token: "glpat-...` is a typical syntax error), so the message is
 * rebuilt from the error's code, position and the config key it is in. The original error is not kept as `cause`:
 * whatever prints a cause would print the frame. Warnings (an unknown `!tag`) carry the same frame and are dropped
 * rather than emitted as process warnings; the schema judges the values.
 */
function parseConfigYaml(path: string, text: string): unknown {
  const doc = parseDocument(text);
  const error = doc.errors[0];
  if (error) {
    const more = doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more)` : "";
    throw new ConfigError(`config file ${path} is not valid YAML: ${describeYamlError(error, doc.contents)}${more}`);
  }
  try {
    return doc.toJS() ?? {};
  } catch {
    // Aliases the document cannot resolve, or so many that they look like a billion-laughs file.
    throw new ConfigError(`config file ${path} is not valid YAML: an alias (*name) cannot be resolved`);
  }
}

/** What went wrong, in words that quote nothing from the file; see {@link parseConfigYaml}. */
const YAML_PROBLEMS: Record<ErrorCode, string> = {
  ALIAS_PROPS: "an alias (*name) cannot have an anchor or a tag",
  BAD_ALIAS: "an alias (*name) is malformed",
  BAD_COLLECTION_TYPE: "a tag is used on the wrong kind of value",
  BAD_DIRECTIVE: "a % directive is malformed",
  BAD_DQ_ESCAPE: "a double-quoted value has an invalid escape sequence; use single quotes",
  BAD_INDENT: "wrong indentation, or a [ or { that is not closed",
  BAD_PROP_ORDER: "an anchor or a tag is in the wrong place",
  BAD_SCALAR_START: "a value starts with a reserved character (@ or `); quote it",
  BLOCK_AS_IMPLICIT_KEY:
    'a nested mapping where a value was expected; check the indentation, or quote a value with ": "',
  BLOCK_IN_FLOW: "a block value inside [ ] or { }",
  DUPLICATE_KEY: "a key appears twice in one mapping",
  IMPOSSIBLE: "the parser cannot read this",
  KEY_OVER_1024_CHARS: "a key is longer than 1024 characters",
  MISSING_CHAR: "a closing quote or bracket, a comma, or the space after a colon is missing",
  MULTILINE_IMPLICIT_KEY: "a key runs over several lines; an unclosed quote or a missing colon?",
  MULTIPLE_ANCHORS: "a value has more than one anchor",
  MULTIPLE_DOCS: "the file holds more than one YAML document (---); keep one",
  MULTIPLE_TAGS: "a value has more than one tag",
  NON_STRING_KEY: "a key is not a plain string",
  RESOURCE_EXHAUSTION: "the document expands to too much data",
  TAB_AS_INDENT: "tabs are not allowed as indentation; use spaces",
  TAG_RESOLVE_FAILED: "a tag (!name) is unknown",
  UNEXPECTED_TOKEN: "an unexpected character",
};

function describeYamlError(error: YAMLParseError, contents: unknown): string {
  const where = error.linePos
    ? `line ${error.linePos[0].line}, column ${error.linePos[0].col}`
    : `offset ${error.pos[0]}`;
  const key = configKeyAt(contents, error.pos[0]);
  const what = YAML_PROBLEMS[error.code] ?? `a syntax error (${error.code})`;
  return `${where}${key ? ` (in ${key})` : ""}: ${what}; the line is not shown, as it may hold a secret`;
}

/**
 * The config key (`gitlab.token`) whose entry spans `offset` in the parsed (possibly broken) document. Only names
 * the schema knows are given: in a broken file a value can end up parsed as a key.
 */
function configKeyAt(contents: unknown, offset: number): string | undefined {
  const entryAt = (node: unknown, known: readonly string[]) => {
    if (!isMap(node)) return undefined;
    for (const pair of node.items) {
      if (!isScalar(pair.key) || !pair.key.range) continue;
      const value = pair.value;
      const end = (isMap(value) || isSeq(value) || isScalar(value) ? value.range?.[2] : undefined) ?? pair.key.range[2];
      if (offset < pair.key.range[0] || offset > end) continue;
      const name = String(pair.key.value);
      return known.includes(name) ? { name, value } : undefined;
    }
    return undefined;
  };
  const sections = configSchema.shape;
  const section = entryAt(contents, Object.keys(sections));
  if (!section) return undefined;
  const keys = Object.keys(sections[section.name as keyof typeof sections].unwrap().shape);
  const key = entryAt(section.value, keys);
  return key ? `${section.name}.${key.name}` : section.name;
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
