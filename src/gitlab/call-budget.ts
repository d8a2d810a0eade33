/**
 * The GitLab call budget: one limit for the bot's token, shared in Redis by every process of one `redis.prefix`
 * against one GitLab, consulted by the requester before each HTTP request.
 *
 * - A fixed one-minute window counts requests (`gitlab.rate_limit_per_minute`; GitLab.com allows about 2000 per
 *   minute per user, FACTS.md "Rate limits"). When this window's budget is spent, a call waits for the next window.
 * - A 429 anywhere sets a shared "paused until" (its `Retry-After`, else `RateLimit-Reset`): GitLab throttles the
 *   user, not the job, so every process waits it out instead of earning another 429 within the second.
 * - Commands go first: a reconcile waits once less than {@link RESERVE} of the window is left, a sweep once less
 *   than twice that is left. The priority comes from {@link withCallPriority}, which the worker sets around each job.
 * - A call waits here at most `maxWaitMs`; a longer wait throws `RateLimitedError`, so that the worker delays the job
 *   (without spending an attempt) instead of holding a concurrency slot.
 * - Slots are leased: while less than half of the window is spent, one request takes as many slots as this process
 *   made calls within the last {@link LEASE_TTL_MS} (at most {@link LEASE_SLOTS}), and the process spends the rest
 *   within that time without asking Redis again. A Redis round trip before every GitLab call cost a busy worker ~5 %
 *   of its reconciles per second (issue 10); a process making a call now and then leases nothing, so slots that go
 *   unspent stay few (they stay counted: a few calls fewer than the limit, never more). A lease is only held while
 *   this process listens on the budget's pub/sub channel, where every pause is published: a pause anywhere drops
 *   every process's lease within a message's delay, as a call already past `acquire` is sent anyway. Without the
 *   subscription (not yet connected, reconnecting) every call asks Redis, as without leases.
 *
 * Time is Redis's (`TIME`), so processes on hosts with skewed clocks agree on windows and pauses.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { RateLimitedError } from "../errors.js";
import { type Redis, runScript, script } from "../redis.js";

/** Who a call is for, most urgent first. */
export type CallPriority = "command" | "reconcile" | "sweep";

/** Share of each window kept for more urgent calls, per priority step. */
const RESERVE = 0.1;
const WINDOW_MS = 60_000;
/** Most slots one request takes while less than half of the window is spent (module comment). */
export const LEASE_SLOTS = 8;
/**
 * A leased slot not spent this long after the lease was granted is given up: the next call asks Redis. Also the
 * time over which this process's calls are counted to size its next lease.
 */
export const LEASE_TTL_MS = 1000;
/** Longest wait inside one call: past it the job is delayed instead (the worker's `RateLimitedError` path). */
export const DEFAULT_MAX_WAIT_MS = 30_000;

const priorityStorage = new AsyncLocalStorage<CallPriority>();

/** Runs `fn` with every GitLab call inside it (awaited or not) made at `priority`. */
export function withCallPriority<T>(priority: CallPriority, fn: () => Promise<T>): Promise<T> {
  return priorityStorage.run(priority, fn);
}

/** The priority of the job the current call is made for; outside a job, a reconcile's. */
export function currentCallPriority(): CallPriority {
  return priorityStorage.getStore() ?? "reconcile";
}

export interface CallBudget {
  /** Waits until a call may be sent (pause over, a slot in the window), then takes the slot. */
  acquire(priority?: CallPriority): Promise<void>;
  /** GitLab answered 429: no process sends another call to this GitLab for `ms`. */
  pause(ms: number): Promise<void>;
  /** Closes the pub/sub connection this budget listens on (leases end with it). */
  close(): Promise<void>;
}

export interface CallBudgetOptions {
  redis: Redis;
  /** `redis.prefix`. */
  prefix: string;
  /** `gitlab.url`: one budget per GitLab (the limit is per user there). */
  gitlabUrl: string;
  /** Requests per window (`gitlab.rate_limit_per_minute`); 0 = no limit (a 429's pause still applies). */
  limit: number;
  /** One minute; tests shorten it. */
  windowMs?: number;
  maxWaitMs?: number;
  /** Told once when Redis refuses the subscription leases need (an ACL user without the channel): no leases. */
  onNoLeases?: (error: unknown) => void;
}

/**
 * KEYS[1] paused-until key, KEYS[2] window key prefix; ARGV[1] limit for this priority (-1: none), ARGV[2] window ms,
 * ARGV[3] slots wanted (more than one only as a lease). Returns `{wait, slots, windowLeft}`: `wait` > 0 when no slot
 * was taken (the milliseconds to wait before asking again); else `slots` taken (the wanted number while less than
 * half of this priority's limit is spent, else one) and the milliseconds left in their window.
 */
const ACQUIRE = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > now then return {paused - now, 0, 0} end
local limit = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local window = math.floor(now / size)
local left = (window + 1) * size - now
if limit < 0 then return {0, want, left} end
local key = KEYS[2] .. ':' .. window
local used = tonumber(redis.call('GET', key) or '0')
if used >= limit then return {left, 0, 0} end
local slots = 1
if used + want <= math.floor(limit / 2) then slots = want end
redis.call('INCRBY', key, slots)
redis.call('PEXPIRE', key, size * 2)
return {0, slots, left}
`);

/**
 * KEYS[1] paused-until key; ARGV[1] pause in ms, ARGV[2] the pub/sub channel. Only ever extends a pause; always
 * publishes, so that every listening process drops its lease (`pcall`: a Redis user without channel permissions
 * still pauses; it cannot subscribe either, so no process of it holds a lease).
 */
const PAUSE = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > paused then redis.call('SET', KEYS[1], untilMs, 'PX', tonumber(ARGV[1])) end
redis.pcall('PUBLISH', ARGV[2], ARGV[1])
return 0
`);

export function createCallBudget(options: CallBudgetOptions): CallBudget {
  const { redis, limit } = options;
  const windowMs = options.windowMs ?? WINDOW_MS;
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const base = `${options.prefix}:gitlab-budget:${options.gitlabUrl.replace(/\/+$/, "")}`;
  const pausedKey = `${base}:paused-until`;
  const windowKey = `${base}:window`;
  const channel = `${base}:paused`;
  const limitFor = (priority: CallPriority): number => {
    if (limit <= 0) return -1;
    const steps = priority === "command" ? 0 : priority === "reconcile" ? 1 : 2;
    return Math.max(1, Math.floor(limit * (1 - RESERVE * steps)));
  };

  /** Slots this process may still spend without asking Redis, until `until` (local clock). */
  let lease: { slots: number; until: number } | undefined;
  /** Counts pauses heard of: a grant answered after a pause was announced is not kept as a lease. */
  let pausesHeard = 0;
  /** Subscribed to `channel` on the current connection: only then is a lease held. */
  let listening = false;
  let subscriber: Redis | undefined;
  let closed = false;
  let refusalTold = false;
  /** When this process's last {@link LEASE_SLOTS} calls were made (local clock), oldest first. */
  const recentCalls: number[] = [];
  const dropLease = () => {
    lease = undefined;
    pausesHeard++;
  };
  const listen = () => {
    if (subscriber || closed) return;
    // Subscribes again itself on each connection (not ioredis's auto-resubscribe), so that `listening` turns true
    // only once Redis has confirmed the subscription on the connection messages will come on.
    const sub = redis.duplicate({
      autoResubscribe: false,
      // Named after its budget, for `CLIENT LIST`: "<connection name>:budget:<prefix>" (a name has no spaces).
      connectionName: `${redis.options.connectionName ?? "trusted-mr-bot"}:budget:${options.prefix}`.replace(
        /[^\x21-\x7e]/g,
        "_",
      ),
    });
    subscriber = sub;
    sub.on("message", (from: string) => {
      if (from === channel) dropLease();
    });
    sub.on("ready", () => {
      sub.subscribe(channel).then(
        () => {
          if (sub.status === "ready") listening = true;
        },
        (error: unknown) => {
          // A lost connection fails it too: that one is retried on the next `ready`, and is no news.
          if (sub.status !== "ready" || refusalTold) return;
          refusalTold = true;
          options.onNoLeases?.(error);
        },
      );
    });
    sub.on("close", () => {
      listening = false;
      dropLease();
    });
    // A lost connection is handled above (no lease until it is back); ioredis would print unhandled errors.
    sub.on("error", () => undefined);
  };
  const takeLeased = (): boolean => {
    if (!lease || !listening || lease.slots <= 0 || Date.now() >= lease.until) return false;
    lease.slots--;
    return true;
  };

  return {
    async acquire(priority = currentCallPriority()) {
      const calledAt = Date.now();
      recentCalls.push(calledAt);
      if (recentCalls.length > LEASE_SLOTS) recentCalls.shift();
      if (takeLeased()) return;
      listen();
      const deadline = Date.now() + maxWaitMs;
      for (;;) {
        const heard = pausesHeard;
        // As many slots as calls within the last LEASE_TTL_MS, this one included: what this process would spend.
        const want = listening ? recentCalls.filter((at) => calledAt - at < LEASE_TTL_MS).length : 1;
        const answer = await runScript(redis, ACQUIRE, 2, pausedKey, windowKey, limitFor(priority), windowMs, want);
        const [wait, slots, windowLeft] = (answer as unknown[]).map(Number) as [number, number, number];
        if (wait <= 0) {
          if (slots > 1 && listening && heard === pausesHeard) {
            // Concurrent calls' leases add up (none is thrown away counted); the first one's deadline holds for all.
            const now = Date.now();
            if (lease && lease.slots > 0 && now < lease.until) lease.slots += slots - 1;
            else lease = { slots: slots - 1, until: now + Math.min(LEASE_TTL_MS, windowLeft) };
          }
          return;
        }
        if (Date.now() + wait > deadline) {
          throw new RateLimitedError(`GitLab call budget: next ${priority} call in ${wait} ms`, wait);
        }
        // A little later than asked, so that waiting processes do not all ask again in the same millisecond.
        await new Promise((resolve) => setTimeout(resolve, wait + Math.floor(Math.random() * 50)));
      }
    },
    async pause(ms) {
      if (ms <= 0) return;
      dropLease();
      await runScript(redis, PAUSE, 1, pausedKey, Math.ceil(ms), channel);
    },
    async close() {
      closed = true;
      listening = false;
      lease = undefined;
      await subscriber?.quit().catch(() => undefined);
    },
  };
}
