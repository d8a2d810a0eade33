import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, test } from "node:test";
import { Ajv } from "ajv";
import ajvFormats from "ajv-formats";
import {
  ciSchemaFile,
  listTemplateFiles,
  parseCiYaml,
  readmeFile,
  readmeYamlBlocks,
  repoRoot,
  specInputs,
  templateFile,
} from "./template-files.js";

const schema = JSON.parse(await readFile(ciSchemaFile, "utf8")) as Record<string, unknown>;
// GitLab's schema is draft-07 and uses keywords ajv's strict mode rejects (markdownDescription).
const ajv = new Ajv({ strict: false, allErrors: true });
// ajv-formats is CommonJS; under NodeNext its default import is module.exports, whose .default is the plugin.
ajvFormats.default(ajv);
const validateCi = ajv.compile(schema);

function schemaErrors(config: unknown): string[] {
  if (validateCi(config)) return [];
  return (validateCi.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""}`);
}

function assertValid(config: unknown, what: string): void {
  const errors = schemaErrors(config);
  assert.deepEqual(errors, [], `${what} does not validate against GitLab's CI schema:\n${errors.join("\n")}`);
}

/** Replaces `$[[ inputs.x ]]` with the given values, as GitLab does where an input is part of a string. */
function interpolate(body: string, values: Record<string, unknown>): string {
  return body.replace(/\$\[\[\s*inputs\.([\w-]+)\s*\]\]/g, (_match, name: string) => {
    assert.ok(name in values, `no value for input ${name}`);
    return String(values[name]);
  });
}

const templates = await listTemplateFiles();

describe("the schema validator", () => {
  test("accepts a minimal valid configuration", () => {
    assertValid({ build: { stage: "test", script: ["make"] } }, "a minimal configuration");
  });

  test("rejects invalid configurations, so the checks below can fail", () => {
    const invalid: [string, unknown][] = [
      ["a job whose script is a number", { build: { script: 42 } }],
      ["a workflow rule with an unknown when", { workflow: { rules: [{ when: "sometimes" }] } }],
      ["an input of an unknown type", { spec: { inputs: { prefix: { type: "float" } } } }],
      ["an unknown key in spec", { spec: { inputs: {}, outputs: {} } }],
      ["a job rule with an unknown key", { build: { script: ["make"], rules: [{ iff: "$CI" }] } }],
    ];
    for (const [what, config] of invalid) {
      assert.notDeepEqual(schemaErrors(config), [], `the validator accepted ${what}`);
    }
  });
});

describe("template files", () => {
  test("ci-templates/templates/ holds the component", () => {
    assert.ok(templates.includes(templateFile), `${templateFile} is missing`);
  });

  for (const file of templates) {
    const name = path.relative(repoRoot, file);

    test(`${name}: a spec header document, then the configuration, both valid`, async () => {
      const text = await readFile(file, "utf8");
      const docs = parseCiYaml(text, name);
      assert.equal(docs.length, 2, "a component file is a `spec:` header, `---`, then the configuration");
      const [header, body] = docs;
      assert.deepEqual(Object.keys(header as object), ["spec"], "the header holds spec: only");
      assertValid(header, `${name} (header)`);
      assertValid(body, `${name} (configuration, inputs not interpolated)`);
    });

    test(`${name}: valid with inputs interpolated, defaults and other values`, async () => {
      const text = await readFile(file, "utf8");
      const [headerText, ...rest] = text.split(/^---$/m);
      const bodyText = rest.join("---");
      const inputs = specInputs(parseCiYaml(headerText ?? "", name)[0]);
      const defaults = Object.fromEntries(Object.entries(inputs).map(([key, spec]) => [key, spec.default]));
      const others = Object.fromEntries(
        Object.entries(inputs).map(([key, spec]) => [
          key,
          spec.type === "boolean" ? !spec.default : spec.type === "number" ? 7 : "other-value",
        ]),
      );
      for (const values of [defaults, others]) {
        const [body] = parseCiYaml(interpolate(bodyText, values), name);
        assertValid(body, `${name} with inputs ${JSON.stringify(values)}`);
      }
    });

    test(`${name}: every input is declared, described, used, and its default passes its own regex`, async () => {
      const text = await readFile(file, "utf8");
      const [headerText, ...rest] = text.split(/^---$/m);
      const bodyText = rest.join("---");
      const inputs = specInputs(parseCiYaml(headerText ?? "", name)[0]);
      const used = new Set([...bodyText.matchAll(/\$\[\[\s*inputs\.([\w-]+)\s*\]\]/g)].map((m) => m[1]));
      assert.deepEqual([...used].sort(), Object.keys(inputs).sort(), "inputs used in the body = inputs declared");
      for (const [key, spec] of Object.entries(inputs)) {
        assert.ok((spec.description ?? "").length > 20, `input ${key} needs a description`);
        assert.notEqual(spec.default, undefined, `input ${key} needs a default, so that including needs no inputs`);
        if (spec.type === "boolean") assert.equal(typeof spec.default, "boolean", `input ${key}: boolean default`);
        if (spec.regex !== undefined) {
          assert.match(String(spec.default), new RegExp(spec.regex), `default of ${key} fails its regex`);
        }
      }
    });
  }

  test("workflow:rules are .trusted-workflow's rules, then `when: always`", async () => {
    const [, body] = parseCiYaml(await readFile(templateFile, "utf8"), "template");
    const config = body as { workflow?: { rules?: unknown[] }; ".trusted-workflow"?: { rules?: unknown[] } };
    const shared = config[".trusted-workflow"]?.rules ?? [];
    assert.ok(shared.length > 0);
    for (const rule of shared) assert.equal((rule as { when?: string }).when, "never", "shared rules only say never");
    assert.deepEqual(config.workflow?.rules, [...shared, { when: "always" }]);
  });

  test("inputs that reach rules:if regexes or shell code are restricted by a regex", async () => {
    const [header] = parseCiYaml(await readFile(templateFile, "utf8"), "template");
    const inputs = specInputs(header);
    const rejects = (key: string, values: string[]) => {
      const regex = new RegExp(inputs[key]?.regex ?? "");
      assert.ok(inputs[key]?.regex, `input ${key} has no regex`);
      for (const value of values) assert.doesNotMatch(value, regex, `input ${key} accepts ${JSON.stringify(value)}`);
    };
    rejects("trusted-branch-prefix", ["trusted/", "a.b", "x y", "'; rm -rf /", "", "(a|b)"]);
    rejects("no-detached-pipeline-label", ["a/b", "x y", "a,b", "$(id)", "(^|x)"]);
    rejects("api-token-variable", ["1TOKEN", "A-B", "A B", "X}; id; {", ""]);
    // bot-username lands in single quotes in the check's shell script and is compared with GITLAB_USER_LOGIN.
    rejects("bot-username", ["-bot", "a b", "bot'; exit 0; '", "$(id)", "a/b", "@bot", "bot\n", "b`id`"]);
    assert.match("", new RegExp(inputs["bot-username"]?.regex ?? "^$"), "bot-username may be empty (not used)");
    assert.match("project_42_bot_3f9a1c.x-y", new RegExp(inputs["bot-username"]?.regex ?? ""));
  });

  test("the default image is pinned by version and digest", async () => {
    const [header] = parseCiYaml(await readFile(templateFile, "utf8"), "template");
    const image = String(specInputs(header)["image"]?.default);
    assert.match(image, /^[\w./-]+:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/);
    assert.ok((await readFile(readmeFile, "utf8")).includes(image), "the README names the pinned image");
  });
});

const readme = await readFile(readmeFile, "utf8");
const blocks = await readmeYamlBlocks();

describe("ci-templates/README.md", () => {
  test("has yaml examples, including the complete example project", () => {
    assert.ok(blocks.length >= 6, `found only ${blocks.length} yaml blocks`);
    assert.ok(blocks.some((b) => b.name === "complete-project"));
    for (const way of ["component:", "project:", "remote:", "local:"]) {
      assert.ok(
        blocks.some((b) => new RegExp(`^\\s*- ${way}`, "m").test(b.code)),
        `no example includes the template with include: ${way}`,
      );
    }
  });

  for (const block of blocks) {
    test(`yaml block at line ${block.line} validates against GitLab's CI schema`, () => {
      const docs = parseCiYaml(block.code, `README.md line ${block.line}`);
      assert.ok(docs.length >= 1);
      for (const doc of docs) assertValid(doc, `README.md yaml block at line ${block.line}`);
    });
  }

  test("documents every input with its default", async () => {
    const [header] = parseCiYaml(await readFile(templateFile, "utf8"), "template");
    const inputs = specInputs(header);
    const section = readme.split(/^## /m).find((s) => s.startsWith("Inputs")) ?? "";
    const rows = [...section.matchAll(/^\| `([\w-]+)` \| (\w+) \| `([^`]*)` \|/gm)];
    assert.deepEqual(rows.map((r) => r[1]).sort(), Object.keys(inputs).sort(), "input table rows = inputs");
    for (const row of rows) {
      const spec = inputs[row[1] ?? ""];
      assert.equal(row[2], spec?.type ?? "string", `type of ${row[1]}`);
      // An empty default is written `""`.
      const documented = row[3] === '""' ? "" : (row[3] ?? "").replace(/…$/, "");
      assert.ok(String(spec?.default).startsWith(documented), `default of ${row[1]}: README says ${row[3]}`);
    }
  });

  test("documents the variables the bot passes, and the SHA check reads each of them", async () => {
    const template = await readFile(templateFile, "utf8");
    for (const variable of [
      "TRUSTED_MR_IID",
      "TRUSTED_SOURCE_SHA",
      "TRUSTED_SOURCE_PROJECT_ID",
      "TRUSTED_SOURCE_BRANCH",
      "TRUSTED_GRANTED_BY",
    ]) {
      assert.match(readme, new RegExp(`^\\| \`${variable}\` \\|`, "m"), `README variable table lacks ${variable}`);
      assert.ok(template.includes(`\${${variable}:-`), `the SHA check does not read ${variable}`);
    }
  });
});
