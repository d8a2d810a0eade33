/**
 * deploy/prometheus/alerts.yml and deploy/grafana/dashboard.json: the rules pass `promtool check rules` and their
 * unit tests (`promtool test rules`, Debian's prometheus package; scripts/test.sh installs it), and every metric a
 * rule or a panel queries is one a running bot serves on /metrics, so a renamed metric cannot leave an alert
 * silently empty.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { type Service, startService } from "../../src/runtime.js";
import { captureLogger } from "../support/capture-logger.js";
import { deletePrefix, testRedis, uniquePrefix } from "../support/redis.js";
import { testConfig } from "../support/service-config.js";

const run = promisify(execFile);
const PROMETHEUS_DIR = fileURLToPath(new URL("../../deploy/prometheus/", import.meta.url));
const RULES = parse(readFileSync(`${PROMETHEUS_DIR}/alerts.yml`, "utf8")) as {
  groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
};
const DASHBOARD = JSON.parse(readFileSync(new URL("../../deploy/grafana/dashboard.json", import.meta.url), "utf8")) as {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
};

const PROMQL_WORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression selects: what is left once strings, label matchers, ranges, grouping
 * clauses, Grafana variables, numbers, keywords and function calls are taken out.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/\$\{[^}]*\}|\$\w+/g, "1m")
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, "")
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.])[a-zA-Z_:][\w:]*/g)) {
    const rest = bare.slice(m.index + m[0].length).trimStart();
    if (rest.startsWith("(") || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Sample names /metrics serves or will serve: every `# TYPE`, with a histogram's and a summary's series. */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
  }
  return names;
}

let service: Service;
let metricsText: string;
const prefix = uniquePrefix();

before(async () => {
  // Receiver and worker in one process, as `serve`: every metric either of them registers.
  service = await startService({
    config: testConfig(prefix),
    logger: captureLogger("warn").logger,
    roles: { receiver: true, worker: true },
  });
  metricsText = await (await fetch(`${service.receiverUrl}/metrics`)).text();
});

after(async () => {
  await service?.close({ timeoutMs: 5000 });
  const redis = testRedis();
  await deletePrefix(redis, prefix);
  await redis.quit();
});

describe("Prometheus alerts and the Grafana dashboard", () => {
  it("metricNames finds the selected metrics and nothing else", () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y z"}[$__rate_interval]))) > 0.5 and on () count(b) > 1e3 or vector(0)',
      ),
      ["a_bucket", "b"],
    );
    assert.deepEqual(metricNames('min_over_time(max(c{state="inbox"})[10m:1m]) offset 5m'), ["c"]);
  });

  it("promtool check rules accepts alerts.yml", async () => {
    const { stdout } = await run("promtool", ["check", "rules", "alerts.yml"], { cwd: PROMETHEUS_DIR });
    assert.match(stdout, /SUCCESS: 5 rules found/);
  });

  it("each alert fires when it should and not otherwise (promtool test rules alerts.test.yml)", async () => {
    const { stdout } = await run("promtool", ["test", "rules", "alerts.test.yml"], { cwd: PROMETHEUS_DIR });
    assert.match(stdout, /SUCCESS/);
  });

  it("every alert names only metrics the bot exports", () => {
    const served = exported(metricsText);
    const alerts = RULES.groups.flatMap((g) => g.rules);
    assert.deepEqual(alerts.map((r) => r.alert).sort(), [
      "TrustedMrBotGitLabRateLimited",
      "TrustedMrBotInboxGrowing",
      "TrustedMrBotJobsFailing",
      "TrustedMrBotSweepNotCompleting",
      "TrustedMrBotWebhooksRefused",
    ]);
    for (const rule of alerts) {
      const names = metricNames(rule.expr);
      assert.ok(names.length > 0, `${rule.alert} queries a metric`);
      for (const name of names) assert.ok(served.has(name), `${rule.alert}: ${name} is not on /metrics`);
    }
  });

  it("every dashboard query names only metrics the bot exports", () => {
    const served = exported(metricsText);
    const targets = DASHBOARD.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
    assert.ok(targets.length >= 10);
    for (const { panel, expr } of targets) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${panel} queries a metric`);
      for (const name of names) assert.ok(served.has(name), `${panel}: ${name} is not on /metrics`);
    }
  });
});
