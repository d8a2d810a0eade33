/**
 * A Redis Sentinel deployment of real processes on loopback ports, for failover tests: one primary, replicas and
 * three Sentinels (`redis-server --sentinel`: the Sentinel is part of Debian's redis-server, no other package).
 *
 * Replicas can be made to lag: each replicates through a proxy that holds what the primary sends for
 * `replicationDelayMs` (what the replica answers goes straight back). Killing the primary also cuts these links and
 * drops what they hold, which is what a lost host or network does to writes the primary acknowledged but had not
 * yet sent: a plain SIGKILL on loopback cannot show it, since the kernel still delivers what the dead process wrote.
 *
 * The replicas' configured master (the proxy) differs from the primary's address, which Sentinel "fixes" only after
 * `failover-timeout` (`+fix-slave-config`), so the proxies stay in place for the length of a test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { waitFor } from "./wait.js";

export interface SentinelTopologyOptions {
  /** The Sentinels' name for the primary. */
  name?: string;
  replicas?: number;
  /** How long a replica's proxy holds what the primary sends (0: no proxy). */
  replicationDelayMs?: number;
  /** `sentinel down-after-milliseconds`. */
  downAfterMs?: number;
  /** `sentinel failover-timeout`; see the module comment. */
  failoverTimeoutMs?: number;
}

export interface SentinelTopology {
  name: string;
  sentinels: Array<{ host: string; port: number }>;
  primaryPort: number;
  /** SIGKILL the primary and cut its replication links, dropping what they hold. */
  killPrimary(): Promise<void>;
  /** The primary's port according to the first Sentinel that answers. */
  primaryPortNow(): Promise<number | undefined>;
  /** A plain client for one node, for assertions. */
  client(port: number): Redis;
  /** The Sentinels' logs so far, for failure messages. */
  logs(): string;
  /** Stop every process (SIGKILL) and remove the temp dirs. Idempotent. */
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";

export async function startSentinelTopology(options: SentinelTopologyOptions = {}): Promise<SentinelTopology> {
  const name = options.name ?? "tmr";
  const dir = mkdtempSync(join(tmpdir(), "tmr-sentinel-"));
  const children: ChildProcess[] = [];
  const proxies: DelayProxy[] = [];
  const clients: Redis[] = [];
  let logText = "";
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  // Even when the test process dies before `stop`, no redis-server is left behind.
  process.once("exit", killAll);

  const spawnRedis = (label: string, args: string[]): ChildProcess => {
    const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (data: Buffer) => {
      if (label.startsWith("sentinel")) logText += data.toString("utf8").replace(/^(?=.)/gm, `[${label}] `);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    children.push(child);
    return child;
  };
  const nodeArgs = (port: number, nodeDir: string) => [
    "--port",
    String(port),
    "--bind",
    HOST,
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    nodeDir,
    // Redis 7 waits 5 s for more replicas before a diskless full sync.
    "--repl-diskless-sync-delay",
    "0",
  ];
  const subdir = (label: string) => mkdtempSync(join(dir, `${label}-`));

  const topology: SentinelTopology = {
    name,
    sentinels: [],
    primaryPort: 0,
    async killPrimary() {
      for (const proxy of proxies) proxy.cut();
      const primary = children[0]!;
      const exited = once(primary, "exit");
      primary.kill("SIGKILL");
      await exited;
    },
    async primaryPortNow() {
      for (const sentinel of topology.sentinels) {
        const client = new Redis({ ...sentinel, lazyConnect: true, retryStrategy: () => null, connectTimeout: 500 });
        client.on("error", () => undefined);
        try {
          const reply = (await client.call("SENTINEL", "get-master-addr-by-name", name)) as [string, string] | null;
          if (reply) return Number(reply[1]);
        } catch {
          // Try the next Sentinel.
        } finally {
          client.disconnect();
        }
      }
      return undefined;
    },
    client(port) {
      const client = new Redis({ host: HOST, port, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
      client.on("error", () => undefined);
      clients.push(client);
      return client;
    },
    logs: () => logText,
    async stop() {
      for (const client of clients.splice(0)) client.disconnect();
      for (const proxy of proxies.splice(0)) proxy.cut();
      const exits = children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => once(c, "exit"));
      killAll();
      await Promise.all(exits);
      process.off("exit", killAll);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    const primaryPort = await freePort();
    topology.primaryPort = primaryPort;
    spawnRedis("primary", nodeArgs(primaryPort, subdir("primary")));
    await waitFor("the primary to answer", () => ping(primaryPort), 10_000, 50);

    const replicaPorts: number[] = [];
    for (let i = 0; i < (options.replicas ?? 2); i++) {
      let upstream = primaryPort;
      if (options.replicationDelayMs) {
        const proxy = await startDelayProxy(primaryPort, options.replicationDelayMs);
        proxies.push(proxy);
        upstream = proxy.port;
      }
      const port = await freePort();
      replicaPorts.push(port);
      spawnRedis(`replica${i}`, [...nodeArgs(port, subdir(`replica${i}`)), "--replicaof", HOST, String(upstream)]);
    }
    const probe = topology.client(primaryPort);
    await waitFor(
      "the replicas to be in sync",
      async () => {
        const info = await probe.info("replication").catch(() => "");
        return (info.match(/^slave\d+:.*state=online/gm) ?? []).length === replicaPorts.length;
      },
      15_000,
      50,
    );

    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const sentinelDir = subdir(`sentinel${i}`);
      const conf = join(sentinelDir, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir ${sentinelDir}`,
          `sentinel monitor ${name} ${HOST} ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 30_000}`,
          `sentinel parallel-syncs ${name} 1`,
          "",
        ].join("\n"),
      );
      spawnRedis(`sentinel${i}`, [conf, "--sentinel"]);
      topology.sentinels.push({ host: HOST, port });
    }
    // Ready when every Sentinel knows both replicas and the two other Sentinels (hello messages every 2 s): a
    // failover needs a quorum of Sentinels that agree, and a replica to promote.
    const sentinelClients = topology.sentinels.map((s) => topology.client(s.port));
    await waitFor(
      "the Sentinels to know the replicas and each other",
      async () => {
        for (const client of sentinelClients) {
          const replicas = (await client.call("SENTINEL", "replicas", name).catch(() => [])) as unknown[];
          const others = (await client.call("SENTINEL", "sentinels", name).catch(() => [])) as unknown[];
          if (replicas.length !== replicaPorts.length || others.length !== 2) return false;
        }
        return true;
      },
      20_000,
      100,
    );
    return topology;
  } catch (error) {
    await topology.stop();
    throw new Error(`${(error as Error).message}\n${logText}`, { cause: error });
  }
}

interface DelayProxy {
  port: number;
  /** Close everything now and drop what is held. */
  cut(): void;
}

/** TCP proxy to `targetPort` that holds what the target sends for `delayMs`; the other direction is immediate. */
async function startDelayProxy(targetPort: number, delayMs: number): Promise<DelayProxy> {
  const links = new Set<{ down: Socket; up: Socket; timers: Set<NodeJS.Timeout> }>();
  const server: Server = createServer((down) => {
    const up = createConnection(targetPort, HOST);
    const link = { down, up, timers: new Set<NodeJS.Timeout>() };
    links.add(link);
    const close = () => {
      for (const timer of link.timers) clearTimeout(timer);
      down.destroy();
      up.destroy();
      links.delete(link);
    };
    down.on("data", (chunk) => up.write(chunk));
    // Timers of equal delay fire in order, so the stream stays in order.
    up.on("data", (chunk) => {
      const timer = setTimeout(() => {
        link.timers.delete(timer);
        down.write(chunk);
      }, delayMs);
      link.timers.add(timer);
    });
    for (const socket of [down, up]) {
      socket.on("error", close);
      socket.on("close", close);
    }
  });
  server.listen(0, HOST);
  await once(server, "listening");
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return {
    port: address.port,
    cut() {
      server.close();
      for (const link of [...links]) {
        for (const timer of link.timers) clearTimeout(timer);
        link.timers.clear();
        link.down.destroy();
        link.up.destroy();
      }
      links.clear();
    },
  };
}

async function ping(port: number): Promise<boolean> {
  const client = new Redis({ host: HOST, port, lazyConnect: true, retryStrategy: () => null, connectTimeout: 500 });
  client.on("error", () => undefined);
  try {
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, HOST);
  await once(probe, "listening");
  const address = probe.address();
  probe.close();
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}
