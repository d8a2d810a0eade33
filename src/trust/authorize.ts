/**
 * Who is a committer: a named predicate that returns its reason (STYLE.md §7, like prow's TrustedUserResponse).
 * The reason reaches the refused user in one sentence and the log.
 *
 * A committer is, in the MR's target project, anyone with an effective access level (inherited membership counts)
 * at or above `trust.committer_access_level`, anyone listed in `trust.committer_users`, and any member of a group
 * in `trust.committer_groups`.
 */
import type { Config } from "../config/config.js";

export type TrustConfig = Pick<Config["trust"], "committer_access_level" | "committer_users" | "committer_groups">;

/** What was observed about the user; fields are left out when they were not needed (see {@link factsNeeded}). */
export interface CommitterFacts {
  username: string;
  /** Effective access level in the target project (0 = not a member). */
  accessLevel?: number;
  /** The configured committer groups the user belongs to (checked only when the access level falls short). */
  memberOfGroups?: Array<number | string>;
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

/** Which facts {@link authorize} still needs, cheapest first: none for listed users, then the level, then groups. */
export function factsNeeded(facts: CommitterFacts, config: TrustConfig): "none" | "accessLevel" | "groups" {
  if (isListedUser(facts.username, config)) return "none";
  if (facts.accessLevel === undefined) return "accessLevel";
  if (facts.accessLevel >= config.committer_access_level) return "none";
  if (config.committer_groups.length > 0 && facts.memberOfGroups === undefined) return "groups";
  return "none";
}

export function authorize(facts: CommitterFacts, config: TrustConfig): Authorization {
  const who = `@${facts.username}`;
  if (isListedUser(facts.username, config)) {
    return { committer: true, reason: `${who} is listed in trust.committer_users` };
  }
  const required = accessLevelName(config.committer_access_level);
  const level = facts.accessLevel ?? 0;
  if (level >= config.committer_access_level) {
    return {
      committer: true,
      reason: `${who} has the ${accessLevelName(level)} role in this project (committers need ${required} or higher)`,
    };
  }
  const group = facts.memberOfGroups?.[0];
  if (group !== undefined) {
    return { committer: true, reason: `${who} is a member of committer group ${group}` };
  }
  const has = level === 0 ? "is not a member of this project" : `has the ${accessLevelName(level)} role here`;
  const groups = config.committer_groups.length > 0 ? " and is in none of the committer groups" : "";
  return {
    committer: false,
    reason: `${who} ${has}${groups}; only committers (${required} or higher) can use this command`,
  };
}

function isListedUser(username: string, config: TrustConfig): boolean {
  const lower = username.toLowerCase();
  return config.committer_users.some((u) => u.replace(/^@/, "").toLowerCase() === lower);
}
