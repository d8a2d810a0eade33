/**
 * The simulator's mutable world. Only simulator modules touch these records; the public API hands out copies
 * (`structuredClone`) typed as the read-only `model.ts` shapes.
 */
import type {
  PipelineSource,
  PipelineVariablesRole,
  SimApprovalRule,
  SimAwardEmoji,
  SimExternalStatusCheck,
  SimCiJob,
  SimCommit,
  SimCommitStatus,
  SimGroup,
  SimHook,
  SimInstance,
  SimJob,
  SimLabel,
  SimMergeRequest,
  SimNote,
  SimPipeline,
  SimProject,
  SimProtectedBranchRule,
  SimStatusCheckResponse,
  SimUser,
} from "./model.js";
import { pipelineById } from "./pipeline-index.js";
import { SimError } from "./sim-error.js";

export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export type Visibility = "public" | "internal" | "private";

export interface UserRecord extends Mutable<SimUser> {
  /** The user's personal namespace id (projects like `alice/app` live there). */
  namespaceId: number;
}

export type GroupRecord = Mutable<SimGroup>;

export type JobRecord = Mutable<SimJob>;

export interface PipelineRecord extends Omit<Mutable<SimPipeline>, "jobs" | "variables"> {
  jobs: JobRecord[];
  variables: SimPipeline["variables"][number][];
}

export type CommitStatusRecord = Mutable<SimCommitStatus> & { retried: boolean };

export interface NoteRecord extends Mutable<SimNote> {
  awards: SimAwardEmoji[];
}

export interface MergeRequestRecord extends Omit<Mutable<SimMergeRequest>, "labels"> {
  labels: string[];
}

export interface ProjectRecord extends Omit<Mutable<SimProject>, "ciJobs"> {
  ciJobs: SimCiJob[];
  visibility: Visibility;
  pipelineOnPush: boolean;
  pipelineOnPushFilter: ((ref: string) => boolean) | undefined;
  /** Who may set pipeline variables (`ci_pipeline_variables_minimum_override_role`), see `permissions.ts`. */
  ciPipelineVariablesMinimumOverrideRole: PipelineVariablesRole;
  /** `restrict_user_defined_variables`: off, anyone who may create the pipeline may set its variables. */
  restrictUserDefinedVariables: boolean;
  /** `workflow: rules` for every pipeline: `false` filters it out (see `AddProjectInput.workflowRules`). */
  workflowRules: ((pipeline: { ref: string; source: PipelineSource }) => boolean) | undefined;
  /** "Pipelines must succeed" (`only_allow_merge_if_pipeline_succeeds`): the merge API refuses (405) otherwise. */
  onlyAllowMergeIfPipelineSucceeds: boolean;
  /**
   * The CI config runs merge request pipelines (`rules: if: $CI_PIPELINE_SOURCE == "merge_request_event"`): opening a
   * same-project MR and every push to its source branch start a `merge_request_event` pipeline.
   */
  mergeRequestPipelines: boolean;
  /** Every commit object the repository holds (branches, fetched MR heads, copied fork history). */
  commits: Map<string, SimCommit>;
  /** Branch name → head sha. */
  branches: Map<string, string>;
  /** `refs/merge-requests/:iid/head` of MRs targeting this project. */
  mergeRequestHeads: Map<number, string>;
  /** MR iid → its diff versions (`merge_request_diffs`), oldest first: one per head the MR had. */
  mergeRequestVersions: Map<number, MergeRequestVersionRecord[]>;
  protectedBranches: SimProtectedBranchRule[];
  /** Direct members: user id → access level. */
  members: Map<number, number>;
  mergeRequests: Map<number, MergeRequestRecord>;
  /** MR iid → notes, oldest first. */
  notes: Map<number, NoteRecord[]>;
  pipelines: PipelineRecord[];
  commitStatuses: CommitStatusRecord[];
  labels: SimLabel[];
  hooks: SimHook[];
  /** Project approval rules (EE Premium+, `approvals.ts`). */
  approvalRules: SimApprovalRule[];
  /** MR iid → ids of the users who approved it (`approvals`), in approval order. */
  approvals: Map<number, number[]>;
  /** External status checks (EE Ultimate, `approvals.ts`). */
  externalStatusChecks: SimExternalStatusCheck[];
  /** MR iid → status check responses, oldest first. */
  statusCheckResponses: Map<number, SimStatusCheckResponse[]>;
  nextMergeRequestIid: number;
  nextPipelineIid: number;
}

/** Ids come from per-table sequences, like GitLab's database. */
/** A row of `merge_request_diffs`: GitLab records one whenever an MR gets a new head (`MergeRequest#create_merge_request_diff`). */
export interface MergeRequestVersionRecord {
  id: number;
  mergeRequestId: number;
  headCommitSha: string;
  baseCommitSha: string;
  startCommitSha: string;
  createdAt: string;
}

interface Sequences {
  user: number;
  namespace: number;
  project: number;
  mergeRequest: number;
  note: number;
  award: number;
  pipeline: number;
  /** Shared by CI jobs and external commit statuses: both are rows of `ci_builds` in GitLab. */
  build: number;
  hook: number;
  label: number;
  protectedBranch: number;
  mergeRequestDiff: number;
  approvalRule: number;
  externalStatusCheck: number;
  statusCheckResponse: number;
}

export class SimState {
  /**
   * Cancelling a pipeline leaves its running jobs `canceling` (and the pipeline `canceling`) until the runner
   * reports back (`finishCanceling`), as GitLab does for runners that support graceful termination (*inferred* from
   * `Ci::Build` `canceling` state and `Ci::CancelPipelineService`); off, running jobs are canceled at once.
   */
  gracefulCancel = false;
  /** What `GET /metadata` answers and which version-dependent behaviour applies (`GitLabSimulator.setInstance`). */
  readonly instance: SimInstance = {
    version: "19.0.0",
    revision: "simulator",
    enterprise: false,
    tier: "free",
    webhookSigning: true,
  };
  readonly users = new Map<number, UserRecord>();
  readonly groups = new Map<number, GroupRecord>();
  /** Group id → direct members (user id → access level). */
  readonly groupMembers = new Map<number, Map<number, number>>();
  readonly projects = new Map<number, ProjectRecord>();
  private readonly seq: Sequences = {
    user: 0,
    namespace: 0,
    project: 0,
    mergeRequest: 0,
    note: 0,
    award: 0,
    pipeline: 0,
    build: 0,
    hook: 0,
    label: 0,
    protectedBranch: 0,
    mergeRequestDiff: 0,
    approvalRule: 0,
    externalStatusCheck: 0,
    statusCheckResponse: 0,
  };

  constructor(readonly baseUrl: string) {}

  nextId(kind: keyof Sequences): number {
    this.seq[kind] += 1;
    return this.seq[kind];
  }

  user(id: number): UserRecord {
    const u = this.users.get(id);
    if (!u) throw new SimError("not_found", "404 User Not Found");
    return u;
  }

  userByToken(token: string): UserRecord | undefined {
    for (const u of this.users.values()) if (u.token === token) return u;
    return undefined;
  }

  userByUsername(username: string): UserRecord | undefined {
    for (const u of this.users.values()) if (u.username === username) return u;
    return undefined;
  }

  group(id: number): GroupRecord {
    const g = this.groups.get(id);
    if (!g) throw new SimError("not_found", "404 Group Not Found");
    return g;
  }

  groupByPath(fullPath: string): GroupRecord | undefined {
    for (const g of this.groups.values()) if (g.fullPath === fullPath) return g;
    return undefined;
  }

  project(id: number): ProjectRecord {
    const p = this.projects.get(id);
    if (!p) throw new SimError("not_found", "404 Project Not Found");
    return p;
  }

  projectByPath(pathWithNamespace: string): ProjectRecord | undefined {
    for (const p of this.projects.values()) {
      if (p.pathWithNamespace.toLowerCase() === pathWithNamespace.toLowerCase()) return p;
    }
    return undefined;
  }

  mergeRequest(projectId: number, iid: number): MergeRequestRecord {
    const mr = this.project(projectId).mergeRequests.get(iid);
    if (!mr) throw new SimError("not_found", "404 Merge Request Not Found");
    return mr;
  }

  note(projectId: number, iid: number, noteId: number): NoteRecord {
    const note = this.notesOf(projectId, iid).find((n) => n.id === noteId);
    if (!note) throw new SimError("not_found", "404 Note Not Found");
    return note;
  }

  notesOf(projectId: number, iid: number): NoteRecord[] {
    this.mergeRequest(projectId, iid);
    const project = this.project(projectId);
    let list = project.notes.get(iid);
    if (!list) {
      list = [];
      project.notes.set(iid, list);
    }
    return list;
  }

  pipeline(projectId: number, pipelineId: number): PipelineRecord {
    const p = pipelineById(this.project(projectId).pipelines, pipelineId);
    if (!p) throw new SimError("not_found", "404 Not found");
    return p;
  }

  /** Ancestor chain of a group, nearest first (the group itself included). */
  groupChain(groupId: number): GroupRecord[] {
    const chain: GroupRecord[] = [];
    let current = this.groups.get(groupId);
    while (current) {
      chain.push(current);
      current = current.parentId === undefined ? undefined : this.groups.get(current.parentId);
    }
    return chain;
  }
}
