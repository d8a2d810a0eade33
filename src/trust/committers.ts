/**
 * Who is a committer, asked of GitLab: gathers the facts the pure {@link authorize} needs, cheapest first, and
 * returns its answer with the reason. One instance per worker process (built in `createWorkflowWithPort`), usable
 * on its own: `committers.authorize(projectId, user)`.
 *
 * - `trust.committer_users` are matched by user id. Usernames in the list are resolved to ids through the API
 *   (`GET /users?username=`) on first need and kept for the life of the process: a username is mutable, and once
 *   its owner renames themselves anyone may take it over, so the name must not be what a commenter is matched by.
 *   A name that resolves to nobody is logged and looked up again at most every {@link UNRESOLVED_RETRY_MS}.
 * - Refusals are cached per (project, user) in Redis for {@link REFUSAL_CACHE_SECONDS}: a flood of commands from
 *   one non-committer costs one look-up a minute, not one per note. Grants never are: a Maintainer demoted a
 *   second ago must not stay a committer for another minute.
 */
import type { GitLabPort, User } from "../gitlab/port.js";
import type { Logger } from "../logger.js";
import {
  type Authorization,
  authorize,
  type CommitterFacts,
  factsNeeded,
  groupLevelSuffices,
  type TrustConfig,
} from "./authorize.js";
import type { TrustStore } from "./store.js";

/** How long a refusal is reused without asking GitLab again (the most a promoted user waits to be a committer). */
export const REFUSAL_CACHE_SECONDS = 60;

/**
 * How long a refused user's further commands on the same MR go unanswered after one refusal reply: one note
 * flood, one reply (workflow.ts `command`).
 */
export const REFUSAL_REPLY_WINDOW_SECONDS = 600;

/** A `trust.committer_users` name that matched no user is looked up again after this long, not on every command. */
export const UNRESOLVED_RETRY_MS = 10 * 60_000;

export interface CommittersDeps {
  port: Pick<GitLabPort, "findUserByUsername" | "effectiveAccessLevel" | "groupAccessLevel">;
  config: TrustConfig;
  store: Pick<TrustStore, "cachedRefusal" | "cacheRefusal">;
  logger: Logger;
  /** Clock in ms (tests). */
  now?: () => number;
}

interface ListedName {
  id?: number;
  /** When it was last looked up (ms); `-Infinity` before the first look-up. */
  triedAt: number;
}

export class Committers {
  private readonly port: CommittersDeps["port"];
  private readonly config: TrustConfig;
  private readonly store: CommittersDeps["store"];
  private readonly logger: Logger;
  private readonly now: () => number;
  /** Ids listed in `trust.committer_users`, and those its names resolved to so far. */
  private readonly listedIds = new Set<number>();
  /** Configured usernames, lower case without `@`. */
  private readonly names = new Map<string, ListedName>();
  /** The look-up in flight: concurrent jobs share it. */
  private resolving: Promise<void> | undefined;

  constructor(deps: CommittersDeps) {
    this.port = deps.port;
    this.config = deps.config;
    this.store = deps.store;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    for (const entry of deps.config.committer_users) {
      if (typeof entry === "number") this.listedIds.add(entry);
      else this.names.set(entry.replace(/^@/, "").toLowerCase(), { triedAt: Number.NEGATIVE_INFINITY });
    }
  }

  /** Whether `user` is a committer in `projectId`, and why (the reason goes into the reply and the log). */
  async authorize(projectId: number, user: Pick<User, "id" | "username">): Promise<Authorization> {
    const cached = await this.store.cachedRefusal(projectId, user.id);
    if (cached !== undefined) return { committer: false, reason: cached };
    const facts: CommitterFacts = { username: user.username };
    for (let need = factsNeeded(facts, this.config); need !== "none"; need = factsNeeded(facts, this.config)) {
      if (need === "listed") facts.listed = (await this.resolvedIds()).has(user.id);
      else if (need === "accessLevel") facts.accessLevel = await this.port.effectiveAccessLevel(projectId, user.id);
      else facts.groupLevels = await this.groupLevels(user.id);
    }
    const result = authorize(facts, this.config);
    if (!result.committer) {
      await this.store.cacheRefusal(projectId, user.id, result.reason, REFUSAL_CACHE_SECONDS);
    }
    return result;
  }

  /** The listed ids, after looking up the names that are due (never looked up, or unresolved for long enough). */
  private async resolvedIds(): Promise<ReadonlySet<number>> {
    const now = this.now();
    const due = [...this.names].filter(([, n]) => n.id === undefined && now - n.triedAt >= UNRESOLVED_RETRY_MS);
    if (due.length > 0 && !this.resolving) {
      this.resolving = this.resolve(due.map(([name]) => name)).finally(() => {
        this.resolving = undefined;
      });
    }
    if (this.resolving) await this.resolving;
    return this.listedIds;
  }

  /**
   * Looks the names up. A failed call throws (the job is retried) and leaves the name due; a name nobody has is
   * remembered as such until {@link UNRESOLVED_RETRY_MS} has passed.
   */
  private async resolve(names: string[]): Promise<void> {
    await Promise.all(
      names.map(async (name) => {
        const user = await this.port.findUserByUsername(name);
        this.names.set(name, { ...(user ? { id: user.id } : {}), triedAt: this.now() });
        if (user) {
          this.listedIds.add(user.id);
          this.logger.info({ username: name, userId: user.id }, "trust.committer_users: username resolved");
        } else {
          this.logger.warn(
            { username: name, retryInMinutes: UNRESOLVED_RETRY_MS / 60_000 },
            "trust.committer_users: no user has this username, so it names no committer (or use a user id)",
          );
        }
      }),
    );
  }

  /** The user's level in the committer groups, in configuration order, up to the first that is enough. */
  private async groupLevels(userId: number): Promise<NonNullable<CommitterFacts["groupLevels"]>> {
    const levels: NonNullable<CommitterFacts["groupLevels"]> = [];
    for (const group of this.config.committer_groups) {
      const level = await this.port.groupAccessLevel(group, userId);
      levels.push({ group, level });
      if (groupLevelSuffices(level, this.config)) break;
    }
    return levels;
  }
}
