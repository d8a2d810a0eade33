/**
 * What the workflow keeps in Redis: caches of GitLab state and hints from events, never a decision (STYLE.md §5).
 * Losing all of it costs API calls (the next reconcile reads everything), not correctness.
 *
 * - MR cache: the sticky note as the bot last wrote or read it, and whether the source branch is a committer
 *   branch. A warm cache saves re-listing the MR's notes on every event; the sweep bypasses it.
 * - Hints: what events said changed since the last reconcile of an MR (its trusted branch was pushed by hand, a
 *   pipeline on it changed, a sweep asked for a full look). Observe reads exactly those things again. A hint is
 *   cleared only after a reconcile succeeded, and only if no newer hint replaced it meanwhile.
 * - Branch owners: which MR a trusted branch belongs to, so a pipeline event maps to its MR without an API call.
 * - The bot's own user, and when the sweep first saw an orphaned trusted branch.
 */
import { randomUUID } from "node:crypto";
import type { User } from "../gitlab/port.js";
import type { MrKey } from "../queue/jobs.js";
import type { Redis } from "../redis.js";

export interface MrCache {
  noteId: number | null;
  noteBody: string | null;
  committerBranch: boolean;
  /** The source branch the cache was written for (a changed source branch invalidates it). */
  sourceBranch: string;
}

export interface Hints {
  /** Read everything again (sweep, or a cold cache). */
  full: boolean;
  /** The trusted branch was pushed (created, moved, deleted) by someone other than the bot. */
  branch?: { pusher?: string };
  /** Pipelines on the trusted branch whose status changed, with the status the event reported. */
  pipelines: Array<{ id: number; status: string }>;
  /** Raw fields as read, for the compare-and-delete in {@link TrustStore.clearHints}. */
  raw: Record<string, string>;
}

const CACHE_TTL_SECONDS = 24 * 3600;
const HINT_TTL_SECONDS = 24 * 3600;
const OWNER_TTL_SECONDS = 30 * 24 * 3600;
const BOT_TTL_SECONDS = 3600;

/** Deletes each given hash field only if it still holds the value that was read. */
const CLEAR_IF_UNCHANGED = `
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call("HGET", KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call("HDEL", KEYS[1], ARGV[i])
  end
end
return removed`;

export class TrustStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(...parts: Array<string | number>): string {
    return [this.prefix, "trust", ...parts].join(":");
  }

  async getMrCache(mr: MrKey): Promise<MrCache | undefined> {
    const raw = await this.redis.get(this.key("mr", mr.projectId, mr.mrIid));
    if (!raw) return undefined;
    try {
      const parsed = JSON.parse(raw) as MrCache;
      return typeof parsed.sourceBranch === "string" ? parsed : undefined;
    } catch {
      return undefined;
    }
  }

  async putMrCache(mr: MrKey, cache: MrCache): Promise<void> {
    await this.redis.set(this.key("mr", mr.projectId, mr.mrIid), JSON.stringify(cache), "EX", CACHE_TTL_SECONDS);
  }

  async hintFull(mr: MrKey): Promise<void> {
    await this.hint(mr, "full", randomUUID());
  }

  async hintBranch(mr: MrKey, pusher?: string): Promise<void> {
    await this.hint(mr, "branch", JSON.stringify({ pusher, n: randomUUID() }));
  }

  async hintPipeline(mr: MrKey, pipelineId: number, status: string): Promise<void> {
    await this.hint(mr, `pipeline:${pipelineId}`, JSON.stringify({ status, n: randomUUID() }));
  }

  private async hint(mr: MrKey, field: string, value: string): Promise<void> {
    const key = this.key("hints", mr.projectId, mr.mrIid);
    await this.redis.multi().hset(key, field, value).expire(key, HINT_TTL_SECONDS).exec();
  }

  async readHints(mr: MrKey): Promise<Hints> {
    const raw = await this.redis.hgetall(this.key("hints", mr.projectId, mr.mrIid));
    const hints: Hints = { full: raw["full"] !== undefined, pipelines: [], raw };
    for (const [field, value] of Object.entries(raw)) {
      try {
        if (field === "branch") {
          const { pusher } = JSON.parse(value) as { pusher?: string };
          hints.branch = pusher ? { pusher } : {};
        } else if (field.startsWith("pipeline:")) {
          const { status } = JSON.parse(value) as { status: string };
          hints.pipelines.push({ id: Number(field.slice("pipeline:".length)), status });
        }
      } catch {
        hints.full = true;
      }
    }
    return hints;
  }

  async clearHints(mr: MrKey, hints: Hints): Promise<void> {
    const args = Object.entries(hints.raw).flat();
    if (args.length === 0) return;
    await this.redis.eval(CLEAR_IF_UNCHANGED, 1, this.key("hints", mr.projectId, mr.mrIid), ...args);
  }

  async branchOwner(projectId: number, branch: string): Promise<number | undefined> {
    const raw = await this.redis.get(this.key("owner", projectId, branch));
    const iid = raw === null ? Number.NaN : Number(raw);
    return Number.isInteger(iid) ? iid : undefined;
  }

  async setBranchOwner(projectId: number, branch: string, iid: number): Promise<void> {
    await this.redis.set(this.key("owner", projectId, branch), String(iid), "EX", OWNER_TTL_SECONDS);
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
}
