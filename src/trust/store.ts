/**
 * What the workflow keeps in Redis: caches of GitLab state and hints from events, never a decision (STYLE.md §5).
 * Losing all of it costs API calls (the next reconcile reads everything), not correctness.
 *
 * Per MR, one record (a Redis hash, {@link MrRecord}): everything a pass needs before its first GitLab call comes
 * back in one round trip, and a pipeline event's hint and its "is a pass running?" check are one more.
 * - `cache`: GitLab's last answer about the MR (the MR as the last pass read it, the sticky note as the bot last
 *   wrote or read it, whether the source branch is a committer branch). A warm cache saves re-listing the notes on
 *   every event; the incremental sweep compares its list pages with it.
 * - hints: what events said changed since the last pass (the trusted branch was pushed by hand, a pipeline on it
 *   changed, a sweep asked for a full look). Observe reads exactly those things again. A hint is cleared only after
 *   a pass succeeded, and only if no newer hint replaced it meanwhile. Hints are the one place what an event said
 *   survives: reconcile jobs are coalesced, so their own data may be dropped.
 * - `pass`: "a job holding this MR's lock will look at the hints again before it lets go" (a token and when it
 *   expires, in case the process dies). A pipeline event that arrives meanwhile (typically the echo of the bot's own
 *   write) leaves its hint and enqueues nothing; the job compares it with what it recorded and runs another pass if
 *   it tells something new.
 * - `intent`: a committer's command written ahead of the branch write it causes.
 * Besides: deferred actions not yet done, the bot's own user, the sweep's claim and bookmarks, refusals.
 */
import { randomUUID } from "node:crypto";
import type { MergeRequest, User } from "../gitlab/port.js";
import type { MrKey } from "../queue/jobs.js";
import { DELETE_IF_EQUAL, type Redis, RENEW_IF_EQUAL, runScript, script } from "../redis.js";

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

/** One MR's record as a pass starts from it. */
export interface MrRecord {
  cache?: MrCache;
  /** The command written ahead of its branch write, while it is not yet recorded in the note. */
  intent?: CommandIntent;
  hints: Hints;
  /** Deferred actions of the MR are waiting (only {@link TrustStore.beginPass} says; `true` when unknown). */
  pending: boolean;
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
  /** The hint fields as read, for the compare-and-delete in {@link TrustStore.endPass}. */
  raw: Record<string, string>;
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
 * MR records outlive the sweep's slowest rota (`sweep.verify_interval_seconds`, default 2 days): an MR whose record
 * expired costs the sweep a cold look. Open MRs are kept warm by every pass; a closed one's record simply expires.
 */
const RECORD_TTL_SECONDS = 8 * 24 * 3600;
/** A command intent outlives any retry of its command (retries back off to minutes, outages last hours). */
const INTENT_TTL_MS = 24 * 3600 * 1000;
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

/** The record's fields that are not hints. */
const CACHE = "cache";
const INTENT = "intent";
const PASS = "pass";

const BOT_TTL_SECONDS = 3600;

/**
 * Lua shared by the record's scripts. The pass marker is `<token> <expiry ms>`, on Redis's clock (`TIME`: every
 * process compares with the same clock).
 */
const RECORD_LUA = `
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function pass_holder(key)
  local v = redis.call("HGET", key, "${PASS}")
  if not v then return nil end
  local token, expiry = string.match(v, "^(%S+) (%d+)$")
  if not token or tonumber(expiry) <= now_ms() then return nil end
  return token
end
-- Writes the cache and, if the intent is still the one given (as stored; "" for none), forgets it.
local function remember(key, cache, ttl, intent)
  redis.call("HSET", key, "${CACHE}", cache)
  if intent ~= "" and redis.call("HGET", key, "${INTENT}") == intent then
    redis.call("HDEL", key, "${INTENT}")
  end
  redis.call("EXPIRE", key, ttl)
end
local function hints_of(key)
  local all = redis.call("HGETALL", key)
  local out = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if f ~= "${CACHE}" and f ~= "${INTENT}" and f ~= "${PASS}" then
      out[#out + 1] = f
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end
`;

/**
 * KEYS[1] record, KEYS[2] pending actions; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] record ttl s. Marks a pass as
 * running and returns `{ record fields, pending exists }`.
 */
const BEGIN_PASS = script(`${RECORD_LUA}
redis.call("HSET", KEYS[1], "${PASS}", ARGV[1] .. " " .. (now_ms() + tonumber(ARGV[2])))
redis.call("EXPIRE", KEYS[1], ARGV[3])
return { redis.call("HGETALL", KEYS[1]), redis.call("EXISTS", KEYS[2]) }`);

/** KEYS[1] record; ARGV[1] token, ARGV[2] ttl ms. Renews the marker unless another pass's live token is there. */
const RENEW_PASS = script(`${RECORD_LUA}
local holder = pass_holder(KEYS[1])
if holder == nil or holder == ARGV[1] then
  redis.call("HSET", KEYS[1], "${PASS}", ARGV[1] .. " " .. (now_ms() + tonumber(ARGV[2])))
end
return 1`);

/**
 * KEYS[1] record; ARGV[1] the pass's token, ARGV[2..4] as REMEMBER's (cache or "", ttl, intent or "": written
 * first, when given), then the hint field/value pairs the pass read. Deletes those still
 * unchanged and returns the hints left; only when none are left does the marker go, in the same step, so a hint
 * written while a pipeline job saw the marker is always in some answer.
 */
const END_PASS = script(`${RECORD_LUA}
if ARGV[2] ~= "" then remember(KEYS[1], ARGV[2], ARGV[3], ARGV[4]) end
for i = 5, #ARGV, 2 do
  if redis.call("HGET", KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call("HDEL", KEYS[1], ARGV[i])
  end
end
local left = hints_of(KEYS[1])
if #left == 0 and pass_holder(KEYS[1]) == ARGV[1] then
  redis.call("HDEL", KEYS[1], "${PASS}")
end
return left`);

/** KEYS[1] record; ARGV[1] token. Removes the marker if still the pass's; returns the hints, none cleared. */
const ABANDON_PASS = script(`${RECORD_LUA}
if pass_holder(KEYS[1]) == ARGV[1] then
  redis.call("HDEL", KEYS[1], "${PASS}")
end
return hints_of(KEYS[1])`);

/**
 * KEYS[1] record; ARGV[1] field, ARGV[2] value, ARGV[3] record ttl s. Writes a hint; returns `{ a pass is running,
 * the cache }` (a pipeline event's one round trip).
 */
const HINT = script(`${RECORD_LUA}
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
redis.call("EXPIRE", KEYS[1], ARGV[3])
return { pass_holder(KEYS[1]) and 1 or 0, redis.call("HGET", KEYS[1], "${CACHE}") }`);

/** KEYS[1] record. 1 when a pass holds a live marker. */
const PASS_RUNNING = script(`${RECORD_LUA}
return pass_holder(KEYS[1]) and 1 or 0`);

/** KEYS[1] record; ARGV[1] field, ARGV[2] value. Deletes the field if it still holds that value. */
const DELETE_FIELD_IF_EQUAL = script(`
if redis.call("HGET", KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call("HDEL", KEYS[1], ARGV[1])
end
return 0`);

/**
 * KEYS[1] record; ARGV[1] cache, ARGV[2] record ttl s, ARGV[3] the intent (as stored) the note now records, or "".
 * Writes the cache and, if the intent is still that one, forgets it.
 */
const REMEMBER = script(`${RECORD_LUA}
remember(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1`);

export class TrustStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(...parts: Array<string | number>): string {
    return [this.prefix, "trust", ...parts].join(":");
  }

  /** The MR's record (a hash; the name differs from the string key of versions before it, which simply expire). */
  private recordKey(mr: MrKey): string {
    return this.key("record", mr.projectId, mr.mrIid);
  }

  /** The MR's record as it is now (outside a pass: a command's answer, tests). */
  async record(mr: MrKey): Promise<MrRecord> {
    return { ...parseRecord(await this.redis.hgetall(this.recordKey(mr))), pending: true };
  }

  async getMrCache(mr: MrKey): Promise<MrCache | undefined> {
    return parseMrCache(await this.redis.hget(this.recordKey(mr), CACHE));
  }

  /** The caches of many MRs in one round trip per 500 (the sweep); `undefined` where there is none. */
  async getMrCaches(mrs: readonly MrKey[]): Promise<Array<MrCache | undefined>> {
    const out: Array<MrCache | undefined> = [];
    for (let i = 0; i < mrs.length; i += 500) {
      const batch = this.redis.pipeline();
      for (const mr of mrs.slice(i, i + 500)) batch.hget(this.recordKey(mr), CACHE);
      for (const [, raw] of (await batch.exec()) ?? []) out.push(parseMrCache(raw as string | null));
    }
    return out;
  }

  /**
   * Caches what a pass saw and wrote, and forgets `doneIntent` (the intent as read or written by the pass) when the
   * note now records its outcome, unless a newer one replaced it.
   */
  async remember(mr: MrKey, cache: MrCache, doneIntent?: CommandIntent): Promise<void> {
    const intent = doneIntent ? storedIntent(doneIntent) : "";
    await runScript(this.redis, REMEMBER, 1, this.recordKey(mr), JSON.stringify(cache), RECORD_TTL_SECONDS, intent);
  }

  async hintFull(mr: MrKey): Promise<void> {
    await this.hint(mr, "full", randomUUID());
  }

  async hintBranch(mr: MrKey, pusher?: User): Promise<void> {
    await this.hint(mr, "branch", JSON.stringify({ pusher, n: randomUUID() }));
  }

  /**
   * Records what a pipeline event said. Returns the hint (for {@link withdrawHint}), whether a pass of the MR is
   * running (it will look at the hint before it ends) and the MR's cache: one round trip.
   */
  async hintPipeline(
    mr: MrKey,
    pipelineId: number,
    status: string,
  ): Promise<{ hint: WrittenHint; passRunning: boolean; cache: MrCache | undefined }> {
    const field = `pipeline:${pipelineId}:${status}`;
    const value = JSON.stringify({ status, n: randomUUID() });
    const [running, cache] = (await runScript(
      this.redis,
      HINT,
      1,
      this.recordKey(mr),
      field,
      value,
      RECORD_TTL_SECONDS,
    )) as [number, string | null];
    return { hint: { field, value }, passRunning: running === 1, cache: parseMrCache(cache) };
  }

  private async hint(mr: MrKey, field: string, value: string): Promise<WrittenHint> {
    await runScript(this.redis, HINT, 1, this.recordKey(mr), field, value, RECORD_TTL_SECONDS);
    return { field, value };
  }

  /**
   * Takes back a hint that turned out to say nothing new, unless it was written again since. A pass that read it
   * meanwhile has already seen it; one that comes later must not take a stale "nothing changed" from it.
   */
  async withdrawHint(mr: MrKey, hint: WrittenHint): Promise<void> {
    await runScript(this.redis, DELETE_FIELD_IF_EQUAL, 1, this.recordKey(mr), hint.field, hint.value);
  }

  /**
   * Marks `mr` as having a reconcile pass that will look at the hints again before it ends, and returns the record
   * the pass starts from, in one round trip. The marker expires after `ttlMs` in case the process dies: the job's
   * retry then reads the hints anyway.
   */
  async beginPass(mr: MrKey, ttlMs: number): Promise<{ token: string; record: MrRecord }> {
    const token = randomUUID();
    const [fields, pending] = (await runScript(
      this.redis,
      BEGIN_PASS,
      2,
      this.recordKey(mr),
      this.pendingKey(mr),
      token,
      ttlMs,
      RECORD_TTL_SECONDS,
    )) as [string[], number];
    return { token, record: { ...parseRecord(pairs(fields)), pending: pending === 1 } };
  }

  /** Renews the marker for the next pass of the same job, unless another job's pass has taken it meanwhile. */
  async renewPass(mr: MrKey, ttlMs: number, token: string): Promise<void> {
    await runScript(this.redis, RENEW_PASS, 1, this.recordKey(mr), token, ttlMs);
  }

  /** Whether a pass of `mr` is running, and so will look at a hint written now before it ends. */
  async passRunning(mr: MrKey): Promise<boolean> {
    return (await runScript(this.redis, PASS_RUNNING, 1, this.recordKey(mr))) === 1;
  }

  /**
   * The pass with `token` is done with the hints `read`: deletes them (if unchanged) and returns the hints written
   * since. When none were, the marker is gone too and the pass is over.
   */
  async endPass(
    mr: MrKey,
    read: Hints,
    token: string,
    /** What {@link remember} would write, written in the same step (one round trip less per pass). */
    remember?: { cache: MrCache; doneIntent?: CommandIntent },
  ): Promise<Hints> {
    const cache = remember ? JSON.stringify(remember.cache) : "";
    const intent = remember?.doneIntent ? storedIntent(remember.doneIntent) : "";
    const args = [token, cache, RECORD_TTL_SECONDS, intent, ...Object.entries(read.raw).flat()];
    return parseHints(pairs(await runScript(this.redis, END_PASS, 1, this.recordKey(mr), ...args)));
  }

  /** Ends the pass with `token` whatever hints are left (it failed); returns them, none cleared. */
  async abandonPass(mr: MrKey, token: string): Promise<Hints> {
    return parseHints(pairs(await runScript(this.redis, ABANDON_PASS, 1, this.recordKey(mr), token)));
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
   * Claims the sweep for `ttlMs` (one pass at a time, across processes); the token to release it, or `undefined`
   * while another pass holds it.
   */
  async claimSweep(ttlMs: number): Promise<string | undefined> {
    const token = randomUUID();
    const ok = await this.redis.set(this.key("sweep", "running"), token, "PX", ttlMs, "NX");
    return ok === "OK" ? token : undefined;
  }

  /** Extends the claim by `ttlMs` if `token` still holds it; `false` when it does not (it expired and was taken). */
  async renewSweep(token: string, ttlMs: number): Promise<boolean> {
    return (await runScript(this.redis, RENEW_IF_EQUAL, 1, this.key("sweep", "running"), token, ttlMs)) === 1;
  }

  async releaseSweep(token: string): Promise<void> {
    await runScript(this.redis, DELETE_IF_EQUAL, 1, this.key("sweep", "running"), token);
  }

  /** When the last completed sweep pass of the project started (ISO), if one did within the cache's lifetime. */
  async lastSweep(projectId: number): Promise<string | undefined> {
    return (await this.redis.get(this.key("sweep", "last", projectId))) ?? undefined;
  }

  async putLastSweep(projectId: number, startedAt: string): Promise<void> {
    await this.redis.set(this.key("sweep", "last", projectId), startedAt, "EX", RECORD_TTL_SECONDS);
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
    const key = this.recordKey(mr);
    await this.redis.multi().hset(key, INTENT, storedIntent(intent)).expire(key, RECORD_TTL_SECONDS).exec();
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

/** A record's fields: the cache, the intent and the hints (the pass marker is the scripts' business). */
function parseRecord(fields: Record<string, string>): Omit<MrRecord, "pending"> {
  const cache = parseMrCache(fields[CACHE]);
  const intent = parseIntent(fields[INTENT]);
  const hintFields: Record<string, string> = {};
  for (const [field, value] of Object.entries(fields)) {
    if (field !== CACHE && field !== INTENT && field !== PASS) hintFields[field] = value;
  }
  return { ...(cache ? { cache } : {}), ...(intent ? { intent } : {}), hints: parseHints(hintFields) };
}

/**
 * An intent as stored: with the time it stops counting (a command retried for a day has long been answered), so a
 * branch made by hand at its SHA a week later is never recorded as that committer's grant.
 */
function storedIntent(intent: CommandIntent): string {
  const expiresAt = Date.parse(intent.at) + INTENT_TTL_MS;
  return JSON.stringify({ ...intent, expiresAt: Number.isFinite(expiresAt) ? expiresAt : Date.now() + INTENT_TTL_MS });
}

function parseIntent(raw: string | null | undefined): CommandIntent | undefined {
  if (!raw) return undefined;
  try {
    const { expiresAt, ...parsed } = JSON.parse(raw) as Partial<CommandIntent> & { expiresAt?: unknown };
    const known = parsed.command === "untrust" || (parsed.command === "trust" && typeof parsed.sha === "string");
    const live = typeof expiresAt === "number" && expiresAt > Date.now();
    return known && live && typeof parsed.by === "string" && typeof parsed.noteId === "number"
      ? (parsed as CommandIntent)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Hints from the record's hint fields. Pipeline fields are `pipeline:<id>:<status>`; the older `pipeline:<id>` too. */
function parseHints(raw: Record<string, string>): Hints {
  const hints: Hints = { full: raw["full"] !== undefined, pipelines: [], raw };
  for (const [field, value] of Object.entries(raw)) {
    try {
      if (field === "branch") {
        const { pusher } = JSON.parse(value) as { pusher?: unknown };
        hints.branch = isUser(pusher) ? { pusher: { id: pusher.id, username: pusher.username } } : {};
      } else if (field.startsWith("pipeline:")) {
        const { status } = JSON.parse(value) as { status: string };
        const id = Number(field.split(":")[1]);
        if (!Number.isInteger(id) || typeof status !== "string") throw new Error("malformed pipeline hint");
        hints.pipelines.push({ id, status });
      } else if (field !== "full") {
        throw new Error("unknown hint");
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
