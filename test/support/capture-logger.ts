/** A real pino logger whose lines are kept, parsed, for assertions on what was logged. */
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/logger.js";

export interface CapturedLogger {
  logger: Logger;
  /** Every line so far, parsed. */
  lines: Array<Record<string, unknown>>;
  /** Raw text of every line so far (to assert a secret never appears). */
  text(): string;
}

export function captureLogger(level = "debug"): CapturedLogger {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line) continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  return { logger: createLogger({ level, destination }), lines, text: () => raw.join("\n") };
}
