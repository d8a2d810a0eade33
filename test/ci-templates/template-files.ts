import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type CollectionTag, parseAllDocuments, YAMLSeq } from "yaml";

/** Paths of the CI templates and of the fixtures their tests use. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const ciTemplatesDir = path.join(repoRoot, "ci-templates");
/** The component project's `templates/` directory (GitLab's component layout). */
export const templatesDir = path.join(ciTemplatesDir, "templates");
export const templateFile = path.join(templatesDir, "trusted-merge-request.yml");
export const readmeFile = path.join(ciTemplatesDir, "README.md");
export const ciSchemaFile = path.join(repoRoot, "test/fixtures/gitlab/ci-schema.json");

/** GitLab's `!reference [job, key]` tag, read as the plain list of strings GitLab's JSON schema expects. */
const referenceTag: CollectionTag = {
  tag: "!reference",
  collection: "seq",
  nodeClass: YAMLSeq,
  resolve: (seq) => seq,
};

/** Parses every YAML document in `text` (GitLab CI flavour); YAML errors and warnings are thrown, not skipped. */
export function parseCiYaml(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text, { customTags: [referenceTag], uniqueKeys: true });
  return docs.map((doc, index) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) {
      throw new Error(`${source}, YAML document ${index + 1}: ${problems.map((p) => p.message).join("; ")}`);
    }
    return doc.toJS();
  });
}

/** The `.yml` files under `ci-templates/templates/`, absolute paths. */
export async function listTemplateFiles(): Promise<string[]> {
  const names = await readdir(templatesDir);
  return names
    .filter((name) => name.endsWith(".yml") || name.endsWith(".yaml"))
    .sort()
    .map((name) => path.join(templatesDir, name));
}

export interface MarkdownYamlBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** Name from an `<!-- example: name -->` comment on the line before the fence, if any. */
  name: string | undefined;
  code: string;
}

/** Every ```yaml / ```yml fenced block of a Markdown text. */
export function yamlBlocks(markdown: string): MarkdownYamlBlock[] {
  const lines = markdown.split("\n");
  const blocks: MarkdownYamlBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(yaml|yml)\s*$/.exec(lines[i] ?? "");
    if (!open) continue;
    const indent = open[1] ?? "";
    const fence = open[2] ?? "```";
    const previous = i > 0 ? (lines[i - 1] ?? "") : "";
    const name = /<!--\s*example:\s*([\w-]+)\s*-->/.exec(previous)?.[1];
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && (lines[j] ?? "").trim() !== fence) {
      const line = lines[j] ?? "";
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line);
      j++;
    }
    if (j >= lines.length) throw new Error(`unterminated yaml block at line ${i + 1}`);
    blocks.push({ line: i + 1, name, code: `${body.join("\n")}\n` });
    i = j;
  }
  return blocks;
}

/** The README's text and its yaml blocks. */
export async function readmeYamlBlocks(): Promise<MarkdownYamlBlock[]> {
  return yamlBlocks(await readFile(readmeFile, "utf8"));
}

/** The README example marked `<!-- example: name -->`. */
export async function readmeExample(name: string): Promise<string> {
  const block = (await readmeYamlBlocks()).find((b) => b.name === name);
  if (!block) throw new Error(`ci-templates/README.md has no yaml block marked <!-- example: ${name} -->`);
  return block.code;
}

export interface InputSpec {
  type?: string;
  default?: unknown;
  description?: string;
  regex?: string;
  options?: unknown[];
}

/** The `spec:inputs` header of a component file. */
export function specInputs(headerDoc: unknown): Record<string, InputSpec> {
  const spec = (headerDoc as { spec?: { inputs?: Record<string, InputSpec> } } | null)?.spec;
  if (!spec?.inputs) throw new Error("the first YAML document has no spec:inputs");
  return spec.inputs;
}
