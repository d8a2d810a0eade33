/**
 * `npm run bench:receiver`: the real receiver (the `receiver` role of `startService`: verification, routing,
 * dedupe and the atomic store into the Redis inbox that the worker's pump moves into BullMQ) against a bare express handler that answers 202, under the
 * same load: autocannon in a separate process, 32 connections, a ~3 KB `/trust` note, a unique Idempotency-Key
 * and note id per request (so every request is really queued, never answered as a duplicate).
 *
 * Targets alternate (bare, receiver, bare, receiver, ...) for `--rounds` rounds and the medians are compared, so a
 * burst of noise from other processes on the machine does not land on one target only. Besides throughput and
 * latency it reports the CPU time each request cost the server process and Redis, which a busy machine distorts
 * far less than it distorts throughput.
 *
 * Options: --duration <s> per run (10), --warmup <s> (3), --rounds <n> (3), --connections <n> (32).
 * Redis: REDIS_URL, or a private redis-server on a free port; the run uses its own key prefix and removes it after.
 */
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import express from "express";
import { configSchema } from "../src/config/config.js";
import { createLogger } from "../src/logger.js";
import { createMetrics } from "../src/metrics.js";
import { startLocalRedis } from "../src/local-redis.js";
import { inboxKey } from "../src/queue/inbox.js";
import { createRedis, type Redis } from "../src/redis.js";
import { startService } from "../src/runtime.js";
import type { LoadRequest, LoadResult } from "./load-generator.js";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "32" },
  },
});
const durationSeconds = Number(values.duration);
const warmupSeconds = Number(values.warmup);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
// A private redis-server unless REDIS_URL names one, so `npm run bench:receiver` works on its own.
const ownRedis = process.env["REDIS_URL"] ? undefined : await startLocalRedis();
const redisUrl = process.env["REDIS_URL"] ?? ownRedis!.url;
const SECRET = "bench-webhook-secret";
const run = `tmr-bench-${randomBytes(4).toString("hex")}`;

/** A load run plus the CPU it cost: this process (the server under test) and the Redis server. */
interface Measured extends LoadResult {
  serverCpuUsPerRequest: number;
  redisCpuUsPerRequest: number;
}

/**
 * GitLab's documented Note Hook example with a `/trust` note, minus the `repository` block and the MR's `source`
 * project (identical to `target` for a same-project MR): about 3.3 KB, the size of a real command note.
 */
function notePayloadTemplate(): string {
  const payload = JSON.parse(
    readFileSync(new URL("../test/fixtures/gitlab/payloads/note_merge_request.json", import.meta.url), "utf8"),
  ) as Record<string, Record<string, unknown>>;
  payload["object_attributes"]!["note"] = "/trust";
  payload["object_attributes"]!["id"] = "__NOTE_ID__";
  delete payload["repository"];
  delete payload["merge_request"]!["source"];
  return JSON.stringify(payload).replace('"__NOTE_ID__"', "__NOTE_ID__");
}

async function listen(server: Server): Promise<string> {
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;
}

/** Seconds of CPU the Redis server has used (`INFO cpu`). */
async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info("cpu");
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return field("used_cpu_sys") + field("used_cpu_user");
}

/** The run with the median throughput (its latencies and CPU figures come with it, measured together). */
function median(results: Measured[]): Measured {
  const sorted = [...results].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const bodyTemplate = notePayloadTemplate();

  const bare = express();
  bare.post("/webhook", (_req, res) => {
    res.status(202).end();
  });
  const bareServer = bare.listen(0, "127.0.0.1");
  const bareUrl = await listen(bareServer);

  const config = configSchema.parse({
    webhook: { secret: SECRET },
    redis: { url: redisUrl, prefix: run },
    server: { host: "127.0.0.1", port: 0 },
    log: { level: "info" },
  });
  // Real log lines (one per queued webhook) are formatted and written; /dev/null only spares the terminal.
  const logger = createLogger({ level: "info", destination: createWriteStream("/dev/null") });
  const metrics = createMetrics();
  const service = await startService({ config, logger, metrics, roles: { receiver: true } });
  const receiverUrl = `${service.receiverUrl}/webhook`;
  const probe = createRedis(redisUrl, "durable");

  const loadGenerator = fork(new URL("./load-generator.ts", import.meta.url).pathname, [], {
    execArgv: process.execArgv,
  });
  await once(loadGenerator, "message");
  let runs = 0;
  const load = async (url: string, seconds: number, label: string): Promise<Measured> => {
    runs += 1;
    const request: LoadRequest = {
      url,
      connections,
      durationSeconds: seconds,
      headers: { "content-type": "application/json", "x-gitlab-event": "Note Hook", "x-gitlab-token": SECRET },
      bodyTemplate,
      keyPrefix: `${run}-${label}`,
      noteIdBase: runs * 100_000_000,
    };
    const redisBefore = await redisCpuSeconds(probe);
    const cpuBefore = process.cpuUsage();
    loadGenerator.send(request);
    const [reply] = (await once(loadGenerator, "message")) as [{ result?: LoadResult; error?: string }];
    const cpu = process.cpuUsage(cpuBefore);
    const redisCpu = (await redisCpuSeconds(probe)) - redisBefore;
    if (!reply.result) throw new Error(`load generator failed: ${reply.error}`);
    const total = Math.max(1, reply.result.total);
    return {
      ...reply.result,
      serverCpuUsPerRequest: (cpu.user + cpu.system) / total,
      redisCpuUsPerRequest: (redisCpu * 1e6) / total,
    };
  };

  try {
    process.stderr.write(
      `${rounds} rounds of ${durationSeconds} s per target after ${warmupSeconds} s warm-up, ${connections} connections, ` +
        `${Buffer.byteLength(bodyTemplate)} byte note; node ${process.version}, ${availableParallelism()} CPUs, load average ${loadavg()
          .map((l) => l.toFixed(2))
          .join(" ")}\n`,
    );
    await load(bareUrl, warmupSeconds, "bare-warmup");
    await load(receiverUrl, warmupSeconds, "receiver-warmup");
    const bareRuns: Measured[] = [];
    const receiverRuns: Measured[] = [];
    for (let round = 1; round <= rounds; round++) {
      bareRuns.push(await load(bareUrl, durationSeconds, `bare-${round}`));
      receiverRuns.push(await load(receiverUrl, durationSeconds, `receiver-${round}`));
      process.stderr.write(
        `round ${round}: bare ${bareRuns.at(-1)!.requestsPerSecond.toFixed(0)} req/s, receiver ${receiverRuns.at(-1)!.requestsPerSecond.toFixed(0)} req/s\n`,
      );
    }
    const bareResult = median(bareRuns);
    const receiverResult = median(receiverRuns);

    // Requests still in flight when the last run stopped finish first; then every 2xx must have been a real
    // enqueue, not a duplicate or an ignored event.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const outcomes = await metrics.webhooks.get();
    const queued = outcomes.values.find((v) => v.labels.outcome === "queued")?.value ?? 0;
    const other = outcomes.values.filter((v) => v.labels.outcome !== "queued").reduce((sum, v) => sum + v.value, 0);
    // Stored = in the inbox stream (no worker runs here, so nothing has moved them into the queue yet).
    const stored = await probe.xlen(inboxKey(config));
    const failed = [...bareRuns, ...receiverRuns].reduce((sum, r) => sum + r.non2xx + r.errors + r.timeouts, 0);

    const ratio = receiverResult.requestsPerSecond / bareResult.requestsPerSecond;
    const cell = (value: number, width: number, digits = 0) => value.toFixed(digits).padStart(width);
    const row = (name: string, r: Measured) =>
      `| ${name.padEnd(34)} | ${cell(r.requestsPerSecond, 8)} | ${cell(r.latencyP50Ms, 7, 1)} | ${cell(r.latencyP99Ms, 7, 1)} | ${cell(r.serverCpuUsPerRequest, 10)} | ${cell(r.redisCpuUsPerRequest, 9)} |`;
    const lines = [
      "",
      `median of ${rounds} rounds (load average now ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}):`,
      `| target${" ".repeat(28)} |    req/s |  p50 ms |  p99 ms | server CPU | Redis CPU |`,
      `| ${" ".repeat(34)} |          |         |         |  µs/req    |  µs/req   |`,
      `|${"-".repeat(36)}|${"-".repeat(10)}|${"-".repeat(9)}|${"-".repeat(9)}|${"-".repeat(12)}|${"-".repeat(11)}|`,
      row("bare express (202, no work)", bareResult),
      row("trusted-mr-bot receiver (store)", receiverResult),
      "",
      `receiver p99: ${receiverResult.latencyP99Ms.toFixed(1)} ms (aim < 25 ms)`,
      `per round, receiver/bare: ${receiverRuns.map((r, i) => (r.requestsPerSecond / bareRuns[i]!.requestsPerSecond).toFixed(2)).join(" ")}`,
      `receiver: ${queued} webhooks queued, ${other} other outcomes, ${stored} deliveries stored in the inbox; failed requests: ${failed}`,
      `command: ${ownRedis ? "" : `REDIS_URL=${redisUrl} `}npm run bench:receiver -- --duration ${durationSeconds} --warmup ${warmupSeconds} --rounds ${rounds} --connections ${connections}`,
      // The headline, last so that scripts can take it with `tail -1` (aim: >= 0.75).
      `receiver throughput / bare express: ${ratio.toFixed(2)}`,
      "",
    ];
    process.stdout.write(lines.join("\n"));
  } finally {
    loadGenerator.kill();
    bareServer.close();
    await service.close();
    let cursor = "0";
    do {
      const [next, keys] = await probe.scan(cursor, "MATCH", `${run}:*`, "COUNT", 5000);
      cursor = next;
      if (keys.length > 0) await probe.unlink(...keys);
    } while (cursor !== "0");
    await probe.quit();
    await ownRedis?.stop();
  }
}

await main();
