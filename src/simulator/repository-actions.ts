/**
 * Branch changes: pushes, API branch creation and deletion. Each goes through GitLab's pre-receive checks
 * (`permissions.ts`) and, like GitLab's `PostReceive`, fires a Push Hook, refreshes the MRs whose source branch moved
 * (`MergeRequests::RefreshService`: MR Hook `update` with `oldrev`), and may start a `push` pipeline.
 */
import { createMergeRequestPipeline, createPipeline } from "./ci-actions.js";
import { addCommit, copyHistory, isValidBranchName, resolveRef } from "./git.js";
import { BLANK_SHA } from "./model.js";
import { hookTime, mergeRequestPayload, pushPayload } from "./payloads.js";
import { branchCreationRefusal, branchDeletionRefusal, branchUpdateRefusal, isProtected } from "./permissions.js";
import { SimError } from "./sim-error.js";
import type { MergeRequestRecord, ProjectRecord } from "./state.js";
import { nowIso, type World } from "./world.js";

/** A pre-receive refusal; the API answers these with 400 and the check's message (`Branches::*Service`). */
function refused(message: string): SimError {
  return new SimError("bad_request", message);
}

export interface PushInput {
  userId: number;
  message?: string;
  fromSha?: string;
  force?: boolean;
  /** Files the commit writes (`null` deletes one). */
  files?: Readonly<Record<string, string | null>>;
}

/** One new commit on `branch` (created if missing), as `git push` would do it. */
export function push(
  world: World,
  project: ProjectRecord,
  branch: string,
  o: PushInput,
): { before: string; after: string } {
  const { state } = world;
  state.user(o.userId);
  const head = project.branches.get(branch);
  const base = o.fromSha === undefined ? undefined : resolveRef(project, o.fromSha);
  if (o.fromSha !== undefined && base === undefined) throw refused(`Invalid reference ${o.fromSha}`);
  if (head === undefined && !isValidBranchName(branch)) throw refused("Branch name is invalid");

  const parent =
    head === undefined ? (base ?? project.branches.get(project.defaultBranch)) : o.force && base ? base : head;
  const commit = addCommit(project, {
    parentIds: parent === undefined ? [] : [parent],
    message: o.message ?? `Update ${branch}`,
    authorId: o.userId,
    ...(o.files ? { files: o.files } : {}),
  });
  const refusal =
    head === undefined
      ? branchCreationRefusal(state, o.userId, project, branch, commit.id)
      : branchUpdateRefusal(state, o.userId, project, branch, { force: Boolean(o.force && base && base !== head) });
  if (refusal) {
    project.commits.delete(commit.id);
    throw refused(refusal);
  }
  const before = head ?? BLANK_SHA;
  moveBranch(world, project, branch, before, commit.id, o.userId);
  return { before, after: commit.id };
}

/** `POST /projects/:id/repository/branches` (`Branches::CreateService`): messages as GitLab sends them. */
export function createBranch(
  world: World,
  project: ProjectRecord,
  userId: number,
  branch: string,
  ref: string,
): string {
  if (!isValidBranchName(branch)) throw refused("Branch name is invalid");
  if (project.branches.has(branch)) throw refused("Branch already exists");
  const sha = resolveRef(project, ref);
  if (sha === undefined) throw refused(`Failed to create branch '${branch}': invalid reference name '${ref}'`);
  const refusal = branchCreationRefusal(world.state, userId, project, branch, sha);
  if (refusal) throw refused(refusal);
  moveBranch(world, project, branch, BLANK_SHA, sha, userId);
  return sha;
}

/** Deleting a branch (`Branches::DeleteService` + `BranchCheck`). Fires a Push Hook with `after` = 40 zeros. */
export function deleteBranch(world: World, project: ProjectRecord, branch: string, userId: number): void {
  const head = project.branches.get(branch);
  if (head === undefined) throw new SimError("not_found", "404 Branch Not Found");
  const refusal = branchDeletionRefusal(world.state, userId, project, branch);
  if (refusal) throw refused(refusal);
  project.branches.delete(branch);
  world.hooks.emit(
    project.id,
    "push",
    pushPayload(world.state, project, {
      user: world.state.user(userId),
      ref: branch,
      before: head,
      after: BLANK_SHA,
      refProtected: isProtected(project, branch),
    }),
  );
}

/**
 * Sets a branch head and runs what GitLab's post-receive does: Push Hook, MR refresh, push pipeline.
 * Exported for merges, which move the target branch the same way.
 */
export function moveBranch(
  world: World,
  project: ProjectRecord,
  branch: string,
  before: string,
  after: string,
  userId: number,
): void {
  const { state } = world;
  project.branches.set(branch, after);
  const user = state.user(userId);
  world.hooks.emit(
    project.id,
    "push",
    pushPayload(state, project, { user, ref: branch, before, after, refProtected: isProtected(project, branch) }),
  );
  refreshMergeRequests(world, project, branch, after, userId);
  // Filtered out by `workflow: rules`, a push starts no pipeline and the push itself still succeeds.
  const wanted =
    project.pipelineOnPush &&
    (project.pipelineOnPushFilter?.(branch) ?? true) &&
    (project.workflowRules?.({ ref: branch, source: "push" }) ?? true);
  if (wanted && project.ciJobs.length > 0) {
    createPipeline(world, project, { ref: branch, userId, source: "push", beforeSha: before, trusted: true });
  }
}

/**
 * The MR has a new head (`mr.sha`): `refs/merge-requests/:iid/head` in the target project points at it, and a new
 * diff version records when (`MergeRequest#create_merge_request_diff`, `app/models/merge_request_diff.rb`).
 */
export function recordMergeRequestHead(world: World, target: ProjectRecord, mr: MergeRequestRecord): void {
  target.mergeRequestHeads.set(mr.iid, mr.sha);
  const versions = target.mergeRequestVersions.get(mr.iid) ?? [];
  versions.push({
    id: world.state.nextId("mergeRequestDiff"),
    mergeRequestId: mr.id,
    headCommitSha: mr.sha,
    baseCommitSha: mr.baseSha,
    startCommitSha: mr.startSha,
    createdAt: nowIso(),
  });
  target.mergeRequestVersions.set(mr.iid, versions);
}

/**
 * `MergeRequests::RefreshService` for MRs whose source is (project, branch), in whichever project they target:
 * new head, `refs/merge-requests/:iid/head` fetched into the target (*inferred* from `MergeRequest#fetch_ref!`),
 * MR Hook `update` with `oldrev` on the target project.
 */
function refreshMergeRequests(
  world: World,
  source: ProjectRecord,
  branch: string,
  after: string,
  userId: number,
): void {
  const { state } = world;
  for (const target of state.projects.values()) {
    for (const mr of target.mergeRequests.values()) {
      if (mr.sourceProjectId !== source.id || mr.sourceBranch !== branch || mr.state !== "opened") continue;
      if (mr.sha === after) continue;
      const oldrev = mr.sha;
      const previousUpdatedAt = mr.updatedAt;
      mr.sha = after;
      mr.updatedAt = nowIso();
      copyHistory(source, target, after);
      recordMergeRequestHead(world, target, mr);
      world.hooks.emit(
        target.id,
        "merge_request",
        mergeRequestPayload(state, mr, {
          user: state.user(userId),
          action: "update",
          oldrev,
          changes: { updated_at: { previous: hookTime(previousUpdatedAt), current: hookTime(mr.updatedAt) } },
        }),
      );
      // The refresh's merge request pipeline for the new head (`MergeRequests::RefreshService` ->
      // `MergeRequests::CreatePipelineService`), where the CI config runs them; same-project MRs only (ci-actions.ts).
      if (target.mergeRequestPipelines && mr.sourceProjectId === target.id) {
        createMergeRequestPipeline(world, mr, userId, { trusted: true });
      }
    }
  }
}
