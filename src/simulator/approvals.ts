/**
 * Merge request approvals, project approval rules and external status checks, and the merge checks they make.
 *
 * - Approve / unapprove (`lib/api/merge_request_approvals.rb`, CE and EE): `sha` must be the MR's head
 *   (`check_sha_param!`: 409 "SHA does not match HEAD of source branch: <head>"); approving needs
 *   `approve_merge_request` and not having approved already (`ApprovableBase#can_be_approved_by?`), else
 *   `unauthorized!` (401), so approving twice is a 401; unapproving without an approval is `not_found!` (404,
 *   `MergeRequests::RemoveApprovalService` returns early unless `approved_by?`). Both answer 201 with the approvals.
 * - Project approval rules (`ee/lib/api/project_approval_rules.rb`, `ProjectApprovalRulesHelpers`): EE only (a CE
 *   build has no such route: 404), Premium (`admin_project` and `modify_approvers_rules`). On EE Free the simulator
 *   answers 403 (*inferred*: the licence check behind `modify_approvers_rules` was not in the source read).
 * - "Approved" on EE (`MergeRequests::Mergeability::CheckApprovedService`, `approval_feature_available?`): every
 *   rule has its `approvals_required` from its eligible users. The merge API refuses an MR that is not mergeable with
 *   `not_allowed!` (405, `lib/api/merge_requests.rb`).
 * - External status checks (`ee/lib/api/status_checks.rb`): Ultimate (`licensed_feature_available?
 *   (:external_status_checks)`, else `unauthorized!` 401); register (`name`, `external_url`, `protected_branch_ids`),
 *   list (`admin_project`, else 401), respond per SHA (`status_check_responses`: `status` passed/failed, `sha`
 *   checked like approve's). A check with no `passed` response for the head blocks the merge ("Status checks must
 *   pass", the project setting `only_allow_merge_if_all_status_checks_passed`, modelled as on).
 */
import { AccessLevel, type SimInstance } from "./model.js";
import { accessLevel } from "./permissions.js";
import { SimError } from "./sim-error.js";
import type { MergeRequestRecord, ProjectRecord, SimState } from "./state.js";

type Json = Record<string, unknown>;

/** Approval rules need an EE build with Premium or Ultimate. */
export function approvalRulesLicensed(instance: SimInstance): boolean {
  return instance.enterprise && instance.tier !== "free";
}

/** External status checks need an EE build with Ultimate. */
export function statusChecksLicensed(instance: SimInstance): boolean {
  return instance.enterprise && instance.tier === "ultimate";
}

/** Ids of the users who approved the MR. */
export function approverIds(project: ProjectRecord, mr: MergeRequestRecord): number[] {
  let list = project.approvals.get(mr.iid);
  if (!list) {
    list = [];
    project.approvals.set(mr.iid, list);
  }
  return list;
}

/**
 * `approve_merge_request`, simplified: Developer and up in the target project, or a user a rule names (*inferred*:
 * EE lets eligible approvers below Developer approve; the author-approval setting is not modelled).
 */
function mayApprove(state: SimState, project: ProjectRecord, userId: number): boolean {
  if (accessLevel(state, userId, project) >= AccessLevel.Developer) return true;
  return approvalRulesLicensed(state.instance) && project.approvalRules.some((r) => r.userIds.includes(userId));
}

function checkSha(mr: MergeRequestRecord, sha: string | undefined): void {
  if (sha !== undefined && sha !== mr.sha) {
    throw new SimError("conflict", `SHA does not match HEAD of source branch: ${mr.sha}`);
  }
}

export function approve(state: SimState, project: ProjectRecord, mr: MergeRequestRecord, userId: number, sha?: string) {
  checkSha(mr, sha);
  const ids = approverIds(project, mr);
  if (ids.includes(userId) || !mayApprove(state, project, userId) || mr.state !== "opened") {
    throw new SimError("unauthorized", "401 Unauthorized");
  }
  ids.push(userId);
}

export function unapprove(project: ProjectRecord, mr: MergeRequestRecord, userId: number): void {
  const ids = approverIds(project, mr);
  const at = ids.indexOf(userId);
  if (at === -1 || mr.state === "merged") throw new SimError("not_found", "404 Not Found");
  ids.splice(at, 1);
}

/** Approvals a rule still needs: its required count minus approvals from the users it names. */
function ruleLeft(project: ProjectRecord, mr: MergeRequestRecord, rule: ProjectRecord["approvalRules"][number]) {
  const given = approverIds(project, mr).filter((id) => rule.userIds.includes(id)).length;
  return Math.max(0, rule.approvalsRequired - given);
}

/** `approvals_left` on EE: the sum over the rules (0 when the tier has none). */
export function approvalsLeft(state: SimState, project: ProjectRecord, mr: MergeRequestRecord): number {
  if (!approvalRulesLicensed(state.instance)) return 0;
  return project.approvalRules.reduce((sum, r) => sum + ruleLeft(project, mr, r), 0);
}

/**
 * The merge checks of this module, for `PUT .../merge`: `not_allowed!` (405) while an approval rule is unsatisfied
 * (Premium+) or an external status check has not passed for the head (Ultimate).
 */
export function assertApprovalChecksPass(state: SimState, mr: MergeRequestRecord): void {
  const project = state.project(mr.targetProjectId);
  if (approvalsLeft(state, project, mr) > 0) throw new SimError("method_not_allowed", "405 Method Not Allowed");
  if (statusChecksLicensed(state.instance)) {
    const responses = project.statusCheckResponses.get(mr.iid) ?? [];
    for (const check of project.externalStatusChecks) {
      const last = responses.filter((r) => r.checkId === check.id && r.sha === mr.sha).at(-1);
      if (last?.status !== "passed") throw new SimError("method_not_allowed", "405 Method Not Allowed");
    }
  }
}

function users(state: SimState, ids: readonly number[]): Json[] {
  return ids.flatMap((id) => {
    const u = state.users.get(id);
    return u
      ? [{ id: u.id, username: u.username, name: u.name, state: "active", web_url: `${state.baseUrl}/${u.username}` }]
      : [];
  });
}

/** `API::Entities::ProjectApprovalRule` (EE), the fields the simulator has. */
export function approvalRuleEntity(state: SimState, rule: ProjectRecord["approvalRules"][number]): Json {
  return {
    id: rule.id,
    name: rule.name,
    rule_type: "regular",
    eligible_approvers: users(state, rule.userIds),
    approvals_required: rule.approvalsRequired,
    users: users(state, rule.userIds),
    groups: [],
    contains_hidden_groups: false,
    protected_branches: [],
    applies_to_all_protected_branches: false,
  };
}

/**
 * `GET .../approvals` and the answer of approve/unapprove: `API::Entities::MergeRequestApprovals` on CE (`approved`:
 * any approval), EE's approval state on EE (`approved` when no rule needs more, `approvals_required`, `approvals_left`).
 */
export function approvalsEntity(state: SimState, mr: MergeRequestRecord, userId: number): Json {
  const project = state.project(mr.targetProjectId);
  const ids = approverIds(project, mr);
  const base = {
    user_has_approved: ids.includes(userId),
    user_can_approve: !ids.includes(userId) && mayApprove(state, project, userId),
    approved_by: users(state, ids).map((user) => ({ user })),
  };
  if (!state.instance.enterprise) return { ...base, approved: ids.length > 0 };
  const licensed = approvalRulesLicensed(state.instance);
  const left = approvalsLeft(state, project, mr);
  return {
    id: mr.id,
    iid: mr.iid,
    project_id: project.id,
    ...base,
    approved: left === 0,
    approvals_required: licensed ? project.approvalRules.reduce((s, r) => s + r.approvalsRequired, 0) : 0,
    approvals_left: left,
    approval_rules_left: licensed
      ? project.approvalRules
          .filter((r) => ruleLeft(project, mr, r) > 0)
          .map((r) => ({ id: r.id, name: r.name, rule_type: "regular" }))
      : [],
    has_approval_rules: licensed && project.approvalRules.length > 0,
  };
}

/** `GET .../approval_state` (EE): each rule with whether it is approved. */
export function approvalStateEntity(state: SimState, mr: MergeRequestRecord): Json {
  const project = state.project(mr.targetProjectId);
  const ids = approverIds(project, mr);
  return {
    approval_rules_overwritten: false,
    rules: (approvalRulesLicensed(state.instance) ? project.approvalRules : []).map((r) => ({
      ...approvalRuleEntity(state, r),
      approved_by: users(
        state,
        ids.filter((id) => r.userIds.includes(id)),
      ),
      source_rule: null,
      approved: ruleLeft(project, mr, r) === 0,
    })),
  };
}
