/** Every REST route the simulator serves, below `/api/v4`. */
import { type Route, RouteTable } from "../http/route-table.js";
import { approvalRoutes } from "./approvals.js";
import { branchRoutes } from "./branches.js";
import { commitRoutes } from "./commits.js";
import { fileRoutes } from "./files.js";
import { hookRoutes, labelRoutes } from "./hooks-and-labels.js";
import { mergeRequestRoutes } from "./merge-requests.js";
import { pipelineRoutes } from "./pipelines.js";
import { projectRoutes } from "./projects.js";
import { userRoutes } from "./users.js";

export function allRoutes(): Route[] {
  const t = new RouteTable();
  userRoutes(t);
  projectRoutes(t);
  branchRoutes(t);
  mergeRequestRoutes(t);
  approvalRoutes(t);
  commitRoutes(t);
  fileRoutes(t);
  pipelineRoutes(t);
  hookRoutes(t);
  labelRoutes(t);
  return t.routes;
}
