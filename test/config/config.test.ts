import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { inspect } from "node:util";
import { configSchema, ENV_OVERRIDES, loadConfig, maskSecrets, maskUrl, requireFor } from "../../src/config/config.js";
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

  it("leak: a YAML error does not echo a token", () => {
    // Each file is broken on (or just after) a line holding a secret; the yaml package's message quotes that line.
    const cases: Array<[string, string, string | undefined]> = [
      [
        'gitlab:\n  url: https://gitlab.example.com\n  token: "glpat-leak-one\nredis:\n  prefix: tmr\n',
        "glpat-leak-one",
        "gitlab.token",
      ],
      ["gitlab:\n  token: glpat-leak-two\n   bad: [x\n", "glpat-leak-two", "gitlab.token"],
      ["webhook:\n  secret: hook-leak-three\n  secret: hook-leak-three\n", "hook-leak-three", "webhook.secret"],
      ['webhook:\n  signing_token: "whsec_\\qleak-four"\n', "leak-four", "webhook.signing_token"],
      ["gitlab:\n\ttoken: glpat-leak-five\n", "glpat-leak-five", undefined],
      ["redis: {url: 'redis://:leak-six@h', prefix: x\n", "leak-six", "redis.prefix"],
    ];
    for (const [text, secret, key] of cases) {
      let error: unknown;
      try {
        loadConfig({ path: writeYaml(text), env: {} });
      } catch (caught) {
        error = caught;
      }
      assert.ok(error instanceof ConfigError, `${JSON.stringify(text)} is refused`);
      assert.match(error.message, /is not valid YAML: line \d+, column \d+/);
      if (key) assert.ok(error.message.includes(`(in ${key})`), `${error.message} names ${key}`);
      // Also not in the cause chain, which util.inspect (and so a logger or an uncaught error) prints.
      assert.ok(!inspect(error, { depth: 5 }).includes(secret), `${inspect(error)} echoes ${secret}`);
    }
  });

  it("leak: a YAML warning is not emitted with the line that holds a token", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const { config } = loadConfig({ path: writeYaml("gitlab:\n  token: !secret glpat-leak-tag\n"), env: {} });
      assert.equal(config.gitlab.token, "glpat-leak-tag");
      await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(
      warnings.filter((w) => w.message.includes("glpat-leak-tag")).map((w) => w.message),
      [],
    );
  });

  it("leak: validation errors name the key, never a secret value", () => {
    const path = writeYaml(
      [
        "gitlab:",
        "  url: 'https://user:gitlab-url-pass@gitlab example.com'",
        "  token: 12345678",
        "webhook:",
        "  secret: ['hook-secret-in-list']",
        "  signing_token: glpat-not-whsec",
        "redis:",
        "  url: 'http://:redis-url-pass@redis?password=redis-query-pass'",
        "server:",
        "  public_url: 'not a url ?token=public-url-token'",
        "",
      ].join("\n"),
    );
    const message = configError(() => loadConfig({ path, env: {} }));
    for (const key of ["gitlab.url", "gitlab.token", "webhook.secret", "webhook.signing_token", "redis.url"]) {
      assert.ok(message.includes(key), `${message} names ${key}`);
    }
    for (const secret of ["gitlab-url-pass", "12345678", "hook-secret-in-list", "glpat-not-whsec", "redis-url-pass"]) {
      assert.ok(!message.includes(secret), `${message} shows ${secret}`);
    }
    assert.ok(!message.includes("redis-query-pass") && !message.includes("public-url-token"));
  });

  it("masks URL credentials wherever a URL appears: userinfo and secret query or fragment parameters", () => {
    const cases: Array<[string, string]> = [
      ["redis://:pw@127.0.0.1:6379", "redis://:********@127.0.0.1:6379"],
      ["rediss://default:pw@redis.example.com:6380/0?db=1", "rediss://default:********@redis.example.com:6380/0?db=1"],
      ["redis://127.0.0.1:6379/0?password=pw&db=2", "redis://127.0.0.1:6379/0?password=********&db=2"],
      ["https://glpat-x@gitlab.example.com", "https://********@gitlab.example.com/"],
      [
        "https://gitlab.example.com/?private_token=a&access_token=b&secret=c&key=d&api_key=e&page=2",
        "https://gitlab.example.com/?private_token=********&access_token=********&secret=********&key=********&api_key=********&page=2",
      ],
      ["https://bot.example.com/webhook#token=t", "https://bot.example.com/webhook#token=********"],
      ["https://gitlab.example.com/api", "https://gitlab.example.com/api"],
      ["http://127.0.0.1:3080", "http://127.0.0.1:3080"],
      ["redis://:p/w@host:bad", "redis://********"],
    ];
    for (const [url, masked] of cases) assert.equal(maskUrl(url), masked, url);
    const { config } = loadConfig({
      env: {},
      defaults: { server: { public_url: "https://bot.example.com/webhook?token=public-url-token" } },
    });
    const printed = JSON.stringify(maskSecrets(config));
    assert.ok(!printed.includes("public-url-token"), "server.public_url is masked too, not only keys named url");
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
