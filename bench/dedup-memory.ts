/**
 * `npx tsx bench/dedup-memory.ts`: the Redis memory the receiver's duplicate protection holds at a steady rate of
 * deliveries (issue 10: at most 64 MiB at 10 webhooks/s).
 *
 * Stores synthetic deliveries through the real `createInboxStore` (the receiver's script) into a private
 * redis-server, a realistic mix with 5 % command notes, and measures `used_memory` (`INFO memory`) over the keys
 * they leave (the inbox stream is deleted first: the worker's pump empties it within moments). Both kinds of key
 * are a short string with an expiry, so the bytes per key are averaged over both, Redis's hash tables included.
 * The figure is extrapolated with the lifetime the keys really have (their `PTTL`): at R deliveries/s,
 * R x delivery TTL delivery ids and R x share x command TTL command notes are alive at any moment. The same figure
 * for "every delivery id kept as long" (the design before issue 10) is printed for comparison.
 *
 * Options: --deliveries <n> (100000), --rate <per second> (10), --command-share <0..1> (0.05).
 */
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { configSchema } from "../src/config/config.js";
import { startLocalRedis } from "../src/local-redis.js";
import { commandKey, createInboxStore, deliveryKey, inboxKey } from "../src/queue/inbox.js";
import type { JobData } from "../src/queue/jobs.js";
import { createRedis, type Redis } from "../src/redis.js";

export interface DedupMemory {
  deliveries: number;
  commands: number;
  /** `used_memory` grown per key, averaged over delivery ids and command notes. */
  bytesPerKey: number;
  /** Seconds a delivery id and a command note are kept, read back from Redis. */
  deliveryTtlSeconds: number;
  commandTtlSeconds: number;
  /** Steady-state bytes at `rate` deliveries/s with `commandShare` of them commands. */
  steadyBytes: number;
  /** The same, had every delivery id been kept as long as a command note (one 7-day memory). */
  everyIdKeptBytes: number;
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

/**
 * Measures on a private redis-server started for it (`used_memory` counts every client's keys, so a shared one would
 * not do). `webhook` sets the TTLs (the configuration's defaults when absent).
 */
export async function measureDedupMemory(options: {
  deliveries: number;
  rate: number;
  commandShare: number;
  webhook?: Record<string, unknown>;
}): Promise<DedupMemory> {
  const local = await startLocalRedis();
  const config = configSchema.parse({
    webhook: { secret: "bench", ...options.webhook },
    redis: { url: local.url, prefix: "tmr" },
  });
  const redis = createRedis(local.url, "durable");
  try {
    const store = createInboxStore(redis, config);
    const reconcile = (i: number): JobData => ({
      kind: "reconcile",
      projectId: 1000 + (i % 50),
      mrIid: 1 + (i % 400),
      reason: "Merge Request Hook:update",
    });
    const command = (noteId: number): JobData => ({
      kind: "command",
      projectId: 1000 + (noteId % 50),
      mrIid: 1 + (noteId % 400),
      noteId,
      body: "/trust",
      action: "create",
      system: false,
      author: { id: 7, username: "maya" },
    });
    // The script is loaded and the stream exists before the first reading.
    await store.accept(randomUUID(), [reconcile(0)]);
    await redis.del(inboxKey(config));
    await redis.flushall();
    const before = await usedMemory(redis);

    const everyNth = Math.round(1 / options.commandShare);
    const commandKeys: string[] = [];
    let lastDeliveryId = "";
    const batch = 500;
    for (let start = 0; start < options.deliveries; start += batch) {
      const accepts: Array<Promise<unknown>> = [];
      for (let i = start; i < Math.min(start + batch, options.deliveries); i++) {
        // GitLab's Idempotency-Key is a UUID; note ids are large numbers on any real instance.
        lastDeliveryId = randomUUID();
        const jobs = i % everyNth === 0 ? [command(400_000_000 + i)] : [reconcile(i)];
        if (jobs[0]!.kind === "command") commandKeys.push(commandKey(config, jobs[0]!));
        accepts.push(store.accept(lastDeliveryId, jobs));
      }
      await Promise.all(accepts);
    }
    await redis.del(inboxKey(config));
    const grown = (await usedMemory(redis)) - before;
    const bytesPerKey = grown / (await redis.dbsize());
    const deliveryTtlSeconds = (await redis.pttl(deliveryKey(config, lastDeliveryId))) / 1000;
    const commandTtlSeconds = commandKeys.length ? Math.max(0, await redis.pttl(commandKeys[0]!)) / 1000 : 0;
    const longest = Math.max(deliveryTtlSeconds, commandTtlSeconds);
    return {
      deliveries: options.deliveries,
      commands: commandKeys.length,
      bytesPerKey,
      deliveryTtlSeconds,
      commandTtlSeconds,
      steadyBytes: bytesPerKey * options.rate * (deliveryTtlSeconds + options.commandShare * commandTtlSeconds),
      everyIdKeptBytes: bytesPerKey * options.rate * longest,
    };
  } finally {
    await redis.quit();
    await local.stop();
  }
}

const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      deliveries: { type: "string", default: "100000" },
      rate: { type: "string", default: "10" },
      "command-share": { type: "string", default: "0.05" },
    },
  });
  const rate = Number(values.rate);
  const commandShare = Number(values["command-share"]);
  const m = await measureDedupMemory({ deliveries: Number(values.deliveries), rate, commandShare });
  const lines = [
    `${m.deliveries} deliveries, ${m.commands} of them commands, into a private redis-server (INFO memory):`,
    `  ${m.bytesPerKey.toFixed(1)} B per key; delivery ids kept ${m.deliveryTtlSeconds.toFixed(0)} s, command notes ${m.commandTtlSeconds.toFixed(0)} s`,
    `  alive at ${rate} webhooks/s: ${(rate * m.deliveryTtlSeconds).toFixed(0)} delivery ids, ${(rate * commandShare * m.commandTtlSeconds).toFixed(0)} command notes`,
    `every delivery id kept ${Math.max(m.deliveryTtlSeconds, m.commandTtlSeconds).toFixed(0)} s (before issue 10): ${(m.everyIdKeptBytes / MiB).toFixed(1)} MiB at ${rate} webhooks/s`,
    `command: npx tsx bench/dedup-memory.ts --deliveries ${m.deliveries} --rate ${rate} --command-share ${commandShare}`,
    `dedupe memory at ${rate} webhooks/s, ${(commandShare * 100).toFixed(0)} % commands: ${(m.steadyBytes / MiB).toFixed(1)} MiB (aim <= 64 MiB)`,
    "",
  ];
  process.stdout.write(lines.join("\n"));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
