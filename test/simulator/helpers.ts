/** Shared fixtures for the simulator tests: a seeded world, a webhook receiver, gitbeaker error assertions. */
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { Gitlab } from "@gitbeaker/rest";
import { AccessLevel, GitLabSimulator, type SimProject, type SimUser } from "../../src/simulator/gitlab-simulator.js";

export type Api = InstanceType<typeof Gitlab>;

export function client(sim: GitLabSimulator, user: SimUser): Api {
  return new Gitlab({ host: sim.url, token: user.token });
}

/**
 * The workflow's cast: `org/app` (public) with a bot (Maintainer via the group), a committer (Developer), a
 * reporter, and a contributor who is no member and works in a fork.
 */
export interface World {
  sim: GitLabSimulator;
  bot: SimUser;
  committer: SimUser;
  reporter: SimUser;
  contributor: SimUser;
  app: SimProject;
  fork: SimProject;
}

export async function seedWorld(o: { ciJobs?: Array<{ name: string; stage: string }> } = {}): Promise<World> {
  const sim = await GitLabSimulator.start();
  const bot = sim.addUser({ username: "trusted-bot", name: "Trusted Bot", bot: true });
  const committer = sim.addUser({ username: "carol", name: "Carol Committer" });
  const reporter = sim.addUser({ username: "rita", name: "Rita Reporter" });
  const contributor = sim.addUser({ username: "dave", name: "Dave Contributor" });
  const org = sim.addGroup({ path: "org" });
  sim.addMember({ groupId: org.id }, bot.id, AccessLevel.Maintainer);
  sim.addMember({ groupId: org.id }, committer.id, AccessLevel.Developer);
  sim.addMember({ groupId: org.id }, reporter.id, AccessLevel.Reporter);
  const app = sim.addProject({
    path: "org/app",
    ciJobs: o.ciJobs ?? [
      { name: "build", stage: "build" },
      { name: "test", stage: "test" },
    ],
  });
  sim.protectBranch(app.id, {
    name: "main",
    pushAccessLevel: AccessLevel.Maintainer,
    mergeAccessLevel: AccessLevel.Developer,
  });
  const fork = sim.fork(app.id, { ownerId: contributor.id, path: "dave/app" });
  return { sim, bot, committer, reporter, contributor, app, fork };
}

/** Asserts that a gitbeaker call fails with `status` (and, if given, a matching error description). */
export async function rejectsWith(p: Promise<unknown>, status: number, message?: string | RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    const cause = (e as { cause?: { response?: Response; description?: string } }).cause;
    assert.equal(cause?.response?.status, status, `expected HTTP ${status}, got ${String(e)}`);
    if (typeof message === "string") assert.equal(cause?.description, message);
    else if (message) assert.match(cause?.description ?? "", message);
    return;
  }
  assert.fail(`expected HTTP ${status}, but the call succeeded`);
}

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver on a random port that records every request and answers `status` (default 200). */
export async function startReceiver(o: { status?: number } = {}) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.statusCode = o.status ?? 200;
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/gitlab`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Raw request to the simulator's API (to look at headers and bodies gitbeaker hides). */
export function raw(sim: GitLabSimulator, user: SimUser | undefined, path: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  if (user) headers.set("PRIVATE-TOKEN", user.token);
  if (init.body) headers.set("content-type", "application/json");
  return fetch(`${sim.url}/api/v4${path}`, { ...init, headers });
}
