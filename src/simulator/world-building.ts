/**
 * Building the world before (or while) a test runs: users, groups, memberships, projects, forks, protected
 * branches and hooks. Synchronous and silent: no webhooks, no permission checks (these are admin actions).
 */
import { randomBytes } from "node:crypto";
import { addCommit, copyHistory } from "./git.js";
import {
  AccessLevel,
  type PipelineSource,
  type PipelineVariablesRole,
  type SimCiJob,
  type SimGroup,
  type SimHook,
  type SimNamespace,
  type SimUser,
} from "./model.js";
import { SimError } from "./sim-error.js";
import type { GroupRecord, ProjectRecord, SimState, UserRecord, Visibility } from "./state.js";
import { nowIso } from "./world.js";

export function addUser(state: SimState, u: { username: string; name?: string; bot?: boolean }): UserRecord {
  if (state.userByUsername(u.username)) throw new SimError("conflict", `Username ${u.username} has already been taken`);
  const user: UserRecord = {
    id: state.nextId("user"),
    username: u.username,
    name: u.name ?? u.username,
    // `glpat-` is GitLab's personal access token prefix; the rest is random.
    token: `glpat-${randomBytes(15).toString("base64url")}`,
    bot: u.bot ?? false,
    namespaceId: state.nextId("namespace"),
  };
  state.users.set(user.id, user);
  return user;
}

/**
 * Changes a user's username (the profile setting; `Users::UpdateService`). The id stays; the personal namespace
 * follows the new name, and the old name is free for anyone to take (GitLab keeps only a redirect for the old
 * namespace path, not a reservation of the username). Memberships, notes and MRs keep pointing at the same user.
 */
export function renameUser(state: SimState, userId: number, username: string): UserRecord {
  const user = state.user(userId);
  const taken = state.userByUsername(username);
  if (taken && taken.id !== userId) throw new SimError("conflict", `Username ${username} has already been taken`);
  user.username = username;
  for (const project of state.projects.values()) {
    const ns = project.namespace;
    if (ns.kind !== "user" || ns.userId !== userId) continue;
    project.namespace = { ...ns, fullPath: username };
    project.pathWithNamespace = `${username}/${project.path}`;
    project.webUrl = `${state.baseUrl}/${project.pathWithNamespace}`;
  }
  return user;
}

export function addGroup(state: SimState, g: { path: string; parentId?: number }): GroupRecord {
  const parent = g.parentId === undefined ? undefined : state.group(g.parentId);
  const fullPath = parent ? `${parent.fullPath}/${g.path}` : g.path;
  if (state.groupByPath(fullPath)) throw new SimError("conflict", `Group ${fullPath} already exists`);
  const group: GroupRecord = { id: state.nextId("namespace"), path: g.path, fullPath };
  if (parent) group.parentId = parent.id;
  state.groups.set(group.id, group);
  state.groupMembers.set(group.id, new Map());
  return group;
}

export function addMember(
  state: SimState,
  target: { groupId: number } | { projectId: number },
  userId: number,
  accessLevel: number,
): void {
  state.user(userId);
  if ("groupId" in target) {
    state.group(target.groupId);
    state.groupMembers.get(target.groupId)!.set(userId, accessLevel);
  } else {
    state.project(target.projectId).members.set(userId, accessLevel);
  }
}

export interface AddProjectInput {
  /** `group/name` or `user/name`; the namespace is looked up from the part before the last slash. */
  path: string;
  namespaceGroupId?: number;
  ownerId?: number;
  /** Default `main`. */
  defaultBranch?: string;
  /** Jobs every pipeline of this project gets (default one `test` job in stage `test`). */
  ciJobs?: SimCiJob[];
  /** GitLab starts a `push` pipeline on every push (default true). */
  pipelineOnPush?: boolean;
  /** When set, a push pipeline is created only for refs it accepts (models `workflow: rules`). */
  pipelineOnPushFilter?: (ref: string) => boolean;
  /**
   * `workflow: rules` for every pipeline, whatever its source: `false` filters the pipeline out, so a push starts
   * none and `POST /projects/:id/pipeline` answers 400 `{"message":{"base":["Pipeline filtered out by workflow
   * rules."]}}` (`Gitlab::Ci::Pipeline::Chain::EvaluateWorkflowRules`).
   */
  workflowRules?: (pipeline: { ref: string; source: PipelineSource }) => boolean;
  /** "Pipelines must succeed" (`only_allow_merge_if_pipeline_succeeds`, default false; `PUT /projects/:id`). */
  onlyAllowMergeIfPipelineSucceeds?: boolean;
  /** Same-project MRs get `merge_request_event` pipelines when opened and on every push (default false). */
  mergeRequestPipelines?: boolean;
  /** Default `public`: an open project whose contributors are not members. Private projects are 404 to non-members. */
  visibility?: Visibility;
  /**
   * Who may set pipeline variables. Default `maintainer`, the self-managed default for new projects; GitLab.com
   * gives new projects in new namespaces `no_one_allowed` (17.7+).
   */
  ciPipelineVariablesMinimumOverrideRole?: PipelineVariablesRole;
  /**
   * `restrict_user_defined_variables` (default true, as `ProjectCiCdSetting#set_pipeline_variables_secure_defaults`
   * sets it on new projects); false lets anyone who may create a pipeline set variables, whatever the role.
   */
  restrictUserDefinedVariables?: boolean;
}

function resolveNamespace(state: SimState, p: AddProjectInput, namespacePath: string): SimNamespace {
  if (p.namespaceGroupId !== undefined) {
    const g = state.group(p.namespaceGroupId);
    return { kind: "group", id: g.id, fullPath: g.fullPath };
  }
  const group = state.groupByPath(namespacePath);
  if (group) return { kind: "group", id: group.id, fullPath: group.fullPath };
  const user = state.userByUsername(namespacePath) ?? (p.ownerId === undefined ? undefined : state.user(p.ownerId));
  if (!user) throw new SimError("not_found", `404 Namespace ${namespacePath} Not Found`);
  return { kind: "user", id: user.namespaceId, fullPath: user.username, userId: user.id };
}

function newProjectRecord(
  state: SimState,
  o: { name: string; namespace: SimNamespace; defaultBranch: string; ciJobs: SimCiJob[]; visibility: Visibility },
): ProjectRecord {
  const pathWithNamespace = `${o.namespace.fullPath}/${o.name}`;
  if (state.projectByPath(pathWithNamespace)) {
    throw new SimError("bad_request", { name: ["has already been taken"], path: ["has already been taken"] });
  }
  return {
    id: state.nextId("project"),
    path: o.name,
    name: o.name,
    pathWithNamespace,
    webUrl: `${state.baseUrl}/${pathWithNamespace}`,
    defaultBranch: o.defaultBranch,
    namespace: o.namespace,
    ciJobs: o.ciJobs,
    createdAt: nowIso(),
    visibility: o.visibility,
    pipelineOnPush: true,
    pipelineOnPushFilter: undefined,
    workflowRules: undefined,
    onlyAllowMergeIfPipelineSucceeds: false,
    mergeRequestPipelines: false,
    ciPipelineVariablesMinimumOverrideRole: "maintainer",
    restrictUserDefinedVariables: true,
    commits: new Map(),
    branches: new Map(),
    mergeRequestHeads: new Map(),
    mergeRequestVersions: new Map(),
    protectedBranches: [],
    members: new Map(),
    mergeRequests: new Map(),
    notes: new Map(),
    pipelines: [],
    commitStatuses: [],
    labels: [],
    hooks: [],
    approvalRules: [],
    approvals: new Map(),
    externalStatusChecks: [],
    statusCheckResponses: new Map(),
    nextMergeRequestIid: 1,
    nextPipelineIid: 1,
  };
}

export function addProject(state: SimState, p: AddProjectInput): ProjectRecord {
  const slash = p.path.lastIndexOf("/");
  const name = slash === -1 ? p.path : p.path.slice(slash + 1);
  const namespacePath = slash === -1 ? "" : p.path.slice(0, slash);
  const namespace = resolveNamespace(state, p, namespacePath);
  const project = newProjectRecord(state, {
    name,
    namespace,
    defaultBranch: p.defaultBranch ?? "main",
    ciJobs: p.ciJobs ?? [{ name: "test", stage: "test" }],
    visibility: p.visibility ?? "public",
  });
  project.pipelineOnPush = p.pipelineOnPush ?? true;
  project.pipelineOnPushFilter = p.pipelineOnPushFilter;
  project.workflowRules = p.workflowRules;
  project.onlyAllowMergeIfPipelineSucceeds = p.onlyAllowMergeIfPipelineSucceeds ?? false;
  project.mergeRequestPipelines = p.mergeRequestPipelines ?? false;
  if (p.ciPipelineVariablesMinimumOverrideRole !== undefined) {
    project.ciPipelineVariablesMinimumOverrideRole = p.ciPipelineVariablesMinimumOverrideRole;
  }
  if (p.restrictUserDefinedVariables !== undefined) {
    project.restrictUserDefinedVariables = p.restrictUserDefinedVariables;
  }
  if (p.ownerId !== undefined && !(namespace.kind === "user" && namespace.userId === p.ownerId)) {
    state.user(p.ownerId);
    project.members.set(p.ownerId, AccessLevel.Owner);
  }
  const authorId = p.ownerId ?? (namespace.kind === "user" ? namespace.userId : 0);
  const initial = addCommit(project, { parentIds: [], message: "Initial commit", authorId });
  project.branches.set(project.defaultBranch, initial.id);
  state.projects.set(project.id, project);
  return project;
}

/** `Projects::ForkService`: a new project in the owner's namespace with the upstream's branches and history. */
export function fork(state: SimState, projectId: number, o: { ownerId: number; path: string }): ProjectRecord {
  const upstream = state.project(projectId);
  const owner = state.user(o.ownerId);
  const fullPath = o.path.includes("/") ? o.path : `${owner.username}/${o.path}`;
  const slash = fullPath.lastIndexOf("/");
  const namespace = resolveNamespace(state, { path: fullPath, ownerId: owner.id }, fullPath.slice(0, slash));
  const project = newProjectRecord(state, {
    name: fullPath.slice(slash + 1),
    namespace,
    defaultBranch: upstream.defaultBranch,
    ciJobs: [...upstream.ciJobs],
    visibility: upstream.visibility,
  });
  project.forkedFromProjectId = upstream.id;
  project.pipelineOnPush = upstream.pipelineOnPush;
  project.pipelineOnPushFilter = upstream.pipelineOnPushFilter;
  project.workflowRules = upstream.workflowRules;
  if (namespace.kind === "group") project.members.set(owner.id, AccessLevel.Owner);
  for (const [name, sha] of upstream.branches) {
    copyHistory(upstream, project, sha);
    project.branches.set(name, sha);
  }
  state.projects.set(project.id, project);
  return project;
}

/**
 * Deletes a project with everything in it (`Projects::DestroyService`, once it runs). Rows elsewhere that pointed at
 * it follow the foreign keys: MRs it was the source of (forks' MRs in their upstream) keep existing with
 * `source_project_id` null (`merge_requests.source_project_id` is `on_delete: :nullify`, db/structure.sql), and
 * its forks stay, unlinked from it. The target keeps those MRs' `refs/merge-requests/:iid/head` and commits. No
 * webhook fires for any of this (the nullify happens in the database).
 */
export function deleteProject(state: SimState, projectId: number): void {
  state.project(projectId);
  state.projects.delete(projectId);
  for (const project of state.projects.values()) {
    if (project.forkedFromProjectId === projectId) delete project.forkedFromProjectId;
    for (const mr of project.mergeRequests.values()) {
      if (mr.sourceProjectId === projectId) mr.sourceProjectId = null;
    }
  }
}

export function protectBranch(
  state: SimState,
  projectId: number,
  r: {
    name: string;
    pushAccessLevel: number;
    mergeAccessLevel: number;
    allowedToPushUserIds?: number[];
    allowedToMergeUserIds?: number[];
    allowedToPushGroupIds?: number[];
    allowedToMergeGroupIds?: number[];
    allowedToPushDeployKeyIds?: number[];
    allowForcePush?: boolean;
  },
): void {
  const project = state.project(projectId);
  if (project.protectedBranches.some((b) => b.name === r.name)) {
    // `POST /protected_branches` answers 409 for a duplicate name (lib/api/protected_branches.rb).
    throw new SimError("conflict", `Protected branch '${r.name}' already exists`);
  }
  project.protectedBranches.push({
    id: state.nextId("protectedBranch"),
    name: r.name,
    pushAccessLevel: r.pushAccessLevel,
    mergeAccessLevel: r.mergeAccessLevel,
    allowedToPushUserIds: r.allowedToPushUserIds ?? [],
    allowedToMergeUserIds: r.allowedToMergeUserIds ?? [],
    allowedToPushGroupIds: r.allowedToPushGroupIds ?? [],
    allowedToMergeGroupIds: r.allowedToMergeGroupIds ?? [],
    allowedToPushDeployKeyIds: r.allowedToPushDeployKeyIds ?? [],
    allowForcePush: r.allowForcePush ?? false,
  });
}

export function addHook(
  state: SimState,
  projectId: number,
  h: {
    url: string;
    token?: string | null;
    signingToken?: string | null;
    pushEvents?: boolean;
    pushEventsBranchFilter?: string | null;
    mergeRequestsEvents?: boolean;
    noteEvents?: boolean;
    confidentialNoteEvents?: boolean;
    pipelineEvents?: boolean;
    enableSslVerification?: boolean;
  },
): SimHook {
  const project = state.project(projectId);
  if (h.signingToken && !/^whsec_[A-Za-z0-9+/=]+$/.test(h.signingToken)) {
    throw new SimError("bad_request", { signing_token: ["must be whsec_ followed by base64"] });
  }
  const hook: SimHook = {
    id: state.nextId("hook"),
    projectId,
    url: h.url,
    token: h.token ?? null,
    signingToken: h.signingToken ?? null,
    // `push_events` defaults to true in GitLab's hooks API; every other event defaults to false.
    pushEvents: h.pushEvents ?? true,
    pushEventsBranchFilter: h.pushEventsBranchFilter ?? null,
    mergeRequestsEvents: h.mergeRequestsEvents ?? false,
    noteEvents: h.noteEvents ?? false,
    confidentialNoteEvents: h.confidentialNoteEvents ?? false,
    pipelineEvents: h.pipelineEvents ?? false,
    enableSslVerification: h.enableSslVerification ?? true,
    createdAt: nowIso(),
  };
  project.hooks.push(hook);
  return hook;
}

export function publicUser(u: UserRecord): SimUser {
  return { id: u.id, username: u.username, name: u.name, token: u.token, bot: u.bot };
}

export function publicGroup(g: GroupRecord): SimGroup {
  return structuredClone(g);
}
