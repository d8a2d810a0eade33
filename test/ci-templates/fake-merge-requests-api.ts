import http from "node:http";
import type { AddressInfo } from "node:net";

/** A merge request as the fake GitLab knows it. */
export interface FakeMergeRequest {
  iid: number;
  /** Head commit of the source branch. */
  sha: string;
  sourceBranch: string;
  sourceProjectId: number;
  state?: "opened" | "closed" | "merged";
  /** Contributor-written text; tests put decoy `"sha":"..."` text here. */
  description?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  privateToken: string | undefined;
}

export interface FakeMergeRequestsApi {
  /** Value for CI_API_V4_URL. */
  apiUrl: string;
  requests: RecordedRequest[];
  /** Requests for routes the fake does not know; a test that sees one fails. */
  unknownRoutes: string[];
  close(): Promise<void>;
}

export interface FakeMergeRequestsApiOptions {
  projectId: number;
  token: string;
  mergeRequests: FakeMergeRequest[];
  /** Answer with indented JSON instead of GitLab's single line. */
  pretty?: boolean;
  /** SHA in the nested pipeline objects before and after the MR's own `sha`; a parser must not take it. */
  decoySha?: string;
}

/**
 * The fields GitLab's `GET /projects/:id/merge_requests` returns for one MR, plus the `pipeline` and `head_pipeline`
 * objects of the single-MR endpoint, so that a nested `sha` comes both before and after the MR's own.
 */
function toGitlabJson(mr: FakeMergeRequest, projectId: number, decoySha: string): Record<string, unknown> {
  return {
    id: 5000 + mr.iid,
    iid: mr.iid,
    project_id: projectId,
    title: `Change {${mr.sourceBranch}} [draft]`,
    description: mr.description ?? "",
    state: mr.state ?? "opened",
    created_at: "2024-01-01T00:00:00.000Z",
    updated_at: "2024-01-02T00:00:00.000Z",
    merged_by: null,
    merge_user: null,
    merged_at: null,
    closed_by: null,
    closed_at: null,
    target_branch: "main",
    source_branch: mr.sourceBranch,
    user_notes_count: 1,
    upvotes: 0,
    downvotes: 0,
    author: { id: 7, username: "contributor", name: "A Contributor", state: "active", locked: false },
    assignees: [],
    reviewers: [{ id: 8, username: "committer", name: "A Committer", state: "active", locked: false }],
    source_project_id: mr.sourceProjectId,
    target_project_id: projectId,
    labels: ["needs-review", "ci"],
    draft: false,
    work_in_progress: false,
    // Nested objects carry keys the MR has too (iid, sha), before and after the MR's own; they are not the MR's.
    milestone: { id: 3, iid: 9999, project_id: projectId, title: "v1", state: "active" },
    pipeline: { id: 76, iid: 8887, sha: decoySha, ref: mr.sourceBranch, status: "success" },
    merge_when_pipeline_succeeds: false,
    merge_status: "can_be_merged",
    detailed_merge_status: "mergeable",
    sha: mr.sha,
    merge_commit_sha: null,
    squash_commit_sha: null,
    discussion_locked: null,
    should_remove_source_branch: null,
    force_remove_source_branch: true,
    allow_collaboration: true,
    web_url: `https://gitlab.example.com/acme/app/-/merge_requests/${mr.iid}`,
    references: { short: `!${mr.iid}`, relative: `!${mr.iid}`, full: `acme/app!${mr.iid}` },
    time_stats: { time_estimate: 0, total_time_spent: 0, human_time_estimate: null },
    squash: false,
    task_completion_status: { count: 0, completed_count: 0 },
    has_conflicts: false,
    blocking_discussions_resolved: true,
    head_pipeline: { id: 77, iid: 8888, sha: decoySha, ref: mr.sourceBranch, status: "success" },
  };
}

function send(res: http.ServerResponse, status: number, body: unknown, pretty: boolean): void {
  const text = pretty ? JSON.stringify(body, null, 2) : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json" });
  res.end(text);
}

/** GitLab's default `per_page`. */
const PAGE_SIZE = 20;

/**
 * A fake GitLab API on 127.0.0.1 that answers `GET /api/v4/projects/:id/merge_requests?source_branch=&state=&iids[]=`
 * like GitLab (token check, filtering, one page), records every request, and answers 404 to anything else.
 */
export async function startFakeMergeRequestsApi(options: FakeMergeRequestsApiOptions): Promise<FakeMergeRequestsApi> {
  const requests: RecordedRequest[] = [];
  const unknownRoutes: string[] = [];
  const pretty = options.pretty ?? false;
  const decoySha = options.decoySha ?? "f".repeat(40);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const token = req.headers["private-token"];
    const privateToken = Array.isArray(token) ? token[0] : token;
    requests.push({
      method: req.method ?? "",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      privateToken,
    });
    const route = /^\/api\/v4\/projects\/([^/]+)\/merge_requests$/.exec(url.pathname);
    if (req.method !== "GET" || !route) {
      unknownRoutes.push(`${req.method} ${url.pathname}`);
      send(res, 404, { error: "404 Not Found" }, pretty);
      return;
    }
    if (privateToken !== options.token) {
      send(res, 401, { message: "401 Unauthorized" }, pretty);
      return;
    }
    if (decodeURIComponent(route[1] ?? "") !== String(options.projectId)) {
      send(res, 404, { message: "404 Project Not Found" }, pretty);
      return;
    }
    const state = url.searchParams.get("state") ?? "all";
    const sourceBranch = url.searchParams.get("source_branch");
    const iids = url.searchParams.getAll("iids[]");
    const found = options.mergeRequests.filter(
      (mr) =>
        (state === "all" || (mr.state ?? "opened") === state) &&
        (sourceBranch === null || mr.sourceBranch === sourceBranch) &&
        (iids.length === 0 || iids.includes(String(mr.iid))),
    );
    // GitLab answers the first page only, 20 merge requests unless `per_page` says otherwise.
    send(
      res,
      200,
      found.slice(0, PAGE_SIZE).map((mr) => toGitlabJson(mr, options.projectId, decoySha)),
      pretty,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    apiUrl: `http://127.0.0.1:${port}/api/v4`,
    requests,
    unknownRoutes,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
