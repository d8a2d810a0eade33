/**
 * Just enough of a git repository: commit objects with parents, branch heads, and the refs GitLab keeps for MRs.
 * Contents (trees, diffs) are not modelled.
 */
import { randomBytes } from "node:crypto";
import type { SimCommit } from "./model.js";
import type { ProjectRecord } from "./state.js";

export function newSha(): string {
  return randomBytes(20).toString("hex");
}

const SHA_RE = /^[0-9a-f]{7,40}$/;

export function addCommit(
  project: ProjectRecord,
  o: {
    parentIds: string[];
    message: string;
    authorId: number;
    createdAt?: string;
    files?: Readonly<Record<string, string | null>>;
  },
): SimCommit {
  const title = o.message.split("\n", 1)[0] ?? "";
  const commit: SimCommit = {
    id: newSha(),
    parentIds: o.parentIds,
    title,
    message: o.message,
    authorId: o.authorId,
    createdAt: o.createdAt ?? new Date().toISOString(),
    ...(o.files ? { files: o.files } : {}),
  };
  project.commits.set(commit.id, commit);
  return commit;
}

/** Copies a commit and its ancestors that `to` lacks (a fetch). */
export function copyHistory(from: ProjectRecord, to: ProjectRecord, sha: string): void {
  const stack = [sha];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (to.commits.has(id)) continue;
    const c = from.commits.get(id);
    if (!c) continue;
    to.commits.set(id, c);
    stack.push(...c.parentIds);
  }
}

/**
 * A file's contents at commit `sha`, `undefined` when it does not exist there: the nearest commit that wrote it,
 * looking at first parents first (*inferred* simplification: git reads the commit's tree; the simulator keeps only
 * what each commit wrote, and a merge commit writes nothing of its own).
 */
export function fileAt(project: ProjectRecord, sha: string, path: string): string | undefined {
  const seen = new Set<string>();
  const queue = [sha];
  while (queue.length > 0) {
    const id = queue.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const commit = project.commits.get(id);
    if (!commit) continue;
    if (commit.files && path in commit.files) return commit.files[path] ?? undefined;
    queue.push(...commit.parentIds);
  }
  return undefined;
}

/** True when `ancestor` is reachable from `head` through parent links (`git merge-base --is-ancestor`). */
export function isAncestor(project: ProjectRecord, ancestor: string, head: string): boolean {
  const seen = new Set<string>();
  const stack = [head];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (id === ancestor) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(project.commits.get(id)?.parentIds ?? []));
  }
  return false;
}

/** Branch names whose history contains `sha` (`Repository#branch_names_contains_sha`). */
export function branchNamesContaining(project: ProjectRecord, sha: string): string[] {
  return [...project.branches.entries()].filter(([, head]) => isAncestor(project, sha, head)).map(([name]) => name);
}

/**
 * Resolves what GitLab accepts as a `ref`: a branch name, `refs/heads/<name>`, `refs/merge-requests/:iid/head`, or
 * a full or abbreviated (7+ hex) sha of any commit the repository holds. Returns the commit sha.
 */
export function resolveRef(project: ProjectRecord, ref: string): string | undefined {
  const branch = project.branches.get(ref) ?? project.branches.get(ref.replace(/^refs\/heads\//, ""));
  if (branch) return branch;
  const mrHead = /^refs\/merge-requests\/(\d+)\/head$/.exec(ref);
  if (mrHead) return project.mergeRequestHeads.get(Number(mrHead[1]));
  if (SHA_RE.test(ref)) {
    if (project.commits.has(ref)) return ref;
    const matches = [...project.commits.keys()].filter((id) => id.startsWith(ref));
    if (matches.length === 1) return matches[0];
  }
  return undefined;
}

/**
 * `git check-ref-format refs/heads/<name>`, the check behind GitLab's "Branch name is invalid"
 * (`Gitlab::GitRefValidator`).
 */
export function isValidBranchName(name: string): boolean {
  if (name.length === 0 || name === "HEAD" || name.startsWith("-")) return false;
  if (name.startsWith("/") || name.endsWith("/") || name.endsWith(".") || name.endsWith(".lock")) return false;
  if (name.includes("..") || name.includes("//") || name.includes("@{") || name.includes("/.")) return false;
  if (name.startsWith(".")) return false;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: git forbids control characters in ref names
  return !/[\x00-\x20\x7f~^:?*[\\]/.test(name);
}
