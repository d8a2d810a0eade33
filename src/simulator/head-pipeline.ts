/**
 * The pipeline an MR shows and "Pipelines must succeed" reads: `MergeRequest#diff_head_pipeline`, i.e. the first
 * of `Ci::PipelinesForMergeRequestFinder#all` (`app/finders/ci/pipelines_for_merge_request_finder.rb`) for the MR's
 * head SHA. The finder unions the MR's own pipelines (`triggered_by_merge_request`: `source: merge_request_event`)
 * and the source project's branch pipelines for the source branch (`ci_branch_sources`: every source except
 * `merge_request_event` and the dangling ones, `app/models/concerns/enums/ci/pipeline.rb`), and sorts merge request
 * pipelines first, then newest first (`CASE source WHEN merge_request_event THEN 0 ELSE 1 END, id DESC`). An MR
 * whose source project is gone has none (`next Ci::Pipeline.none unless source_project`).
 */
import type { PipelineSource } from "./model.js";
import { pipelinesForSha } from "./pipeline-index.js";
import type { MergeRequestRecord, PipelineRecord, SimState } from "./state.js";

/** `Enums::Ci::Pipeline.dangling_sources` among the sources the simulator knows: they never set a ref's status. */
const DANGLING: ReadonlySet<PipelineSource> = new Set(["parent_pipeline"]);

export function headPipelineOf(state: SimState, mr: MergeRequestRecord): PipelineRecord | undefined {
  const source = mr.sourceProjectId === null ? undefined : state.projects.get(mr.sourceProjectId);
  if (!source) return undefined;
  const target = state.project(mr.targetProjectId);
  // Only the head SHA's pipelines can be it: looked up by SHA (pipeline-index.ts), not by scanning them all.
  const forMergeRequest = pipelinesForSha(target.pipelines, mr.sha).filter(
    (p) => p.source === "merge_request_event" && p.mergeRequestIid === mr.iid,
  );
  const forBranch = pipelinesForSha(source.pipelines, mr.sha).filter(
    (p) => p.ref === mr.sourceBranch && p.source !== "merge_request_event" && !DANGLING.has(p.source),
  );
  const rank = (p: PipelineRecord) => (p.source === "merge_request_event" ? 0 : 1);
  return [...forMergeRequest, ...forBranch].sort((a, b) => rank(a) - rank(b) || b.id - a.id)[0];
}
