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
 *
 * Time is Redis's (`TIME`), so processes on hosts with skewed clocks agree on windows and pauses.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { RateLimitedError } from "../errors.js";
import type { Redis } from "../redis.js";

/** The budget's Lua scripts as ioredis commands (`defineCommand`). */
interface BudgetScripts {
  tmrBudgetAcquire(pausedKey: string, windowKey: string, limit: number, windowMs: number): Promise<unknown>;
  tmrBudgetPause(pausedKey: string, ms: number): Promise<unknown>;
}

/** Who a call is for, most urgent first. */
export type CallPriority = "command" | "reconcile" | "sweep";

/** Share of each window kept for more urgent calls, per priority step. */
const RESERVE = 0.1;
const WINDOW_MS = 60_000;
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
}

/**
 * KEYS[1] paused-until key, KEYS[2] window key prefix; ARGV[1] limit for this priority (-1: none), ARGV[2] window ms.
 * Returns 0 when a slot was taken, else the milliseconds to wait before asking again.
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > now then return paused - now end
local limit = tonumber(ARGV[1])
if limit < 0 then return 0 end
local size = tonumber(ARGV[2])
local window = math.floor(now / size)
local key = KEYS[2] .. ':' .. window
local used = tonumber(redis.call('GET', key) or '0')
if used >= limit then return (window + 1) * size - now end
redis.call('INCR', key)
redis.call('PEXPIRE', key, size * 2)
return 0
`;

/** KEYS[1] paused-until key; ARGV[1] pause in ms. Only ever extends a pause. */
const PAUSE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > paused then redis.call('SET', KEYS[1], untilMs, 'PX', tonumber(ARGV[1])) end
return 0
`;

export function createCallBudget(options: CallBudgetOptions): CallBudget {
  const { redis, limit } = options;
  const windowMs = options.windowMs ?? WINDOW_MS;
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const base = `${options.prefix}:gitlab-budget:${options.gitlabUrl.replace(/\/+$/, "")}`;
  const pausedKey = `${base}:paused-until`;
  const windowKey = `${base}:window`;
  const limitFor = (priority: CallPriority): number => {
    if (limit <= 0) return -1;
    const steps = priority === "command" ? 0 : priority === "reconcile" ? 1 : 2;
    return Math.max(1, Math.floor(limit * (1 - RESERVE * steps)));
  };

  // EVALSHA (ioredis loads the script once per connection): the script's text is not sent with every GitLab call.
  const scripts = redis as Redis & BudgetScripts;
  if (!("tmrBudgetAcquire" in redis)) {
    redis.defineCommand("tmrBudgetAcquire", { numberOfKeys: 2, lua: ACQUIRE });
    redis.defineCommand("tmrBudgetPause", { numberOfKeys: 1, lua: PAUSE });
  }

  return {
    async acquire(priority = currentCallPriority()) {
      const deadline = Date.now() + maxWaitMs;
      for (;;) {
        const wait = Number(await scripts.tmrBudgetAcquire(pausedKey, windowKey, limitFor(priority), windowMs));
        if (wait <= 0) return;
        if (Date.now() + wait > deadline) {
          throw new RateLimitedError(`GitLab call budget: next ${priority} call in ${wait} ms`, wait);
        }
        // A little later than asked, so that waiting processes do not all ask again in the same millisecond.
        await new Promise((resolve) => setTimeout(resolve, wait + Math.floor(Math.random() * 50)));
      }
    },
    async pause(ms) {
      if (ms > 0) await scripts.tmrBudgetPause(pausedKey, Math.ceil(ms));
    },
  };
}
