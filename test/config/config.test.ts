import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { configSchema, ENV_OVERRIDES, loadConfig, maskSecrets, requireFor } from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";

function writeYaml(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tmr-config-"));
  const path = join(dir, "trusted-mr-bot.yml");
  writeFileSync(path, text);
  return path;
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail("expected a ConfigError");
}

describe("config", () => {
  it("has working defaults without a file", () => {
    const { config, source } = loadConfig({ env: {} });
    assert.equal(source, "(no file)");
    assert.equal(config.trust.branch_prefix, "trusted-");
    assert.equal(config.trust.committer_access_level, 40);
    assert.equal(config.webhook.body_limit, 25 * 1024 * 1024);
    assert.equal(config.redis.url, "redis://127.0.0.1:6379");
  });

  it("reads the file named by TMR_CONFIG and lets the environment override it", () => {
    const path = writeYaml("gitlab:\n  url: https://gitlab.example.com\nserver:\n  port: 9000\ntrust:\n  committer_access_level: developer\n");
    const { config, source } = loadConfig({ env: { TMR_CONFIG: path, PORT: "9100", GITLAB_TOKEN: "glpat-x" } });
    assert.equal(source, path);
    assert.equal(config.gitlab.url, "https://gitlab.example.com");
    assert.equal(config.server.port, 9100);
    assert.equal(config.gitlab.token, "glpat-x");
    assert.equal(config.trust.committer_access_level, 30);
  });

  it("names the key, the file and what is expected", () => {
    const path = writeYaml("trust:\n  committer_access_level: boss\nwebhook:\n  body_limit: lots\n");
    const message = configError(() => loadConfig({ path, env: {} }));
    assert.match(message, new RegExp(`trust\\.committer_access_level \\(${path.replaceAll("/", "\\/")}\\): one of guest`));
    assert.match(message, /webhook\.body_limit .*a size such as 25mb/);
  });

  it("rejects unknown keys, top-level and nested", () => {
    const path = writeYaml("gitlab:\n  tokn: x\nextra: 1\n");
    const message = configError(() => loadConfig({ path, env: {} }));
    assert.match(message, /gitlab\.tokn .*unknown key/);
    assert.match(message, /extra .*unknown key/);
  });

  it("blames the environment variable when an override is wrong", () => {
    const message = configError(() => loadConfig({ env: { REDIS_URL: "localhost:6379" } }));
    assert.match(message, /redis\.url \(env REDIS_URL\): a redis:\/\/ or rediss:\/\/ URL/);
    assert.match(configError(() => loadConfig({ env: { PORT: "eighty" } })), /PORT: expected an integer/);
  });

  it("refuses a receiver without a secret unless insecure is set", () => {
    const { config, source } = loadConfig({ env: {} });
    assert.match(configError(() => requireFor(config, { receiver: true }, source)), /webhook\.secret .*GITLAB_WEBHOOK_SECRET/);
    const insecure = loadConfig({ env: {}, defaults: { webhook: { insecure: true } } }).config;
    requireFor(insecure, { receiver: true }, source);
    assert.match(configError(() => requireFor(config, { gitlab: true }, source)), /gitlab\.token/);
  });

  it("masks every secret, including a password in the Redis URL", () => {
    const { config } = loadConfig({
      env: {
        GITLAB_TOKEN: "glpat-secret",
        GITLAB_WEBHOOK_SECRET: "hook-secret",
        GITLAB_WEBHOOK_SIGNING_TOKEN: "whsec_c2VjcmV0",
        REDIS_URL: "redis://:redispass@127.0.0.1:6379",
      },
    });
    const printed = JSON.stringify(maskSecrets(config));
    for (const s of ["glpat-secret", "hook-secret", "whsec_c2VjcmV0", "redispass"]) assert.ok(!printed.includes(s), s);
    assert.match(printed, /"token":"\*\*\*\*\*\*\*\*"/);
  });

  it("rejects a file that is not YAML or not a mapping", () => {
    assert.match(configError(() => loadConfig({ path: writeYaml("a: [1,\n"), env: {} })), /not valid YAML/);
    assert.match(configError(() => loadConfig({ path: writeYaml("- 1\n- 2\n"), env: {} })), /expected a mapping/);
    assert.match(configError(() => loadConfig({ path: "/nonexistent/x.yml", env: {} })), /cannot read config file/);
  });

  it("every key and environment override is in the README's configuration reference", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const reference = readme.slice(readme.indexOf("## Configuration reference"), readme.indexOf("## Deployment"));
    for (const [section, schema] of Object.entries(configSchema.shape)) {
      for (const key of Object.keys(schema.unwrap().shape)) {
        assert.ok(reference.includes(`| \`${section}.${key}\` |`), `${section}.${key} is documented`);
      }
    }
    for (const { env, path } of ENV_OVERRIDES) {
      assert.ok(reference.includes(`| \`${path.join(".")}\` | \`${env}\` |`), `${env} is documented beside its key`);
    }
  });
});
