/**
 * Repository files (lib/api/files.rb): the raw file endpoint, reading what the simulator's commits wrote (git.ts
 * `fileAt`).
 *
 * `GET /projects/:id/repository/files/:file_path/raw`: `ref` is optional and defaults to the repository's HEAD, the
 * default branch (`Repository#commit(ref = nil)` -> `root_ref`). An unknown ref is `404 Commit Not Found`, a path
 * the commit lacks `404 File Not Found` (`assign_file_vars!`). The blob is sent as `text/plain`
 * (lib/api/helpers.rb `send_git_blob`). Reading needs `read_code`; the simulator asks only that the project is
 * visible to the caller (*inferred*: private projects' Guests are not modelled apart).
 */
import { fileAt, resolveRef } from "../git.js";
import { findProject, optString, reqString } from "../http/params.js";
import type { RouteTable } from "../http/route-table.js";
import { SimError } from "../sim-error.js";

export function fileRoutes(t: RouteTable): void {
  t.get("/projects/:id/repository/files/:file_path/raw", (ctx) => {
    const project = findProject(ctx);
    const path = reqString(ctx.params, "file_path");
    const ref = optString(ctx.params, "ref") ?? project.defaultBranch;
    const sha = resolveRef(project, ref);
    if (sha === undefined) throw new SimError("not_found", "404 Commit Not Found");
    const contents = fileAt(project, sha, path);
    if (contents === undefined) throw new SimError("not_found", "404 File Not Found");
    return {
      status: 200,
      body: contents,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        "X-Gitlab-File-Path": path,
        "X-Gitlab-Commit-Id": sha,
      },
    };
  });
}
