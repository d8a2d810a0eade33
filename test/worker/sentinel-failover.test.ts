/**
 * Redis high availability: the receiver and the worker on a Sentinel deployment of real processes (a primary, two
 * replicas, three Sentinels) while webhooks are posted without pause. The primary is killed mid-load, together with
 * what its replication links had not delivered yet (support/redis-sentinel.ts: a lost host loses that too).
 *
 * With `redis.wait_replicas` (1, the default with Sentinels) every delivery answered 2xx is on the promoted replica
 * and is processed; deliveries during the failover get a 503. Without it, the same run loses acknowledged
 * deliveries: the second test shows the rig can see a loss, so the first one's "none lost" means something.
 */
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import type { CommandJob, WorkflowHandlers } from "../../src/queue/jobs.js";
import { deliveryKey } from "../../src/queue/inbox.js";
import { type Service, startService } from "../../src/runtime.js";
import { captureLogger } from "../support/capture-logger.js";
import { uniquePrefix } from "../support/redis.js";
import { type SentinelTopology, startSentinelTopology } from "../support/redis-sentinel.js";
import { testConfig } from "../support/service-config.js";
import { waitFor } from "../support/wait.js";
import { commandNote, postWebhook } from "../support/webhook-client.js";

/** What the primary sends its replicas arrives this late (a busy network); what is on the way dies with it. */
const REPLICATION_DELAY_MS = 50;
const CONCURRENT_POSTS = 8;

interface Delivery {
  status: number;
  startedAt: number;
  ms: number;
}

interface FailoverRun {
  deliveries: Map<number, Delivery>;
  acknowledged: number[];
  /** Acknowledged, but not on the promoted replica. */
  lost: number[];
  processed: Set<number>;
  killedAt: number;
  /** First 2xx to a request sent after the kill. */
  resumedAt: number;
  oldPrimary: number;
  newPrimary: number | undefined;
  service: Service;
  topology: SentinelTopology;
  logText(): string;
}

async function failoverUnderLoad(
  waitReplicas: number,
  replicationDelayMs: number,
  body: (run: FailoverRun) => Promise<void>,
): Promise<void> {
  const topology = await startSentinelTopology({ replicas: 2, replicationDelayMs });
  let service: Service | undefined;
  const log = captureLogger("warn");
  try {
    const prefix = uniquePrefix();
    const config = testConfig(prefix, {
      redis: { sentinels: topology.sentinels, sentinel_name: topology.name, wait_replicas: waitReplicas },
    });
    const processed = new Set<number>();
    const noop = async () => undefined;
    const handlers: WorkflowHandlers = {
      reconcile: noop,
      push: noop,
      pipeline: noop,
      sweep: noop,
      command: async (job: CommandJob) => {
        processed.add(job.noteId);
      },
    };
    service = await startService({ config, logger: log.logger, roles: { receiver: true, worker: true }, handlers });
    const url = service.receiverUrl!;

    const template = commandNote("/trust");
    const deliveries = new Map<number, Delivery>();
    let nextId = 1;
    let posting = true;
    const poster = async () => {
      while (posting) {
        const id = nextId++;
        const payload = structuredClone(template);
        payload["object_attributes"]!["id"] = id;
        // One MR per note: the per-MR lock then never makes a job wait for another.
        payload["merge_request"]!["iid"] = id;
        const startedAt = Date.now();
        let status = 0;
        try {
          status = (await postWebhook(url, payload, { event: "Note Hook", idempotencyKey: `note-${id}` })).status;
        } catch {
          // No answer at all: not acknowledged.
        }
        deliveries.set(id, { status, startedAt, ms: Date.now() - startedAt });
      }
    };
    const posters = Array.from({ length: CONCURRENT_POSTS }, poster);

    try {
      await waitFor("jobs to be processed before the kill", () => processed.size >= 50, 10_000);
      const killedAt = Date.now();
      await topology.killPrimary();
      const resumed = await waitFor(
        "a webhook to be acknowledged after the failover",
        () => [...deliveries.values()].find((d) => d.startedAt > killedAt && d.status >= 200 && d.status < 300),
        30_000,
      );
      const resumedAt = resumed.startedAt + resumed.ms;
      // Keep posting for a while on the new primary.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      posting = false;
      await Promise.all(posters);

      const newPrimary = await topology.primaryPortNow();
      const acknowledged = [...deliveries].filter(([, d]) => d.status >= 200 && d.status < 300).map(([id]) => id);
      const client = topology.client(newPrimary!);
      const present = await Promise.all(acknowledged.map((id) => client.exists(deliveryKey({ redis: { prefix } }, `note-${id}`))));
      const lost = acknowledged.filter((_, i) => present[i] === 0);
      await body({
        deliveries,
        acknowledged,
        lost,
        processed,
        killedAt,
        resumedAt,
        oldPrimary: topology.primaryPort,
        newPrimary,
        service,
        topology,
        logText: log.text,
      });
    } finally {
      posting = false;
      await Promise.all(posters);
    }
  } finally {
    await service?.close({ timeoutMs: 2000 });
    await topology.stop();
  }
}

function report(t: TestContext, run: FailoverRun): void {
  const statuses = new Map<number, number>();
  for (const d of run.deliveries.values()) statuses.set(d.status, (statuses.get(d.status) ?? 0) + 1);
  const ackMs = [...run.deliveries.values()].filter((d) => d.status === 202).map((d) => d.ms);
  ackMs.sort((a, b) => a - b);
  const pct = (p: number) => ackMs[Math.min(ackMs.length - 1, Math.floor(ackMs.length * p))];
  t.diagnostic(
    `posted ${run.deliveries.size}, answers ${JSON.stringify(Object.fromEntries(statuses))}; ` +
      `2xx latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms; ` +
      `kill to first 2xx ${run.resumedAt - run.killedAt} ms; acknowledged ${run.acknowledged.length}, ` +
      `lost ${run.lost.length}`,
  );
}

describe("Redis Sentinel failover under load", { timeout: 120_000 }, () => {
  it("with wait_replicas (the default with Sentinels), no acknowledged delivery is lost and processing resumes", async (t) => {
    await failoverUnderLoad(1, REPLICATION_DELAY_MS, async (run) => {
      report(t, run);
      assert.ok(run.newPrimary && run.newPrimary !== run.oldPrimary, "the Sentinels promoted a replica");
      const unexpected = [...run.deliveries.values()].filter((d) => ![0, 202, 503].includes(d.status));
      assert.deepEqual(unexpected, [], "answers are 202, or 503 while no primary takes writes");
      assert.deepEqual(run.lost, [], "every delivery answered 2xx is on the promoted replica");
      assert.ok(run.resumedAt - run.killedAt < 15_000, "webhooks are acknowledged again within 15 s of the kill");
      const started = Date.now();
      await waitFor(
        "every acknowledged delivery to be processed",
        () => run.acknowledged.every((id) => run.processed.has(id)),
        30_000,
        50,
      ).catch((error: Error) => {
        const missing = run.acknowledged.filter((id) => !run.processed.has(id));
        throw new Error(
          `${error.message}: ${missing.length} missing (${missing.slice(0, 10).join(", ")})\n${run.logText()}`,
        );
      });
      t.diagnostic(
        `all acknowledged deliveries processed ${Date.now() - run.killedAt} ms after the kill (waited ${Date.now() - started} ms)`,
      );
    });
  });

  it("without waiting for replicas, deliveries acknowledged just before the kill are lost", async (t) => {
    // A longer lag than above, so that even a slow machine acknowledges something in the window that is lost.
    await failoverUnderLoad(0, 4 * REPLICATION_DELAY_MS, async (run) => {
      report(t, run);
      assert.ok(run.newPrimary && run.newPrimary !== run.oldPrimary, "the Sentinels promoted a replica");
      assert.ok(run.lost.length > 0, "a lagging replica misses what the dead primary had acknowledged");
    });
  });
});
