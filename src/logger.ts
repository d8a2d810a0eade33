/**
 * JSON logs (pino). Child loggers carry `eventId`, `projectId` and `mrIid`. Secrets never reach a line: errors are
 * logged through `errorSummary` (type, message, stack, cause chain: never the HTTP client's request with its
 * `PRIVATE-TOKEN`), and the exact paths below catch config and header objects. Wildcard paths are left out on
 * purpose: they tripled the cost of every log line on the webhook path (measured with `npm run bench:receiver`).
 */
import { pino, type Logger } from "pino";

export type { Logger } from "pino";

export const REDACT_PATHS = [
  "config.gitlab.token",
  "config.webhook.secret",
  "config.webhook.signing_token",
  "config.webhook.relay_signature_secret",
  "headers['x-gitlab-token']",
  "headers['private-token']",
  "headers.authorization",
  "token",
  "secret",
];

export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      name: options.name ?? "trusted-mr-bot",
      level: options.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? process.stdout,
  );
}
