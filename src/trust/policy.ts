/**
 * Per-project policy: `.gitlab/trusted-mr-bot.yml` on the project's default branch, read through GitLab's API,
 * validated like the server config, merged over `trust` with the server as the floor, cached in Redis.
 *
 * Who wrote the bytes a decision reads (docs/security.md):
 * - Only the **default branch** counts, as the API names it (`GET /projects/:id` `default_branch`), read at the
 *   commit the API gives for that branch (`GET .../branches/:name`), never at a name or SHA from a webhook payload
 *   and never from an MR's source branch or source project (a fork supplies nothing).
 * - Only a **protected** default branch counts. Whoever can push or merge into a protected branch already runs code
 *   with the project's protected variables and runners (FACTS.md), which is what a committer hands out, so letting
 *   them name committers gives them nothing new. On an unprotected default branch any Developer could write the
 *   file; there it is ignored, and the sticky note says so.
 * - The server config is the floor for what protects the project: committer lists add to the server's, access
 *   levels can only be raised, `require_sha` can only be turned on. A file that tries to loosen one of these is
 *   invalid as a whole, and an invalid file changes nothing: the server's settings apply and the note says why
 *   (the file and the key, never the file's contents).
 *
 * Reads: a missing file (404) is no policy. A read that fails (5xx, 429, a timeout) keeps the last policy read
 * (Redis keeps it for {@link KEEP_SECONDS}), or the server's settings when there is none, and is tried again after
 * {@link RETRY_MS}: an outage is never taken for "no file".
 */
import { parseDocument } from "yaml";
import { z } from "zod";
import { accessLevel, type Config, committerUser } from "../config/config.js";
import type { GitLabPort } from "../gitlab/port.js";
import type { Logger } from "../logger.js";
import type { Redis } from "../redis.js";
import { accessLevelName } from "./authorize.js";

/** Where a project keeps its policy, on its default branch. */
export const POLICY_PATH = ".gitlab/trusted-mr-bot.yml";

/** Policy files larger than this are invalid (a policy is a few lines). */
export const MAX_POLICY_BYTES = 64 * 1024;

/** How long Redis keeps the last policy read, as the fallback while GitLab does not answer. */
export const KEEP_SECONDS = 7 * 24 * 3600;

/** After a failed read, the same process asks again only after this long (the last policy read is used meanwhile). */
export const RETRY_MS = 60_000;

export type TrustSettings = Config["trust"];

const label = z.string().min(1, "a label name").max(255, "a label name of at most 255 characters");

/** The file's keys: the server's `trust` key names, for the settings a project may set (README "Per-project policy"). */
export const policySchema = z.strictObject({
  committer_users: z.array(committerUser, { error: "a list of usernames or user ids" }).optional(),
  committer_groups: z
    .array(z.union([z.string().min(1), z.number().int().positive()]), { error: "a list of group paths or ids" })
    .optional(),
  committer_access_level: accessLevel.optional(),
  committer_group_access_level: accessLevel.optional(),
  require_sha: z.boolean({ error: "true or false" }).optional(),
  cancel_stale_pipelines: z.boolean({ error: "true or false" }).optional(),
  welcome_first_time_contributors: z.boolean({ error: "true or false" }).optional(),
  welcome_text: z.string().min(1, "a sentence").max(1000, "at most 1000 characters").optional(),
  committer_branch_label: label.optional(),
  state_labels: z
    .strictObject({
      enabled: z.boolean({ error: "true or false" }).optional(),
      waiting: label.optional(),
      trusted: label.optional(),
      stale: label.optional(),
      failed: label.optional(),
    })
    .optional(),
});

export type ProjectPolicy = z.infer<typeof policySchema>;

/** What a project's policy file amounts to. `problem` is a short sentence built from key names only. */
export type PolicyOutcome =
  | { kind: "none" }
  | { kind: "valid"; policy: ProjectPolicy }
  | { kind: "invalid"; problem: string };

/**
 * Parses and validates the file against the server's settings. Problems name the key and say what is expected;
 * nothing from the file is quoted (an unknown key is named by where it is, not by what it is called).
 */
export function parsePolicy(text: string, server: TrustSettings): PolicyOutcome {
  if (Buffer.byteLength(text, "utf8") > MAX_POLICY_BYTES) {
    return { kind: "invalid", problem: `the file is larger than ${MAX_POLICY_BYTES / 1024} KiB` };
  }
  const doc = parseDocument(text);
  const error = doc.errors[0];
  if (error) {
    const where = error.linePos ? `line ${error.linePos[0].line}, column ${error.linePos[0].col}` : "the file";
    return { kind: "invalid", problem: `it is not valid YAML (${where})` };
  }
  let raw: unknown;
  try {
    raw = doc.toJS() ?? {};
  } catch {
    return { kind: "invalid", problem: "it is not valid YAML (an alias cannot be resolved)" };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { kind: "invalid", problem: "it must be a mapping of keys such as committer_users and require_sha" };
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      return { kind: "invalid", problem: `${at ? `${at}: ` : ""}an unknown key (see the README's per-project keys)` };
    }
    return { kind: "invalid", problem: `${at || "the file"}: ${issue.message}` };
  }
  const loosened = loosening(parsed.data, server);
  return loosened ? { kind: "invalid", problem: loosened } : { kind: "valid", policy: parsed.data };
}

/** Why the policy would loosen what the server sets as the floor, or `undefined`. */
function loosening(policy: ProjectPolicy, server: TrustSettings): string | undefined {
  if (policy.require_sha === false && server.require_sha) {
    return "require_sha: the server requires a SHA with /trust; a project can only turn it on";
  }
  if (policy.committer_access_level !== undefined && policy.committer_access_level < server.committer_access_level) {
    return `committer_access_level: below the server's ${accessLevelName(server.committer_access_level)}; a project can only raise it`;
  }
  const groupLevel = policy.committer_group_access_level;
  if (groupLevel !== undefined && groupLevel < server.committer_group_access_level) {
    return `committer_group_access_level: below the server's ${accessLevelName(server.committer_group_access_level)}; a project can only raise it`;
  }
  return undefined;
}

/** The server's `trust` settings with a valid policy over them (lists add, levels and `require_sha` only tighten). */
export function mergePolicy(server: TrustSettings, policy: ProjectPolicy): TrustSettings {
  const union = <T>(a: readonly T[], b: readonly T[] | undefined) => [...new Set([...a, ...(b ?? [])])];
  return {
    ...server,
    committer_users: union(server.committer_users, policy.committer_users),
    committer_groups: union(server.committer_groups, policy.committer_groups),
    committer_access_level: Math.max(server.committer_access_level, policy.committer_access_level ?? 0),
    committer_group_access_level: Math.max(
      server.committer_group_access_level,
      policy.committer_group_access_level ?? 0,
    ),
    require_sha: server.require_sha || policy.require_sha === true,
    cancel_stale_pipelines: policy.cancel_stale_pipelines ?? server.cancel_stale_pipelines,
    welcome_first_time_contributors: policy.welcome_first_time_contributors ?? server.welcome_first_time_contributors,
    ...(policy.welcome_text !== undefined || server.welcome_text !== undefined
      ? { welcome_text: (policy.welcome_text ?? server.welcome_text)! }
      : {}),
    committer_branch_label: policy.committer_branch_label ?? server.committer_branch_label,
    state_labels: { ...server.state_labels, ...stripUndefined(policy.state_labels ?? {}) },
  };
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}

/** The settings for one project, and the sentence the sticky note shows when its policy file is not used. */
export interface EffectiveTrust {
  trust: TrustSettings;
  problem?: string;
}

/** What Redis keeps per project: the file as read (or its absence) at a commit of the default branch. */
const cachedSchema = z.object({
  v: z.literal(1),
  /** When it was read (ms). */
  at: z.number(),
  /** The default branch and its head when read. */
  branch: z.string().nullable(),
  sha: z.string().nullable(),
  protected: z.boolean(),
  /** The file's text; `null`: no file. */
  text: z.string().nullable(),
});
type Cached = z.infer<typeof cachedSchema>;

export interface PoliciesDeps {
  port: Pick<GitLabPort, "getProject" | "getBranch" | "getRepositoryFile">;
  config: Config;
  redis: Redis;
  logger: Logger;
  now?: () => number;
}

/**
 * The per-project policies of one worker process, cached in Redis (shared by all processes). With
 * `trust.project_policy.enabled: false` every project gets the server's settings and nothing is read.
 */
export class Policies {
  private readonly deps: PoliciesDeps;
  private readonly now: () => number;
  /** Projects whose last read failed, and when it may be tried again (ms). */
  private readonly retryAt = new Map<number, number>();

  constructor(deps: PoliciesDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.deps.config.trust.project_policy.enabled;
  }

  private key(projectId: number): string {
    return `${this.deps.config.redis.prefix}:policy:${projectId}`;
  }

  /**
   * The settings for `projectId`: from the cached read while it is younger than `trust.project_policy.cache_seconds`,
   * else read again. A read that fails keeps the last read (or the server's settings) and logs why.
   */
  async effective(projectId: number): Promise<EffectiveTrust> {
    const server = this.deps.config.trust;
    if (!this.enabled) return { trust: server };
    let cached = await this.cached(projectId);
    const fresh = cached && this.now() - cached.at < server.project_policy.cache_seconds * 1000;
    if (!fresh && this.now() >= (this.retryAt.get(projectId) ?? 0)) {
      try {
        cached = await this.read(projectId, cached);
      } catch (error) {
        this.retryAt.set(projectId, this.now() + RETRY_MS);
        this.deps.logger.warn(
          {
            projectId,
            err: (error as Error).message,
            using: cached ? "the last policy read" : "the server's settings",
          },
          `${POLICY_PATH}: could not be read; trying again later`,
        );
      }
    }
    return cached ? this.apply(projectId, cached) : { trust: server };
  }

  /** Reads the project's policy again now (a push that touched the file, the sweep). Throws when GitLab fails. */
  async refresh(projectId: number): Promise<void> {
    if (!this.enabled) return;
    await this.read(projectId, await this.cached(projectId));
  }

  private async cached(projectId: number): Promise<Cached | undefined> {
    const raw = await this.deps.redis.get(this.key(projectId));
    if (raw === null) return undefined;
    try {
      const parsed = cachedSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The API's default branch, its protection and head, then the file at that head (skipped when the head is the one
   * read last time). Nothing a webhook said is used.
   */
  private async read(projectId: number, previous: Cached | undefined): Promise<Cached> {
    const { port } = this.deps;
    const project = await port.getProject(projectId);
    const branchName = project?.defaultBranch || null;
    const branch = branchName ? await port.getBranch(projectId, branchName) : undefined;
    let text: string | null = null;
    if (branch && previous && previous.branch === branchName && previous.sha === branch.sha) {
      text = previous.text;
    } else if (branch) {
      text = (await port.getRepositoryFile(projectId, POLICY_PATH, branch.sha)) ?? null;
    }
    const next: Cached = {
      v: 1,
      at: this.now(),
      branch: branchName,
      sha: branch?.sha ?? null,
      protected: branch?.protected ?? false,
      text,
    };
    await this.deps.redis.set(this.key(projectId), JSON.stringify(next), "EX", KEEP_SECONDS);
    this.retryAt.delete(projectId);
    if (previous?.text !== next.text || previous?.protected !== next.protected) {
      const outcome = this.apply(projectId, next);
      this.deps.logger.info(
        { projectId, branch: branchName, sha: next.sha, problem: outcome.problem },
        next.text === null ? `${POLICY_PATH}: none` : `${POLICY_PATH}: read`,
      );
    }
    return next;
  }

  private apply(projectId: number, cached: Cached): EffectiveTrust {
    const server = this.deps.config.trust;
    if (cached.text === null) return { trust: server };
    if (!cached.protected) {
      return {
        trust: server,
        problem: "the default branch is not protected, so people who cannot run protected pipelines could write it",
      };
    }
    const outcome = parsePolicy(cached.text, server);
    if (outcome.kind === "none") return { trust: server };
    if (outcome.kind === "invalid") {
      this.deps.logger.debug({ projectId, problem: outcome.problem }, `${POLICY_PATH}: invalid`);
      return { trust: server, problem: outcome.problem };
    }
    return { trust: mergePolicy(server, outcome.policy) };
  }
}

/**
 * Whether a push hook's commits may have touched the policy file: one of them added, modified or removed it, or
 * the hook lists fewer commits than were pushed (GitLab lists at most 20, `total_commits_count` says how many).
 */
export function pushTouchesPolicy(
  commits: ReadonlyArray<{ added?: readonly string[]; modified?: readonly string[]; removed?: readonly string[] }>,
  totalCommits: number | undefined,
): boolean {
  if (totalCommits !== undefined && totalCommits > commits.length) return true;
  return commits.some((c) => [c.added, c.modified, c.removed].some((list) => list?.includes(POLICY_PATH)));
}
