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
}

export function createAuditLog(redis: Redis, prefix: string, logger: Logger): AuditLog {
  const key = auditStreamKey(prefix);
  return {
    async record(entry) {
      logger.info({ audit: entry }, `audit: ${entry.event} ${entry.projectId}!${entry.mrIid ?? "-"} by ${entry.by}`);
      const fields = Object.entries(entry).flatMap(([k, v]) => (v === undefined ? [] : [k, String(v)]));
      await redis.xadd(key, "MAXLEN", "~", AUDIT_STREAM_MAXLEN, "*", ...fields);
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
