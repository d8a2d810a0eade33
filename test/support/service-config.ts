/** A validated {@link Config} for tests: the schema's defaults, a webhook secret, an ephemeral port. */
import { type Config, configSchema } from "../../src/config/config.js";
import { REDIS_URL } from "./redis.js";

export const TEST_SECRET = "test-webhook-secret";

/** Deep-merges `overrides` (section by section) over test defaults and validates like `loadConfig`. */
export function testConfig(prefix: string, overrides: Record<string, Record<string, unknown>> = {}): Config {
  const base: Record<string, Record<string, unknown>> = {
    gitlab: { token: "test-gitlab-token" },
    webhook: { secret: TEST_SECRET },
    redis: { url: REDIS_URL, prefix },
    server: { host: "127.0.0.1", port: 0 },
    worker: { backoff_base_ms: 50, backoff_max_ms: 1000, shutdown_timeout_ms: 10_000 },
    sweep: { interval_seconds: 0 },
    log: { level: "debug" },
  };
  for (const [section, values] of Object.entries(overrides)) base[section] = { ...base[section], ...values };
  return configSchema.parse(base);
}
