/**
 * The audit trail: every grant, revoke, stale, retest and cleanup becomes a structured log line and an entry in
 * the Redis stream `<redis.prefix>:audit` (who, MR, SHA, when, why). The stream is capped approximately
 * (`XADD ... MAXLEN ~`), so it keeps the recent history without growing without bound; the log is the long-term copy.
 */
import type { Logger } from "../logger.js";
import type { Redis } from "../redis.js";
import type { AuditEntry } from "./model.js";

/** Approximate number of entries the stream keeps. */
export const AUDIT_STREAM_MAXLEN = 100_000;

export function auditStreamKey(prefix: string): string {
  return `${prefix}:audit`;
}

export interface AuditLog {
  record(entry: AuditEntry): Promise<void>;
  /**
   * Records `entry` only if field `pending.field` of hash `pending.hash` (a pending deferred action, store.ts) is
   * still there, and removes that field in the same step: a retried pass never writes the entry twice.
   */
  recordPending(entry: AuditEntry, pending: { hash: string; field: string }): Promise<void>;
}

/** KEYS[1] pending hash, KEYS[2] stream; ARGV[1] field, ARGV[2] maxlen, then the entry's field/value pairs. */
const RECORD_PENDING = `
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 0 then return 0 end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[2], "*", unpack(fields))
redis.call("HDEL", KEYS[1], ARGV[1])
return 1`;

export function createAuditLog(redis: Redis, prefix: string, logger: Logger): AuditLog {
  const key = auditStreamKey(prefix);
  const fieldsOf = (entry: AuditEntry) =>
    Object.entries(entry).flatMap(([k, v]) => (v === undefined ? [] : [k, String(v)]));
  const log = (entry: AuditEntry) =>
    logger.info({ audit: entry }, `audit: ${entry.event} ${entry.projectId}!${entry.mrIid ?? "-"} by ${entry.by}`);
  return {
    async record(entry) {
      log(entry);
      await redis.xadd(key, "MAXLEN", "~", AUDIT_STREAM_MAXLEN, "*", ...fieldsOf(entry));
    },
    async recordPending(entry, pending) {
      const written = await redis.eval(
        RECORD_PENDING,
        2,
        pending.hash,
        key,
        pending.field,
        AUDIT_STREAM_MAXLEN,
        ...fieldsOf(entry),
      );
      if (written === 1) log(entry);
    },
  };
}

/** Reads the stream back (tests, and anyone inspecting the trail). */
export async function readAudit(redis: Redis, prefix: string, count = 1000): Promise<Array<Record<string, string>>> {
  const rows = await redis.xrange(auditStreamKey(prefix), "-", "+", "COUNT", count);
  return rows.map(([, fields]) => {
    const entry: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) entry[fields[i] as string] = fields[i + 1] as string;
    return entry;
  });
}
