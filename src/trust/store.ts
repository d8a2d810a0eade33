/**
 * What the workflow keeps in Redis: caches of GitLab state and hints from events, never a decision (STYLE.md §5).
 * Losing all of it costs API calls (the next reconcile reads everything), not correctness.
 *
 * - MR cache: the sticky note as the bot last wrote or read it, and whether the source branch is a committer
 *   branch. A warm cache saves re-listing the MR's notes on every event; the sweep bypasses it.
 * - Hints: what events said changed since the last reconcile of an MR (its trusted branch was pushed by hand, a
 *   pipeline on it changed, a sweep asked for a full look). Observe reads exactly those things again. A hint is
 *   cleared only after a pass succeeded, and only if no newer hint replaced it meanwhile. Hints are the one
 *   place what an event said survives: reconcile jobs are coalesced, so their own data may be dropped.
 * - Pass markers: "a job holding this MR's lock will look at the hints again before it lets go". A pipeline event
 *   that arrives meanwhile (typically the echo of the bot's own write) leaves its hint and enqueues nothing; the
 *   job compares it with what it recorded and runs another pass if it tells something new.
 * - The bot's own user, and when the sweep first saw an orphaned trusted branch.
 */
import { randomUUID } from "node:crypto";
import type { MergeRequest, User } from "../gitlab/port.js";
import type { MrKey } from "../queue/jobs.js";
import type { Redis } from "../redis.js";

export interface MrCache {
  noteId: number | null;
  noteBody: string | null;
  committerBranch: boolean;
  /** The source branch the cache was written for (a changed source branch invalidates it). */
  sourceBranch: string;
  /**
   * GitLab's last answer about the MR: as the last pass read it at its start, with the pass's own label writes.
   * What the incremental sweep (sweep.ts) compares a list page with, and what a pipeline-mirroring pass decides
   * from (workflow.ts). The trusted branch and the pipeline are what the note records (`noteBody`).
   */
  mr?: MergeRequest;
  /** When (ms, the bot's clock) a pass last read everything about the MR (a "full" pass); the sweep's rota. */
  verifiedAt?: number;
}

export interface Hints {
  /** Read everything again (sweep, or a cold cache). */
  full: boolean;
  /** The trusted branch was pushed (created, moved, deleted) by someone other than the bot. */
  branch?: { pusher?: User };
  /**
   * Pipelines on the trusted branch whose status changed, with the status the event reported: one entry per
   * (pipeline, status), so events that arrive out of order or pile up before a reconcile all count.
   */
  pipelines: PipelineHint[];
  /** What the sweep's list pages said (`hintListed`), for a pass with a cold cache. */
  listed?: ListedFacts;
  /** Raw fields as read, for the compare-and-delete in {@link TrustStore.endPass}. */
  raw: Record<string, string>;
}

/**
 * What the sweep's list pages said about an MR a moment ago. `branchSha`: the trusted branch's SHA per the list of
 * trusted branches (`null`: no such branch); it only ever confirms the note's record (observe.ts). `committerBranch`:
 * whether the MR's source branch is protected, per the project's branch list (the same `protected` a single branch
 * read gives: GitLab's `ProtectedBranch.protected?`).
 */
export interface ListedFacts {
  branchSha?: string | null;
  committerBranch?: boolean;
}

/** Whether there is any hint at all. */
export function hasHints(hints: Hints): boolean {
  return Object.keys(hints.raw).length > 0;
}

/** A hint as written: its field and its (unique) value. */
export interface WrittenHint {
  field: string;
  value: string;
}

/** What a pipeline event said: pipeline `id` now has `status`. */
export interface PipelineHint {
  id: number;
  status: string;
}

/**
 * MR caches outlive the sweep's slowest rota (`sweep.verify_interval_seconds`, default 2 days): an MR whose cache
 * expired costs the sweep a cold look. Open MRs are kept warm by every pass; a closed one's cache simply expires.
 */
const CACHE_TTL_SECONDS = 8 * 24 * 3600;
/** A command intent outlives any retry of its command (retries back off to minutes, outages last hours). */
const INTENT_TTL_SECONDS = 24 * 3600;
const PENDING_TTL_SECONDS = 7 * 24 * 3600;

/**
 * A committer's command as written ahead of the branch write it causes: `/trust` (pinning `sha`) or `/untrust`.
 * A pass that finds the branch as the command left it records the command's outcome for its author and note.
 */
export interface CommandIntent {
  command: "trust" | "untrust";
  /** The SHA a `/trust` pins. */
  sha?: string;
  by: string;
  at: string;
  noteId: number;
  noteUrl?: string;
}

/** KEYS[1]; ARGV[1] value. Deletes the key if it still holds that value. */
const DELETE_IF_EQUAL = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`;
const HINT_TTL_SECONDS = 24 * 3600;
const BOT_TTL_SECONDS = 3600;

/**
 * KEYS[1] hints, KEYS[2] pass marker; ARGV[1] the pass's token, then the field/value pairs the pass read. Deletes
 * those still unchanged and returns the hints left; only when none are left does the marker go, in the same step,
 * so a hint written while a pipeline job saw the marker is always in some answer.
 */
const END_PASS = `
for i = 2, #ARGV, 2 do
  if redis.call("HGET", KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call("HDEL", KEYS[1], ARGV[i])
  end
end
local left = redis.call("HGETALL", KEYS[1])
if #left == 0 and redis.call("GET", KEYS[2]) == ARGV[1] then
  redis.call("DEL", KEYS[2])
end
return left`;

/** KEYS[1] hints; ARGV[1] field, ARGV[2] value. Deletes the field if it still holds that value. */
const WITHDRAW_HINT = `
if redis.call("HGET", KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call("HDEL", KEYS[1], ARGV[1])
end
return 0`;

/** KEYS[1] pass marker; ARGV[1] token, ARGV[2] ttl ms. Sets it again unless another pass's token is there. */
const RENEW_PASS = `
local holder = redis.call("GET", KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
end
return 1`;

/** KEYS[1] hints, KEYS[2] pass marker; ARGV[1] token. Removes the marker if still the pass's; returns the hints. */
const ABANDON_PASS = `
if redis.call("GET", KEYS[2]) == ARGV[1] then
  redis.call("DEL", KEYS[2])
end
return redis.call("HGETALL", KEYS[1])`;

export class TrustStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(...parts: Array<string | number>): string {
    return [this.prefix, "trust", ...parts].join(":");
  }

  async getMrCache(mr: MrKey): Promise<MrCache | undefined> {
    return parseMrCache(await this.redis.get(this.key("mr", mr.projectId, mr.mrIid)));
  }

  /** The caches of many MRs in one round trip per 500 (the sweep); `undefined` where there is none. */
  async getMrCaches(mrs: readonly MrKey[]): Promise<Array<MrCache | undefined>> {
    const out: Array<MrCache | undefined> = [];
    for (let i = 0; i < mrs.length; i += 500) {
      const keys = mrs.slice(i, i + 500).map((mr) => this.key("mr", mr.projectId, mr.mrIid));
      for (const raw of await this.redis.mget(...keys)) out.push(parseMrCache(raw));
    }
    return out;
  }

  async putMrCache(mr: MrKey, cache: MrCache): Promise<void> {
    await this.redis.set(this.key("mr", mr.projectId, mr.mrIid), JSON.stringify(cache), "EX", CACHE_TTL_SECONDS);
  }

  async hintFull(mr: MrKey): Promise<void> {
    await this.hint(mr, "full", randomUUID());
  }

  async hintBranch(mr: MrKey, pusher?: User): Promise<void> {
    await this.hint(mr, "branch", JSON.stringify({ pusher, n: randomUUID() }));
  }

  /** Records what a pipeline event said; returns the hint, for {@link withdrawHint}. */
  async hintPipeline(mr: MrKey, pipelineId: number, status: string): Promise<WrittenHint> {
    return this.hint(mr, `pipeline:${pipelineId}:${status}`, JSON.stringify({ status, n: randomUUID() }));
  }

  private async hint(mr: MrKey, field: string, value: string): Promise<WrittenHint> {
    const key = this.hintsKey(mr);
    await this.redis.multi().hset(key, field, value).expire(key, HINT_TTL_SECONDS).exec();
    return { field, value };
  }

  /**
   * Takes back a hint that turned out to say nothing new, unless it was written again since. A pass that read it
   * meanwhile has already seen it; one that comes later must not take a stale "nothing changed" from it.
   */
  async withdrawHint(mr: MrKey, hint: WrittenHint): Promise<void> {
    await this.redis.eval(WITHDRAW_HINT, 1, this.hintsKey(mr), hint.field, hint.value);
  }

  private hintsKey(mr: MrKey): string {
    return this.key("hints", mr.projectId, mr.mrIid);
  }

  async readHints(mr: MrKey): Promise<Hints> {
    return parseHints(await this.redis.hgetall(this.hintsKey(mr)));
  }

  /**
   * Marks `mr` as having a reconcile pass that will look at the hints again before it ends; call before reading
   * them. The marker expires after `ttlMs` in case the process dies: the job's retry then reads the hints anyway.
   */
  async beginPass(mr: MrKey, ttlMs: number): Promise<string> {
    const token = randomUUID();
    await this.redis.set(this.passKey(mr), token, "PX", ttlMs);
    return token;
  }

  /** Renews the marker for the next pass of the same job, unless another job's pass has taken it meanwhile. */
  async renewPass(mr: MrKey, ttlMs: number, token: string): Promise<void> {
    await this.redis.eval(RENEW_PASS, 1, this.passKey(mr), token, ttlMs);
  }

  /** Whether a pass of `mr` is running, and so will look at a hint written now before it ends. */
  async passRunning(mr: MrKey): Promise<boolean> {
    return (await this.redis.exists(this.passKey(mr))) === 1;
  }

  /**
   * The pass with `token` is done with the hints `read`: deletes them (if unchanged) and returns the hints written
   * since. When none were, the marker is gone too and the pass is over.
   */
  async endPass(mr: MrKey, read: Hints, token: string): Promise<Hints> {
    const args = [token, ...Object.entries(read.raw).flat()];
    return parseHints(pairs(await this.redis.eval(END_PASS, 2, this.hintsKey(mr), this.passKey(mr), ...args)));
  }

  /** Ends the pass with `token` whatever hints are left (it failed); returns them, none cleared. */
  async abandonPass(mr: MrKey, token: string): Promise<Hints> {
    return parseHints(pairs(await this.redis.eval(ABANDON_PASS, 2, this.hintsKey(mr), this.passKey(mr), token)));
  }

  private passKey(mr: MrKey): string {
    return this.key("pass", mr.projectId, mr.mrIid);
  }

  async botUser(load: () => Promise<User>): Promise<User> {
    const key = this.key("bot-user");
    const raw = await this.redis.get(key);
    if (raw) {
      try {
        return JSON.parse(raw) as User;
      } catch {
        // Fall through and read it again.
      }
    }
    const user = await load();
    await this.redis.set(key, JSON.stringify(user), "EX", BOT_TTL_SECONDS);
    return user;
  }

  // ---- the sweep (sweep.ts) ----

  /**
   * What the sweep's list pages said about the MR (`ListedFacts`), for a pass with a cold cache: where the branch
   * list agrees with the note's record, the record is confirmed without reading the branch again; where it does
   * not, the pass reads the branch. Never taken as the trusted branch's state on its own.
   */
  async hintListed(mr: MrKey, facts: ListedFacts): Promise<void> {
    await this.hint(mr, "listed", JSON.stringify({ ...facts, n: randomUUID() }));
  }

  /**
   * Claims the sweep for `ttlMs` (one pass at a time, across processes); the token to release it, or `undefined`
   * while another pass holds it.
   */
  async claimSweep(ttlMs: number): Promise<string | undefined> {
    const token = randomUUID();
    const ok = await this.redis.set(this.key("sweep", "running"), token, "PX", ttlMs, "NX");
    return ok === "OK" ? token : undefined;
  }

  async releaseSweep(token: string): Promise<void> {
    await this.redis.eval(DELETE_IF_EQUAL, 1, this.key("sweep", "running"), token);
  }

  /** When the last completed sweep pass of the project started (ISO), if one did within the cache's lifetime. */
  async lastSweep(projectId: number): Promise<string | undefined> {
    return (await this.redis.get(this.key("sweep", "last", projectId))) ?? undefined;
  }

  async putLastSweep(projectId: number, startedAt: string): Promise<void> {
    await this.redis.set(this.key("sweep", "last", projectId), startedAt, "EX", CACHE_TTL_SECONDS);
  }

  /** When the sweep first saw `branch` without an MR; set now if unknown. */
  async orphanSince(projectId: number, branch: string, nowMs: number, ttlSeconds: number): Promise<number> {
    const key = this.key("orphan", projectId, branch);
    await this.redis.set(key, String(nowMs), "EX", ttlSeconds, "NX");
    const raw = await this.redis.get(key);
    return raw ? Number(raw) : nowMs;
  }

  async forgetOrphan(projectId: number, branch: string): Promise<void> {
    await this.redis.del(this.key("orphan", projectId, branch));
  }

  /**
   * The reason `userId` was refused as a committer in `projectId` within the last `ttlSeconds` (committers.ts).
   * Only refusals are cached, never grants: a Maintainer demoted a second ago must not stay a committer.
   */
  async cachedRefusal(projectId: number, userId: number): Promise<string | undefined> {
    return (await this.redis.get(this.key("refusal", projectId, userId))) ?? undefined;
  }

  async cacheRefusal(projectId: number, userId: number, reason: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.key("refusal", projectId, userId), reason, "EX", ttlSeconds);
  }

  /**
   * Whether the refused `userId` was answered on `mr` within the reply window, or is being answered right now
   * (see {@link claimRefusalAnswer}).
   */
  async refusalAnswered(mr: MrKey, userId: number): Promise<boolean> {
    return (await this.redis.exists(this.refusalAnswerKey(mr, userId))) === 1;
  }

  /**
   * Claims the one answer the refused `userId` gets on `mr` for `ttlSeconds`; `false` when it was claimed already.
   * Atomic, so it holds without the MR lock too. The job that fails before answering gives the claim back
   * ({@link releaseRefusalAnswer}) so that its retry answers.
   */
  async claimRefusalAnswer(mr: MrKey, userId: number, ttlSeconds: number): Promise<boolean> {
    return (await this.redis.set(this.refusalAnswerKey(mr, userId), "1", "EX", ttlSeconds, "NX")) === "OK";
  }

  async releaseRefusalAnswer(mr: MrKey, userId: number): Promise<void> {
    await this.redis.del(this.refusalAnswerKey(mr, userId));
  }

  private refusalAnswerKey(mr: MrKey, userId: number): string {
    return this.key("refusal-answered", mr.projectId, mr.mrIid, userId);
  }

  // ---- answers to commands that wait or cannot be carried out (worker.ts, workflow.ts `answerCommand`) ----

  /**
   * Claims the one answer of `kind` to command note `noteId` on `mr` (`delayed`: not carried out yet, will be;
   * `failed`: cannot be); `false` when it was claimed already. Kept for {@link COMMAND_ANSWER_TTL_SECONDS}, longer
   * than any outage a command job waits out in practice. The job that fails to post the answer gives the claim back
   * ({@link releaseCommandAnswer}) so that its next attempt posts it.
   */
  async claimCommandAnswer(mr: MrKey, noteId: number, kind: "delayed" | "failed"): Promise<boolean> {
    const key = this.commandAnswerKey(mr, noteId, kind);
    return (await this.redis.set(key, "1", "EX", COMMAND_ANSWER_TTL_SECONDS, "NX")) === "OK";
  }

  /** Whether the answer of `kind` to `noteId` was claimed (posted, or being posted). */
  async commandAnswered(mr: MrKey, noteId: number, kind: "delayed" | "failed"): Promise<boolean> {
    return (await this.redis.exists(this.commandAnswerKey(mr, noteId, kind))) === 1;
  }

  async releaseCommandAnswer(mr: MrKey, noteId: number, kind: "delayed" | "failed"): Promise<void> {
    await this.redis.del(this.commandAnswerKey(mr, noteId, kind));
  }

  private commandAnswerKey(mr: MrKey, noteId: number, kind: string): string {
    return this.key("command-answered", mr.projectId, mr.mrIid, noteId, kind);
  }

  // ---- write-ahead: grants about to be made, and deferred actions not yet done ----

  /**
   * Records a committer's command before the trusted branch is touched (a job that dies after the branch write
   * must not leave a grant "by unknown", or a deleted branch "revoked by someone"): a later pass that finds the
   * branch as the command left it records the command's outcome, by this committer, for this note.
   */
  async writeIntent(mr: MrKey, intent: CommandIntent): Promise<void> {
    await this.redis.set(this.intentKey(mr), JSON.stringify(intent), "EX", INTENT_TTL_SECONDS);
  }

  async intent(mr: MrKey): Promise<CommandIntent | undefined> {
    const raw = await this.redis.get(this.intentKey(mr));
    if (!raw) return undefined;
    try {
      const parsed = JSON.parse(raw) as Partial<CommandIntent>;
      const known = parsed.command === "untrust" || (parsed.command === "trust" && typeof parsed.sha === "string");
      return known && typeof parsed.by === "string" && typeof parsed.noteId === "number"
        ? (parsed as CommandIntent)
        : undefined;
    } catch {
      return undefined;
    }
  }

  /** Forgets the intent once the note records its outcome (only if it is still the one that was read). */
  async clearIntent(mr: MrKey, intent: CommandIntent): Promise<void> {
    await this.redis.eval(DELETE_IF_EQUAL, 1, this.intentKey(mr), JSON.stringify(intent));
  }

  private intentKey(mr: MrKey): string {
    return this.key("intent", mr.projectId, mr.mrIid);
  }

  /**
   * Deferred actions (audit entries, awards, replies) written before the note that records their transition, so a
   * job that dies in between leaves them here for the next pass of the MR instead of losing them. Keyed so that
   * the same action decided again by a retry replaces, never doubles, the one left behind.
   */
  async putPending(mr: MrKey, actions: ReadonlyArray<{ key: string; action: unknown }>): Promise<void> {
    if (actions.length === 0) return;
    const key = this.pendingKey(mr);
    const fields = actions.flatMap((a) => [a.key, JSON.stringify(a.action)]);
    await this.redis
      .multi()
      .hset(key, ...fields)
      .expire(key, PENDING_TTL_SECONDS)
      .exec();
  }

  /** Every pending action of the MR, by key. */
  async pending(mr: MrKey): Promise<Array<{ key: string; action: unknown }>> {
    const raw = await this.redis.hgetall(this.pendingKey(mr));
    return Object.entries(raw).flatMap(([key, value]) => {
      try {
        return [{ key, action: JSON.parse(value) as unknown }];
      } catch {
        return [];
      }
    });
  }

  async donePending(mr: MrKey, key: string): Promise<void> {
    await this.redis.hdel(this.pendingKey(mr), key);
  }

  /** The Redis hash that holds the MR's pending actions (for {@link AuditLog.recordPending}). */
  pendingKey(mr: MrKey): string {
    return this.key("pending", mr.projectId, mr.mrIid);
  }
}

function parseMrCache(raw: string | null | undefined): MrCache | undefined {
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(raw) as MrCache;
    return typeof parsed.sourceBranch === "string" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** A flat `[field, value, ...]` reply as an object. */
function pairs(reply: unknown): Record<string, string> {
  const flat = reply as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

/** Hints from the raw hash. Pipeline fields are `pipeline:<id>:<status>`; the older `pipeline:<id>` is still read. */
function parseHints(raw: Record<string, string>): Hints {
  const hints: Hints = { full: raw["full"] !== undefined, pipelines: [], raw };
  for (const [field, value] of Object.entries(raw)) {
    try {
      if (field === "branch") {
        const { pusher } = JSON.parse(value) as { pusher?: unknown };
        hints.branch = isUser(pusher) ? { pusher: { id: pusher.id, username: pusher.username } } : {};
      } else if (field === "listed") {
        const { branchSha, committerBranch } = JSON.parse(value) as { branchSha?: unknown; committerBranch?: unknown };
        const shaOk =
          branchSha === undefined ||
          branchSha === null ||
          (typeof branchSha === "string" && /^[0-9a-f]{40}$/.test(branchSha));
        if (!shaOk || !(committerBranch === undefined || typeof committerBranch === "boolean"))
          throw new Error("malformed");
        hints.listed = {
          ...(branchSha !== undefined ? { branchSha: branchSha as string | null } : {}),
          ...(committerBranch !== undefined ? { committerBranch } : {}),
        };
      } else if (field.startsWith("pipeline:")) {
        const { status } = JSON.parse(value) as { status: string };
        const id = Number(field.split(":")[1]);
        if (!Number.isInteger(id) || typeof status !== "string") throw new Error("malformed pipeline hint");
        hints.pipelines.push({ id, status });
      }
    } catch {
      hints.full = true;
    }
  }
  return hints;
}

function isUser(value: unknown): value is User {
  const u = value as Partial<User> | null | undefined;
  return typeof u?.id === "number" && typeof u.username === "string";
}

/** How long the claim of a command's answer is kept (`TrustStore.claimCommandAnswer`): 30 days. */
const COMMAND_ANSWER_TTL_SECONDS = 30 * 24 * 3600;
