/**
 * The Dockerfile, checked without a Docker engine: dockerfile-utils (the linter behind VS Code's Dockerfile
 * support) with every check as an error, then what the image must be: production dependencies only, a non-root
 * user by uid, node as PID 1. production-install.test.ts runs the same install and ENTRYPOINT for real.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ValidationSeverity, type ValidatorSettings, validate } from "dockerfile-utils";

const DOCKERFILE = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8");

interface Stage {
  from: string;
  name?: string;
  instructions: Array<{ keyword: string; args: string }>;
}

/** Instructions by stage: continuation lines joined, comments dropped (enough for this file's plain syntax). */
function stages(text: string): Stage[] {
  const result: Stage[] = [];
  const joined = text.replace(/\\\n/g, " ");
  for (const line of joined.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const [, keyword = "", args = ""] = /^(\S+)\s*(.*)$/.exec(trimmed) ?? [];
    if (keyword.toUpperCase() === "FROM") {
      const [, from = "", name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      result.push({ from, ...(name ? { name } : {}), instructions: [] });
    } else {
      assert.ok(result.length > 0, `${keyword} before FROM`);
      result.at(-1)!.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return result;
}

describe("Dockerfile", () => {
  it("passes dockerfile-utils with every check raised to an error", () => {
    const strict: ValidatorSettings = {
      deprecatedMaintainer: ValidationSeverity.ERROR,
      directiveCasing: ValidationSeverity.ERROR,
      emptyContinuationLine: ValidationSeverity.ERROR,
      instructionCasing: ValidationSeverity.ERROR,
      instructionCmdMultiple: ValidationSeverity.ERROR,
      instructionEntrypointMultiple: ValidationSeverity.ERROR,
      instructionHealthcheckMultiple: ValidationSeverity.ERROR,
      instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
      instructionWorkdirRelative: ValidationSeverity.ERROR,
    };
    const problems = validate(DOCKERFILE, strict).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    assert.deepEqual(problems, []);
  });

  it("ships production dependencies only, installed from the lockfile without a fallback", () => {
    const all = stages(DOCKERFILE);
    const final = all.at(-1)!;
    const runs = all.flatMap((s) => s.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args));
    assert.ok(
      runs.every((r) => !/\bnpm (install|i)\b/.test(r)),
      "npm ci only: npm install would resolve versions anew and rewrite the lockfile",
    );
    const copies = final.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
    const modules = copies.find((c) => /node_modules/.test(c));
    const from = modules && /--from=(\S+)/.exec(modules)?.[1];
    assert.ok(from, `the final stage copies node_modules from a stage: ${copies.join(" | ")}`);
    const deps = all.find((s) => s.name === from);
    assert.ok(deps, `stage ${from}`);
    const install = deps.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
    assert.ok(install.length === 1 && /^npm ci\b.*--omit=dev\b/.test(install[0]!), `${from} runs npm ci --omit=dev`);
    assert.ok(
      !final.instructions.some((i) => i.keyword === "RUN"),
      "the final stage installs nothing (no npm, no apt) of its own",
    );
  });

  it("runs node dist/cli.js as a non-root user given by uid", () => {
    const final = stages(DOCKERFILE).at(-1)!;
    const user = final.instructions.filter((i) => i.keyword === "USER").at(-1)?.args;
    // Kubernetes' runAsNonRoot can only check a numeric user; a name is refused at container start.
    assert.match(user ?? "", /^[1-9]\d*(:\d+)?$/, "USER <uid>:<gid>, not root, not a name");
    const entrypoint = final.instructions.find((i) => i.keyword === "ENTRYPOINT")?.args;
    // Exec form: node is PID 1 and receives SIGTERM itself (a shell or npm in between would not wait for it).
    assert.deepEqual(JSON.parse(entrypoint ?? "null"), ["node", "dist/cli.js"]);
    const healthcheck = final.instructions.find((i) => i.keyword === "HEALTHCHECK")?.args ?? "";
    assert.match(healthcheck, /\/healthz/);
  });
});
