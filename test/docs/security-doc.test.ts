/**
 * docs/security.md lists the attacks the suite covers, each by its test's name. This keeps the list true: every
 * test named `attack: …`, `abuse: …` or `leak: …` in the suite is listed there, and every name listed there is a
 * test that exists.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = new URL("../../", import.meta.url).pathname;
const doc = readFileSync(join(root, "docs/security.md"), "utf8");

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith(".test.ts") ? [join(dir, e.name)] : [],
  );
}

/** Literal names of attack tests: `it("attack: …")`, `test(…)` and decide's table rows `name: "attack: …"`. */
const NAME = /(?:\b(?:it|test)\(\s*|\bname:\s*)(["'`])((?:attack|abuse|leak): (?:(?!\1)[^\n])*)\1/g;

const named = new Map<string, string>();
for (const file of testFiles(join(root, "test"))) {
  if (file.endsWith("security-doc.test.ts")) continue;
  for (const match of readFileSync(file, "utf8").matchAll(NAME)) {
    const name = match[2]!;
    if (!name.includes("${")) named.set(name.replace(/\\(.)/g, "$1"), file.slice(root.length));
  }
}

describe("docs/security.md", () => {
  it("lists every attack, abuse and leak test of the suite by name", () => {
    assert.ok(named.size >= 20, `found only ${named.size} attack tests: is the pattern still right?`);
    const missing = [...named].filter(([name]) => !doc.includes(name)).map(([name, file]) => `${file}: ${name}`);
    assert.deepEqual(missing, [], "add these to the table in docs/security.md");
  });

  it("names no attack test that does not exist", () => {
    const listed = [...doc.matchAll(/(?:attack|abuse|leak): [^;|\n]*[^;|\n\s]/g)].map((m) => m[0]);
    const known = [...named.keys()];
    const dynamic = /^attack: a Maintainer's .* of \/trust runs nothing/; // hidden-commands builds these names
    const unknown = listed.filter((name) => !known.includes(name) && !dynamic.test(name));
    assert.deepEqual(unknown, [], "docs/security.md names tests that do not exist");
  });
});
