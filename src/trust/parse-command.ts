/**
 * Turns a comment into a command, an immediate reply, or nothing (STYLE.md §6: parsers return outcomes).
 *
 * A command is a line of its own that starts with `/trust`, `/ok-to-test`, `/untrust`, `/retest` or `/help`.
 * Text inside fenced code blocks, inline code and `>` quotes is dropped first (as prow does), so quoting or
 * documenting a command never runs it. Other slash words (`/assign`, GitLab's quick actions) are not ours and are
 * ignored.
 */

export type CommandName = "trust" | "untrust" | "retest" | "help";

export type ParsedComment =
  | { kind: "command"; command: CommandName; sha?: string }
  | { kind: "reply"; text: string }
  | { kind: "ignore"; reason: string };

const ALIASES: Readonly<Record<string, CommandName>> = {
  trust: "trust",
  "ok-to-test": "trust",
  untrust: "untrust",
  retest: "retest",
  help: "help",
};

const SHA_RE = /^[0-9a-f]{7,40}$/i;

/** Removes fenced code blocks, inline code spans and quoted lines. */
export function stripQuotedAndCode(body: string): string {
  const lines = body.replace(/\r\n?/g, "\n").split("\n");
  const kept: string[] = [];
  let fence: string | undefined;
  for (const line of lines) {
    const fenceMatch = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence !== undefined) {
      if (fenceMatch?.[1] && fenceMatch[1][0] === fence[0] && fenceMatch[1].length >= fence.length) fence = undefined;
      continue;
    }
    if (fenceMatch?.[1]) {
      fence = fenceMatch[1];
      continue;
    }
    if (/^\s*>/.test(line)) continue;
    kept.push(line.replace(/(`+)[\s\S]*?\1/g, ""));
  }
  return kept.join("\n");
}

export function parseComment(body: string): ParsedComment {
  const found: Array<{ name: string; command: CommandName; args: string[] }> = [];
  for (const raw of stripQuotedAndCode(body).split("\n")) {
    const match = /^\s*\/([a-z][a-z-]*)(?=\s|$)(.*)$/i.exec(raw);
    if (!match?.[1]) continue;
    const name = match[1].toLowerCase();
    const command = ALIASES[name];
    if (!command) continue;
    found.push({ name, command, args: (match[2] ?? "").trim().split(/\s+/).filter(Boolean) });
  }
  const first = found[0];
  if (!first) return { kind: "ignore", reason: "no command" };
  if (new Set(found.map((f) => f.command)).size > 1) {
    const names = [...new Set(found.map((f) => `/${f.name}`))].join(", ");
    return { kind: "reply", text: `One command per comment, please: this one has ${names}.` };
  }
  if (first.command === "trust") {
    if (first.args.length === 0) return { kind: "command", command: "trust" };
    const [sha, ...rest] = first.args;
    if (rest.length > 0 || !sha || !SHA_RE.test(sha)) {
      return {
        kind: "reply",
        text: `\`/${first.name}\` takes at most one argument, the commit SHA you reviewed (7 to 40 hex characters), e.g. \`/${first.name} 1a2b3c4d\`; got \`${first.args.join(" ").slice(0, 80)}\`.`,
      };
    }
    return { kind: "command", command: "trust", sha: sha.toLowerCase() };
  }
  if (first.args.length > 0) {
    return { kind: "reply", text: `\`/${first.name}\` takes no arguments.` };
  }
  return { kind: "command", command: first.command };
}
