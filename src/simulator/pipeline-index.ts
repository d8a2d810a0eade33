/**
 * A project's pipelines by id and by SHA, so reads stay O(1) with thousands of pipelines, as GitLab's own lookups
 * are indexed (`ci_pipelines` has indexes on `(project_id, sha)` and on `id`, db/structure.sql). Without it every MR
 * read (`head_pipeline`, head-pipeline.ts) scanned every pipeline of two projects: O(N²) for a sweep over N MRs.
 *
 * Pipelines are only ever appended to `ProjectRecord.pipelines` (ci-actions.ts `addPipelineRecord`), and a
 * pipeline's `id` and `sha` never change, so the index catches up with the array at each lookup; everything else
 * (status, source, MR) is read from the records themselves, as they are now.
 */
import type { PipelineRecord } from "./state.js";

interface Index {
  indexed: number;
  byId: Map<number, PipelineRecord>;
  bySha: Map<string, PipelineRecord[]>;
}

const indexes = new WeakMap<readonly PipelineRecord[], Index>();

function indexOf(pipelines: readonly PipelineRecord[]): Index {
  let index = indexes.get(pipelines);
  if (!index || index.indexed > pipelines.length) {
    index = { indexed: 0, byId: new Map(), bySha: new Map() };
    indexes.set(pipelines, index);
  }
  for (; index.indexed < pipelines.length; index.indexed++) {
    const p = pipelines[index.indexed] as PipelineRecord;
    index.byId.set(p.id, p);
    const same = index.bySha.get(p.sha);
    if (same) same.push(p);
    else index.bySha.set(p.sha, [p]);
  }
  return index;
}

/** The pipeline with this id among `pipelines` (one project's). */
export function pipelineById(pipelines: readonly PipelineRecord[], id: number): PipelineRecord | undefined {
  return indexOf(pipelines).byId.get(id);
}

/** The pipelines for this commit among `pipelines` (one project's), oldest first. */
export function pipelinesForSha(pipelines: readonly PipelineRecord[], sha: string): readonly PipelineRecord[] {
  return indexOf(pipelines).bySha.get(sha) ?? [];
}
