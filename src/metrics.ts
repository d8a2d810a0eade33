/**
 * Prometheus metrics, one registry per process (passed in, never global, so tests can run several apps at once).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  registry: Registry;
  /** Webhooks by `event` (X-Gitlab-Event) and `outcome` (queued, duplicate, ignored, unauthorized, bad_request, unavailable, too_large). */
  webhooks: Counter<"event" | "outcome">;
  /** Time from request start to response, seconds. */
  receiveLatency: Histogram<"outcome">;
  /** Worker jobs by `kind` and `outcome` (completed, retried, rate_limited, failed, deferred). */
  jobs: Counter<"kind" | "outcome">;
  /** GitLab API calls by `route` (template) and `status` (HTTP status or "network"). */
  gitlabCalls: Counter<"route" | "status">;
  /** Jobs waiting, delayed or active, sampled on scrape. */
  queueDepth: Gauge<"state">;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "tmr_" });
  return {
    registry,
    webhooks: new Counter({
      name: "tmr_webhooks_total",
      help: "Webhook requests by GitLab event and outcome",
      labelNames: ["event", "outcome"],
      registers: [registry],
    }),
    receiveLatency: new Histogram({
      name: "tmr_webhook_receive_seconds",
      help: "Time to answer a webhook request",
      labelNames: ["outcome"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    jobs: new Counter({
      name: "tmr_jobs_total",
      help: "Worker jobs by kind and outcome",
      labelNames: ["kind", "outcome"],
      registers: [registry],
    }),
    gitlabCalls: new Counter({
      name: "tmr_gitlab_api_calls_total",
      help: "GitLab API calls by route template and HTTP status",
      labelNames: ["route", "status"],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: "tmr_queue_jobs",
      help: "Jobs in the queue by state",
      labelNames: ["state"],
      registers: [registry],
    }),
  };
}
