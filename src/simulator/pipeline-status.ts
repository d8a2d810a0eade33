/**
 * Status arithmetic of GitLab CI, from `lib/gitlab/ci/status/composite.rb` and `app/models/concerns/ci/has_status.rb`.
 */
import type { PipelineStatus } from "./model.js";

/**
 * Every status (`Ci::HasStatus::AVAILABLE_STATUSES`, also `Ci::Pipeline.all_state_names`): what REST's `status`
 * filter accepts, and GraphQL's `PipelineStatusEnum` and `CiJobStatus` upcased.
 */
export const PIPELINE_STATUSES = [
  "created",
  "waiting_for_resource",
  "preparing",
  "waiting_for_callback",
  "pending",
  "running",
  "success",
  "failed",
  "canceling",
  "canceled",
  "skipped",
  "manual",
  "scheduled",
] as const satisfies readonly PipelineStatus[];

export const COMPLETED_STATUSES: readonly PipelineStatus[] = ["success", "failed", "canceled", "skipped"];
export const ACTIVE_STATUSES: readonly PipelineStatus[] = [
  "created",
  "waiting_for_resource",
  "preparing",
  "pending",
  "running",
  "canceling",
];

export function isCompleted(status: PipelineStatus): boolean {
  return COMPLETED_STATUSES.includes(status);
}

/** `Ci::HasStatus::PASSED_WITH_WARNINGS_STATUSES` and `IGNORED_STATUSES`, used for `allow_failure` jobs. */
const PASSED_WITH_WARNINGS = new Set<PipelineStatus>(["failed", "canceled"]);
const IGNORED = new Set<PipelineStatus>(["manual"]);

type Member = PipelineStatus | "success_with_warnings" | "ignored";

/**
 * `Gitlab::Ci::Status::Composite#status` (non-DAG): the pipeline (or stage) status derived from its latest jobs.
 * Order matters: the first rule that fits wins. Returns undefined for no jobs.
 */
export function compositeStatus(
  jobs: ReadonlyArray<{ status: PipelineStatus; allowFailure: boolean }>,
): PipelineStatus | undefined {
  const set = new Set<Member>();
  for (const j of jobs) {
    if (j.allowFailure && PASSED_WITH_WARNINGS.has(j.status)) set.add("success_with_warnings");
    else if (j.allowFailure && IGNORED.has(j.status)) set.add("ignored");
    else set.add(j.status);
  }
  if (set.size === 0) return undefined;
  const onlyOf = (...names: Member[]) => {
    const matching = names.filter((n) => set.has(n)).length;
    return matching > 0 && matching === set.size;
  };
  const anyOf = (...names: Member[]) => names.some((n) => set.has(n));

  if (onlyOf("skipped", "ignored")) return "skipped";
  if (onlyOf("success", "skipped", "success_with_warnings", "ignored")) return "success";
  if (onlyOf("created", "success_with_warnings", "ignored")) return "created";
  if (onlyOf("preparing", "success_with_warnings", "ignored")) return "preparing";
  if (onlyOf("canceled", "success", "skipped", "success_with_warnings", "ignored")) return "canceled";
  if (onlyOf("pending", "created", "skipped", "success_with_warnings", "ignored")) return "pending";
  if (anyOf("running", "pending")) return "running";
  if (anyOf("waiting_for_resource")) return "waiting_for_resource";
  if (anyOf("manual")) return "manual";
  if (anyOf("scheduled")) return "scheduled";
  if (anyOf("preparing")) return "preparing";
  if (anyOf("created")) return "running";
  return "failed";
}

/**
 * The commit-status state machine (`CommitStatus` events) for `POST /projects/:id/statuses/:sha`
 * (`Ci::CreateCommitStatusService#apply_job_state!`): which event each requested state fires and from which
 * states that event may transition. A disallowed transition is GitLab's 400
 * "Cannot transition status via :<event> from :<status> ...".
 */
export const COMMIT_STATUS_EVENTS: Record<
  "pending" | "running" | "success" | "failed" | "canceled" | "skipped",
  { event: string; from: readonly PipelineStatus[] }
> = {
  pending: {
    event: "enqueue",
    from: ["created", "waiting_for_resource", "preparing", "skipped", "manual", "scheduled"],
  },
  // "running" first tries a silent `enqueue` (created → pending), then `run!` (pending → running).
  running: { event: "run", from: ["pending"] },
  success: { event: "success", from: ["created", "waiting_for_resource", "preparing", "pending", "running"] },
  failed: {
    event: "drop",
    from: ["created", "waiting_for_resource", "preparing", "pending", "running", "manual", "scheduled"],
  },
  canceled: {
    event: "cancel",
    from: ["created", "waiting_for_resource", "preparing", "pending", "running", "manual", "scheduled"],
  },
  skipped: { event: "skip", from: ["created", "waiting_for_resource", "preparing", "pending"] },
};

/** `detailed_status` of a pipeline as the API and Pipeline Hook present it (`Gitlab::Ci::Status::*`). */
export function detailedStatus(status: PipelineStatus, detailsPath: string) {
  const text: Record<PipelineStatus, string> = {
    created: "Created",
    waiting_for_resource: "Waiting",
    preparing: "Preparing",
    // `Gitlab::Ci::Status::WaitingForCallback` (GitLab 17.x); its text is *inferred* to match waiting_for_resource's.
    waiting_for_callback: "Waiting",
    pending: "Pending",
    running: "Running",
    success: "Passed",
    failed: "Failed",
    canceling: "Canceling",
    canceled: "Canceled",
    skipped: "Skipped",
    manual: "Manual",
    scheduled: "Scheduled",
  };
  const label = status === "success" ? "passed" : status.replace(/_/g, " ");
  return {
    icon: `status_${status}`,
    text: text[status],
    label,
    group: status,
    tooltip: label,
    has_details: true,
    details_path: detailsPath,
    illustration: null,
    favicon: `/assets/ci_favicons/favicon_status_${status}.png`,
  };
}
