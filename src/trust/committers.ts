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
  /**
   * The settings for one project (policy.ts: the server's with the project's policy file over them); absent: `config`
   * for every project.
   */
  configFor?: (projectId: number) => Promise<TrustConfig>;
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
  private readonly configFor: ((projectId: number) => Promise<TrustConfig>) | undefined;
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
    this.configFor = deps.configFor;
    this.store = deps.store;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.register(deps.config.committer_users);
  }

  /** Adds listed ids and names not known yet (a project's policy lists its own); known names keep their look-up. */
  private register(entries: TrustConfig["committer_users"]): void {
    for (const entry of entries) {
      if (typeof entry === "number") this.listedIds.add(entry);
      else {
        const name = entry.replace(/^@/, "").toLowerCase();
        if (!this.names.has(name)) this.names.set(name, { triedAt: Number.NEGATIVE_INFINITY });
      }
    }
  }

  /** Whether `userId` is one of `entries` (by id, or by a name resolved to that id). */
  private async listed(entries: TrustConfig["committer_users"], userId: number): Promise<boolean> {
    if (entries.length === 0) return false;
    this.register(entries);
    await this.resolvedIds();
    // This list's entries only: names another project's policy resolved must not make a committer here.
    return entries.some((e) =>
      typeof e === "number" ? e === userId : this.names.get(e.replace(/^@/, "").toLowerCase())?.id === userId,
    );
  }

  /** Whether `user` is a committer in `projectId`, and why (the reason goes into the reply and the log). */
  async authorize(projectId: number, user: Pick<User, "id" | "username">): Promise<Authorization> {
    const cached = await this.store.cachedRefusal(projectId, user.id);
    if (cached !== undefined) return { committer: false, reason: cached };
    const config = this.configFor ? await this.configFor(projectId) : this.config;
    const facts: CommitterFacts = { username: user.username };
    for (let need = factsNeeded(facts, config); need !== "none"; need = factsNeeded(facts, config)) {
      if (need === "listed") {
        facts.listed = await this.listed(config.committer_users, user.id);
        // A project's policy file adds to the server's list: the reason names the one that has the user.
        if (facts.listed && config !== this.config && !(await this.listed(this.config.committer_users, user.id))) {
          facts.listedIn = "the project's policy file";
        }
      } else if (need === "accessLevel") facts.accessLevel = await this.port.effectiveAccessLevel(projectId, user.id);
      else facts.groupLevels = await this.groupLevels(user.id, config);
    }
    const result = authorize(facts, config);
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
  private async groupLevels(userId: number, config: TrustConfig): Promise<NonNullable<CommitterFacts["groupLevels"]>> {
    const levels: NonNullable<CommitterFacts["groupLevels"]> = [];
    for (const group of config.committer_groups) {
      const level = await this.port.groupAccessLevel(group, userId);
      levels.push({ group, level });
      if (groupLevelSuffices(level, config)) break;
    }
    return levels;
  }
}
