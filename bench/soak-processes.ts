/**
 * The OS processes of the soak (bench/soak.ts): a private `redis-server` with AOF, and the bot's `receiver`,
 * `worker` and `sweep` commands run as `node --import tsx src/cli.ts <command>`, each logging to its own file.
 * Everything spawned here is registered in a {@link ProcessGroup}, and `killAll` (also called on exit, Ctrl-C and
 * errors) SIGKILLs whatever still runs: a soak must not leave processes behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { freePort, waitForPort } from "../src/local-redis.js";

/** The children of this run, by pid; each removes itself when it exits. */
export class ProcessGroup {
  private readonly children = new Map<number, ChildProcess>();

  /** Spawns `command` with stdout and stderr appended to `logFile`; the child is killed with the group. */
  spawn(command: string, args: string[], o: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string }): ChildProcess {
    const fd = openSync(o.logFile, "a");
    try {
      const child = spawn(command, args, {
        cwd: o.cwd,
        env: o.env ?? process.env,
        stdio: ["ignore", fd, fd],
      });
      if (child.pid !== undefined) {
        const pid = child.pid;
        this.children.set(pid, child);
        child.once("exit", () => this.children.delete(pid));
      }
      return child;
    } finally {
      closeSync(fd);
    }
  }

  /** SIGKILL every child still running. Synchronous, so it also works from a `process.on("exit")` handler. */
  killAll(): void {
    for (const child of this.children.values()) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  }
}


/**
 * A private `redis-server` on a free loopback port with the append-only file on (as production should run it),
 * its data and log in `dir`. Dies with the group.
 */
export async function startAofRedis(group: ProcessGroup, dir: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = group.spawn(
    "redis-server",
    [
      ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
      ...["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
    ],
    { logFile: join(dir, "redis.log") },
  );
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (err) =>
      reject(
        new Error(
          `cannot start redis-server (${(err as NodeJS.ErrnoException).code}); apt-get install -y redis-server`,
        ),
      ),
    );
    child.once("exit", (code) => reject(new Error(`redis-server exited at start (${code}); see ${dir}/redis.log`)));
  });
  await Promise.race([waitForPort(port, 10_000, "redis-server"), failed]);
  failed.catch(() => undefined);
  return { url: `redis://127.0.0.1:${port}`, child };
}

/** `node --import tsx src/cli.ts <command> -c <config>`, from the project root `root`. */
export function spawnBot(
  group: ProcessGroup,
  root: string,
  command: "receiver" | "worker" | "sweep",
  o: { configFile: string; logFile: string; env?: NodeJS.ProcessEnv },
): ChildProcess {
  return group.spawn(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), command, "-c", o.configFile], {
    cwd: root,
    logFile: o.logFile,
    // The config file is the only source: no GITLAB_*/REDIS_URL/PORT from the caller's environment.
    env: { ...withoutBotEnv(process.env), ...o.env },
  });
}

/** Resolves with the exit code (or the signal's name) once the child has exited. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")));
}

const BOT_ENV = [
  "GITLAB_URL",
  "GITLAB_TOKEN",
  "GITLAB_WEBHOOK_SECRET",
  "GITLAB_WEBHOOK_SIGNING_TOKEN",
  "REDIS_URL",
  "PORT",
  "TMR_CONFIG",
];

function withoutBotEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const key of BOT_ENV) delete out[key];
  return out;
}

export { freePort, waitForPort };
