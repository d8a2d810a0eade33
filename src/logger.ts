/**
 * JSON logs (pino). Child loggers carry `eventId`, `projectId` and `mrIid`; secrets never reach a line: the
 * redaction paths below cover every place a token could appear (config, headers, errors from the HTTP client).
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
  "*.headers['private-token']",
  "*.headers['PRIVATE-TOKEN']",
  "*.headers.authorization",
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
