/**
 * Who is a committer: a named predicate that returns its reason (STYLE.md §7, like prow's TrustedUserResponse).
 * The reason reaches the refused user in one sentence and the log.
 *
 * A committer is, in the MR's target project:
 * - a user listed in `trust.committer_users`, matched by user id (names are resolved to ids once, in
 *   committers.ts: a username is mutable and can be taken over by someone else once freed);
 * - anyone with an effective access level (inherited membership counts) at or above `trust.committer_access_level`;
 * - anyone holding at least `trust.committer_group_access_level` in a group of `trust.committer_groups`. The level
 *   matters, not membership: an inherited Guest of a parent group is a member of every subgroup.
 *
 * Reasons name the user by username only (GitLab restricts it to `[A-Za-z0-9_.-]`) and otherwise say only what the
 * configuration says: no other text a user controls ends up in a reply.
 */
import type { Config } from "../config/config.js";

export type TrustConfig = Pick<
  Config["trust"],
  "committer_access_level" | "committer_users" | "committer_groups" | "committer_group_access_level"
>;

/** What was observed about the user; fields are left out when they were not needed (see {@link factsNeeded}). */
export interface CommitterFacts {
  username: string;
  /** The user's id is one of those `trust.committer_users` names (left out when that list is empty). */
  listed?: boolean;
  /** Where the list that has the user comes from, for the reason: `trust.committer_users` unless said otherwise. */
  listedIn?: string;
  /** Effective access level in the target project (0 = not a member). */
  accessLevel?: number;
  /**
   * The user's access level in the configured committer groups looked at, in configuration order (checked only
   * when the project access level falls short; the lookup may stop at the first group that is enough).
   */
  groupLevels?: Array<{ group: number | string; level: number }>;
}

export interface Authorization {
  committer: boolean;
  reason: string;
}

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  0: "no access",
  5: "Minimal access",
  10: "Guest",
  15: "Planner",
  20: "Reporter",
  30: "Developer",
  40: "Maintainer",
  50: "Owner",
};

export function accessLevelName(level: number): string {
  return LEVEL_NAMES[level] ?? `access level ${level}`;
}

/**
 * Which fact {@link authorize} still needs, cheapest first: whether the user is listed (no call once names are
 * resolved), then the project access level, then the group levels.
 */
export function factsNeeded(facts: CommitterFacts, config: TrustConfig): "none" | "listed" | "accessLevel" | "groups" {
  if (config.committer_users.length > 0 && facts.listed === undefined) return "listed";
  if (facts.listed) return "none";
  if (facts.accessLevel === undefined) return "accessLevel";
  if (facts.accessLevel >= config.committer_access_level) return "none";
  if (config.committer_groups.length > 0 && facts.groupLevels === undefined) return "groups";
  return "none";
}

/** Whether a level in a committer group makes a committer. */
export function groupLevelSuffices(level: number, config: TrustConfig): boolean {
  return level >= config.committer_group_access_level;
}

export function authorize(facts: CommitterFacts, config: TrustConfig): Authorization {
  // GitLab allows only these characters; anything else (a forged payload) never reaches a reply.
  const who = `@${facts.username.replace(/[^A-Za-z0-9_.-]/g, "")}`;
  if (facts.listed) {
    return { committer: true, reason: `${who} is listed in ${facts.listedIn ?? "trust.committer_users"}` };
  }
  const required = accessLevelName(config.committer_access_level);
  const level = facts.accessLevel ?? 0;
  if (level >= config.committer_access_level) {
    return {
      committer: true,
      reason: `${who} has the ${accessLevelName(level)} role in this project (committers need ${required} or higher)`,
    };
  }
  const groupRequired = accessLevelName(config.committer_group_access_level);
  const inGroup = facts.groupLevels?.find((g) => groupLevelSuffices(g.level, config));
  if (inGroup) {
    return {
      committer: true,
      reason: `${who} has the ${accessLevelName(inGroup.level)} role in committer group ${inGroup.group}`,
    };
  }
  const has = level === 0 ? "is not a member of this project" : `has the ${accessLevelName(level)} role here`;
  const below = facts.groupLevels?.find((g) => g.level > 0);
  const groups =
    config.committer_groups.length === 0
      ? ""
      : below
        ? ` and only the ${accessLevelName(below.level)} role in committer group ${below.group} (${groupRequired} or higher needed)`
        : " and is in none of the committer groups";
  return {
    committer: false,
    reason: `${who} ${has}${groups}; only committers (${required} or higher) can use this command`,
  };
}
