/**
 * Start a throwaway `redis-server` on a free loopback port, for `demo`, benchmarks and tests run by hand.
 * Production never uses this: it connects to `redis.url`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface LocalRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startLocalRedis(options: { binary?: string } = {}): Promise<LocalRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tmr-redis-"));
  const child = spawn(
    options.binary ?? "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const spawnError = new Promise<never>((_, reject) =>
    child.once("error", (err) =>
      reject(
        new Error(
          `cannot start redis-server (${(err as NodeJS.ErrnoException).code}); install it: apt-get install -y redis-server`,
          { cause: err },
        ),
      ),
    ),
  );
  await Promise.race([
    waitForPort(port, 10_000),
    spawnError,
    exited.then(() => Promise.reject(new Error("redis-server exited at start"))),
  ]);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await stopChild(child, exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

/** A free TCP port on the loopback interface (closed again before it is returned; taken by the caller). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves when something accepts connections on `127.0.0.1:port`; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, what = "redis-server"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
      s.connect(port, "127.0.0.1");
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
