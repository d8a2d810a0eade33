/** `redis.sentinels` and friends: parsing, environment overrides, masking, and the connection they make. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig, maskSecrets } from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";
import { replicasToWait } from "../../src/queue/inbox.js";
import { closeRedis, createRedis, describeRedis } from "../../src/redis.js";

const load = (redis: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
  loadConfig({ env, defaults: { redis } }).config;

describe("redis.sentinels", () => {
  it("takes host:port strings and {host, port} mappings; the port defaults to 26379", () => {
    const config = load({ sentinels: ["10.0.0.1:26380", "sentinel-b", { host: "10.0.0.3" }, "[::1]:26381"] });
    assert.deepEqual(config.redis.sentinels, [
      { host: "10.0.0.1", port: 26380 },
      { host: "sentinel-b", port: 26379 },
      { host: "10.0.0.3", port: 26379 },
      { host: "::1", port: 26381 },
    ]);
    assert.equal(config.redis.sentinel_name, "mymaster");
    assert.equal(load({}).redis.sentinels, undefined, "no Sentinels unless configured");
  });

  it("comes from REDIS_SENTINELS, comma-separated, with the name and password beside it", () => {
    const config = load(
      {},
      {
        REDIS_SENTINELS: "10.0.0.1:26379, 10.0.0.2:26379",
        REDIS_SENTINEL_NAME: "bots",
        REDIS_SENTINEL_PASSWORD: "sentinel-secret",
      },
    );
    assert.deepEqual(config.redis.sentinels, [
      { host: "10.0.0.1", port: 26379 },
      { host: "10.0.0.2", port: 26379 },
    ]);
    assert.equal(config.redis.sentinel_name, "bots");
    assert.equal(config.redis.sentinel_password, "sentinel-secret");
  });

  it("names the key and the variable when an address is malformed", () => {
    assert.throws(
      () => load({}, { REDIS_SENTINELS: "10.0.0.1:26379,10.0.0.2:notaport" }),
      (error: Error) =>
        error instanceof ConfigError &&
        /redis\.sentinels \(env REDIS_SENTINELS\): Sentinel addresses/.test(error.message),
    );
    assert.throws(
      () => load({ sentinels: ["ok:1", "bad:99999"] }),
      (error: Error) => error instanceof ConfigError && /redis\.sentinels\.1 /.test(error.message),
    );
    assert.throws(() => load({ sentinels: [] }), /at least one Sentinel address/);
  });

  it("refuses rediss:// with Sentinels rather than connect without TLS", () => {
    assert.throws(
      () => load({ url: "rediss://redis:6380", sentinels: ["10.0.0.1:26379"] }),
      /redis\.url .*TLS \(rediss:\/\/\) is not supported with redis\.sentinels/,
    );
  });

  it("masks the Sentinel password and the data nodes' password in check-config", () => {
    const config = load({
      url: "redis://:data-secret@redis/2",
      sentinels: ["10.0.0.1"],
      sentinel_password: "sentinel-secret",
    });
    const printed = JSON.stringify(maskSecrets(config));
    assert.ok(!printed.includes("sentinel-secret"), printed);
    assert.ok(!printed.includes("data-secret"), printed);
    assert.ok(printed.includes("10.0.0.1"), "addresses are not secrets");
  });

  it("waits for one replica by default with Sentinels, for none without, or as configured", () => {
    assert.equal(replicasToWait(load({ sentinels: ["10.0.0.1"] }).redis), 1);
    assert.equal(replicasToWait(load({}).redis), 0);
    assert.equal(replicasToWait(load({ sentinels: ["10.0.0.1"], wait_replicas: 0 }).redis), 0);
    assert.equal(replicasToWait(load({ wait_replicas: 2 }).redis), 2);
  });

  it("connects through the Sentinels with the URL's credentials and database, and never prints a password", async () => {
    const config = load({
      url: "redis://bot:data%20secret@ignored:6379/3",
      sentinels: ["127.0.0.1:1", "127.0.0.1:2"],
      sentinel_name: "bots",
      sentinel_password: "sentinel-secret",
    });
    const redis = createRedis(config.redis, "fail-fast");
    redis.on("error", () => undefined);
    try {
      assert.equal(redis.options.name, "bots");
      assert.equal(redis.options.username, "bot");
      assert.equal(redis.options.password, "data secret");
      assert.equal(redis.options.db, 3);
      assert.equal(redis.options.sentinelPassword, "sentinel-secret");
      const described = describeRedis(redis);
      assert.equal(described, "sentinel bots (127.0.0.1:1,127.0.0.1:2)");
    } finally {
      await closeRedis(redis);
    }
  });
});
