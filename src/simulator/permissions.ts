/**
 * GitLab's permission rules for the actions the simulator supports, as named predicates.
 *
 * Sources (gitlabhq/gitlabhq): `lib/gitlab/user_access.rb` (`can_push_to_branch?`, `can_merge_to_branch?`,
 * `can_delete_branch?`, `can_update_branch?`), `app/models/concerns/protected_ref_access.rb` (`check_access`),
 * `app/models/concerns/protected_ref.rb` (`protected_ref_accessible_to?`: any matching rule grants),
 * `lib/gitlab/checks/branch_check.rb` (creating / deleting protected branches), `app/policies/project_policy.rb`.
 */
import { branchNamesContaining } from "./git.js";
import { AccessLevel, type PipelineVariablesRole, type SimProtectedBranchRule } from "./model.js";
import type { ProjectRecord, SimState } from "./state.js";

/**
 * Effective access level of a user on a project: the maximum of the direct project membership, memberships of the
 * project's group and its ancestors (inherited), and Owner for the owner of a personal namespace. 0 = not a member.
 */
export function accessLevel(state: SimState, userId: number, project: ProjectRecord): number {
  let level: number = project.members.get(userId) ?? AccessLevel.NoAccess;
  const ns = project.namespace;
  if (ns.kind === "user") {
    if (ns.userId === userId) level = Math.max(level, AccessLevel.Owner);
  } else {
    level = Math.max(level, groupAccessLevel(state, userId, ns.id));
  }
  return level;
}

/** Max access through a group and its ancestors (group membership is inherited by subgroups). */
export function groupAccessLevel(state: SimState, userId: number, groupId: number): number {
  let level: number = AccessLevel.NoAccess;
  for (const g of state.groupChain(groupId)) {
    level = Math.max(level, state.groupMembers.get(g.id)?.get(userId) ?? AccessLevel.NoAccess);
  }
  return level;
}

/** `read_project`: members always; others only on public (and, for signed-in users, internal) projects. */
export function canReadProject(state: SimState, userId: number, project: ProjectRecord): boolean {
  if (project.visibility !== "private") return true;
  return accessLevel(state, userId, project) >= AccessLevel.Guest;
}

/** `push_code`: Developer and above. */
export function canPushCode(state: SimState, userId: number, project: ProjectRecord): boolean {
  return accessLevel(state, userId, project) >= AccessLevel.Developer;
}

export function hasAccess(state: SimState, userId: number, project: ProjectRecord, min: number): boolean {
  return accessLevel(state, userId, project) >= min;
}

/**
 * GitLab's wildcard match (`RefMatcher`): `*` matches any run of characters, `/` included; anything else is literal.
 */
export function refMatches(pattern: string, ref: string): boolean {
  if (!pattern.includes("*")) return pattern === ref;
  const re = new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*?")}$`);
  return re.test(ref);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function matchingRules(project: ProjectRecord, branch: string): SimProtectedBranchRule[] {
  return project.protectedBranches.filter((r) => refMatches(r.name, branch));
}

export function isProtected(project: ProjectRecord, branch: string): boolean {
  return matchingRules(project, branch).length > 0;
}

/**
 * `ProtectedRefAccess#check_access` for one rule: "No one" (0) never passes; a role level passes for users who can
 * push code and whose project access reaches it; a user entry (`allowed_to_push` / `allowed_to_merge`) passes for
 * that user if they are a project member, a group entry for the group's direct members (EE
 * `ee/app/models/concerns/ee/protected_ref_access.rb`: `group.users.exists?`). Deploy-key entries never pass here:
 * only a push over SSH with that key uses them.
 */
function ruleGrants(
  state: SimState,
  userId: number,
  project: ProjectRecord,
  rule: SimProtectedBranchRule,
  action: "push" | "merge",
): boolean {
  const level = action === "push" ? rule.pushAccessLevel : rule.mergeAccessLevel;
  const access = accessLevel(state, userId, project);
  const users = action === "push" ? rule.allowedToPushUserIds : rule.allowedToMergeUserIds;
  if (users.includes(userId) && access > AccessLevel.NoAccess) return true;
  const groups = action === "push" ? rule.allowedToPushGroupIds : rule.allowedToMergeGroupIds;
  if (groups.some((g) => state.groupMembers.get(g)?.has(userId))) return true;
  if (level === AccessLevel.NoAccess) return false;
  return access >= AccessLevel.Developer && access >= level;
}

/** Several rules can match one branch (e.g. `main` and `*`); any rule that grants is enough: the most permissive wins. */
function protectedBranchAccessible(
  state: SimState,
  userId: number,
  project: ProjectRecord,
  branch: string,
  action: "push" | "merge",
): boolean {
  return matchingRules(project, branch).some((r) => ruleGrants(state, userId, project, r, action));
}

/** `Gitlab::UserAccess#can_push_to_branch?` */
export function canPushToBranch(state: SimState, userId: number, project: ProjectRecord, branch: string): boolean {
  if (!canPushCode(state, userId, project)) return false;
  if (!isProtected(project, branch)) return true;
  return protectedBranchAccessible(state, userId, project, branch, "push");
}

/** `Gitlab::UserAccess#can_merge_to_branch?` */
export function canMergeToBranch(state: SimState, userId: number, project: ProjectRecord, branch: string): boolean {
  if (!isProtected(project, branch)) return canPushCode(state, userId, project);
  return protectedBranchAccessible(state, userId, project, branch, "merge");
}

/** `Gitlab::UserAccess#can_update_branch?`: push or merge. Gates pipelines on protected refs. */
export function canUpdateBranch(state: SimState, userId: number, project: ProjectRecord, branch: string): boolean {
  return canPushToBranch(state, userId, project, branch) || canMergeToBranch(state, userId, project, branch);
}

/** `Gitlab::UserAccess#can_delete_branch?`: protected branches need `push_to_delete_protected_branch` (Maintainer). */
export function canDeleteBranch(state: SimState, userId: number, project: ProjectRecord, branch: string): boolean {
  if (isProtected(project, branch)) return hasAccess(state, userId, project, AccessLevel.Maintainer);
  return canPushCode(state, userId, project);
}

/** Messages of `Gitlab::Checks::BranchCheck::ERROR_MESSAGES`. */
export const BRANCH_CHECK_MESSAGES = {
  deleteDefaultBranch: "The default branch of a project cannot be deleted.",
  forcePushProtectedBranch: "You are not allowed to force push code to a protected branch on this project.",
  nonMaintainerDeleteProtectedBranch:
    "You are not allowed to delete protected branches from this project. Only a project maintainer or owner can delete a protected branch.",
  pushProtectedBranch: "You are not allowed to push code to protected branches on this project.",
  createProtectedBranch: "You are not allowed to create protected branches on this project.",
  invalidCommitCreateProtectedBranch:
    "You can only use an existing protected branch ref as the basis of a new protected branch.",
  prohibitedHexBranchName: "You cannot create a branch with a 40-character hexadecimal branch name.",
  pushCode: "You are not allowed to push code to this project.",
} as const;

/**
 * The pre-receive check for creating `branch` at `sha`; returns the refusal message or undefined.
 *
 * `BranchCheck#protected_branch_creation_checks`: a user who may push to the protected name may create it; a user
 * who may only merge there may create it only from a commit already on a protected branch
 * (`safe_commit_for_new_protected_branch?`); anyone else is refused.
 */
export function branchCreationRefusal(
  state: SimState,
  userId: number,
  project: ProjectRecord,
  branch: string,
  sha: string,
): string | undefined {
  if (/^[0-9a-f]{40}(-\/|\/|$)/.test(branch)) return BRANCH_CHECK_MESSAGES.prohibitedHexBranchName;
  if (!isProtected(project, branch)) {
    return canPushCode(state, userId, project) ? undefined : BRANCH_CHECK_MESSAGES.pushCode;
  }
  if (canPushToBranch(state, userId, project, branch)) return undefined;
  if (!canMergeToBranch(state, userId, project, branch)) return BRANCH_CHECK_MESSAGES.createProtectedBranch;
  const onProtected = branchNamesContaining(project, sha).some((name) => isProtected(project, name));
  return onProtected ? undefined : BRANCH_CHECK_MESSAGES.invalidCommitCreateProtectedBranch;
}

/** Pre-receive check for moving an existing branch (`protected_branch_push_checks`, force-push check). */
export function branchUpdateRefusal(
  state: SimState,
  userId: number,
  project: ProjectRecord,
  branch: string,
  o: { force: boolean },
): string | undefined {
  if (!isProtected(project, branch)) {
    return canPushCode(state, userId, project) ? undefined : BRANCH_CHECK_MESSAGES.pushCode;
  }
  if (o.force && !matchingRules(project, branch).some((r) => r.allowForcePush)) {
    return BRANCH_CHECK_MESSAGES.forcePushProtectedBranch;
  }
  return canPushToBranch(state, userId, project, branch) ? undefined : BRANCH_CHECK_MESSAGES.pushProtectedBranch;
}

/** Pre-receive check for deleting a branch (`validate!` + `protected_branch_deletion_checks`). */
export function branchDeletionRefusal(
  state: SimState,
  userId: number,
  project: ProjectRecord,
  branch: string,
): string | undefined {
  if (branch === project.defaultBranch) return BRANCH_CHECK_MESSAGES.deleteDefaultBranch;
  if (!isProtected(project, branch)) {
    return canPushCode(state, userId, project) ? undefined : BRANCH_CHECK_MESSAGES.pushCode;
  }
  return canDeleteBranch(state, userId, project, branch)
    ? undefined
    : BRANCH_CHECK_MESSAGES.nonMaintainerDeleteProtectedBranch;
}

/** The access level each restricting value of `ci_pipeline_variables_minimum_override_role` asks for. */
const PIPELINE_VARIABLES_MINIMUM: Readonly<Record<Exclude<PipelineVariablesRole, "no_one_allowed">, number>> = {
  developer: AccessLevel.Developer,
  maintainer: AccessLevel.Maintainer,
  owner: AccessLevel.Owner,
};

/**
 * `set_pipeline_variables` (`ProjectCiCdSetting#override_pipeline_variables_allowed?`, `app/policies/project_policy.rb`
 * `user_defined_variables_allowed`): anyone while `restrict_user_defined_variables` is off; otherwise users whose
 * project role reaches the minimum role, and nobody at all under `no_one_allowed`, Owners included.
 */
export function canSetPipelineVariables(state: SimState, userId: number, project: ProjectRecord): boolean {
  if (!project.restrictUserDefinedVariables) return true;
  const role = project.ciPipelineVariablesMinimumOverrideRole;
  if (role === "no_one_allowed") return false;
  return hasAccess(state, userId, project, PIPELINE_VARIABLES_MINIMUM[role]);
}

/**
 * Why `userId` may not change `restrict_user_defined_variables` or `ci_pipeline_variables_minimum_override_role` to
 * `to`, or undefined when they may (`Projects::UpdateService#validate_restrict_user_defined_variables_change`,
 * `ProjectPolicy` `change_restrict_user_defined_variables`): the caller is a Maintainer already (`admin_project`);
 * setting `owner` needs an Owner, and so does any change while the setting is in a privileged state (`owner`, or
 * `no_one_allowed`: "After the setting is at this value, only the Owner role can change it", doc/ci/variables).
 */
export function pipelineVariablesSettingRefusal(
  state: SimState,
  userId: number,
  project: ProjectRecord,
  to: PipelineVariablesRole | undefined,
): string | undefined {
  const owner = hasAccess(state, userId, project, AccessLevel.Owner);
  if (to === "owner" && !owner) {
    return "Changing the ci_pipeline_variables_minimum_override_role to the owner role is not allowed";
  }
  const current = project.ciPipelineVariablesMinimumOverrideRole;
  if ((current === "owner" || current === "no_one_allowed") && !owner) {
    return "Changing the restrict_user_defined_variables or ci_pipeline_variables_minimum_override_role is not allowed";
  }
  return undefined;
}
