/**
 * Turns a comment into a command, an immediate reply, or nothing (STYLE.md §6: parsers return outcomes).
 *
 * A command is a line that starts with `/trust`, `/ok-to-test`, `/untrust`, `/retest` or `/help` in a top-level
 * paragraph of the note *as GitLab renders it*: the note is parsed as CommonMark (micromark, the reference-grade
 * parser) plus GitLab's front matter and `>>>` multi-line quotes, and everything else (quotes, code blocks, indented
 * code, lists, headings, raw HTML such as `<!-- -->`, `<pre>` or `<details>`) is dropped, as are lines that other
 * inline markup (code, a comment, a link) starts or that GitLab's tables, strikethrough or math may take over. A
 * committer who quotes or pastes a contributor's text therefore never runs a command hidden in it, and a command
 * counts only where a reader sees it as one; in doubt, a line is not a command. Other slash words (`/assign`,
 * GitLab's quick actions) are not ours and are ignored.
 *
 * Replies never contain text from the note: whatever we echo could forge markup (the sticky note's hidden marker,
 * mentions) inside a note the bot authored.
 */
import { fromMarkdown } from "mdast-util-from-markdown";

export type CommandName = "trust" | "untrust" | "retest" | "merge" | "help";

export type ParsedComment =
  | { kind: "command"; command: CommandName; sha?: string }
  | { kind: "reply"; text: string }
  | { kind: "ignore"; reason: string };

const ALIASES: Readonly<Record<string, CommandName>> = {
  trust: "trust",
  "ok-to-test": "trust",
  untrust: "untrust",
  retest: "retest",
  // GitLab's own `/merge` quick action takes a note that is only `/merge` from anyone allowed to merge (it never
  // reaches the bot then: `lib/gitlab/quick_actions/merge_request_actions.rb`); `/merge-trusted` always does.
  "merge-trusted": "merge",
  merge: "merge",
  help: "help",
};

/**
 * A full SHA, or a prefix long enough that nobody can craft a second commit sharing it (the workflow still checks
 * that a prefix matches the head). 7 to 11 hex digits are cheap to collide by brute force, so they get a reply.
 */
const SHA_RE = /^[0-9a-f]{12,40}$/i;
const SHORT_SHA_RE = /^[0-9a-f]{7,11}$/i;

/** A line that may be a command, before any parsing: most notes have none and cost nothing more. */
const COMMAND_LINE_RE = new RegExp(`^[ \\t]*/(?:${Object.keys(ALIASES).join("|")})(?=\\s|$)`, "im");

/**
 * Longer notes are not read: parsing is synchronous and costs up to ~30 µs a character (see {@link PARSE_BUDGET_US}),
 * and anyone who can comment can post a note of 1 MB (GitLab's limit). A committer's command note is far shorter.
 */
const MAX_NOTE_LENGTH = 5_000;

const TOO_LONG = `If this comment holds a command: commands are read only in comments of up to ${MAX_NOTE_LENGTH.toLocaleString("en")} characters with few \`>>>\` quotes. Post the command in a comment of its own.`;

export function parseComment(body: string): ParsedComment {
  if (!COMMAND_LINE_RE.test(body)) return { kind: "ignore", reason: "no command" };
  const lines = body.length <= MAX_NOTE_LENGTH ? commandLines(body) : undefined;
  if (!lines) return { kind: "reply", text: TOO_LONG };
  const found: Array<{ name: string; command: CommandName; args: string[] }> = [];
  for (const line of lines) {
    const match = /^\/([a-z][a-z-]*)(?=\s|$)(.*)$/i.exec(line);
    if (!match?.[1]) continue;
    const name = match[1].toLowerCase();
    const command = ALIASES[name];
    if (!command) continue;
    found.push({ name, command, args: (match[2] ?? "").trim().split(/\s+/).filter(Boolean) });
  }
  const first = found[0];
  if (!first) return { kind: "ignore", reason: "no command" };
  if (new Set(found.map((f) => f.command)).size > 1) {
    // `name` is a key of ALIASES, not the note's text.
    const names = [...new Set(found.map((f) => `/${f.name}`))].join(", ");
    return { kind: "reply", text: `One command per comment, please: this one has ${names}.` };
  }
  if (first.command === "trust") {
    if (first.args.length === 0) return { kind: "command", command: "trust" };
    const [sha, ...rest] = first.args;
    if (rest.length === 0 && sha && SHA_RE.test(sha)) {
      return { kind: "command", command: "trust", sha: sha.toLowerCase() };
    }
    if (rest.length === 0 && sha && SHORT_SHA_RE.test(sha)) {
      return {
        kind: "reply",
        text: `Short commit SHAs are not accepted: anyone can craft a commit that starts with the same few characters as the one you reviewed. Comment \`/${first.name}\` followed by the full 40-character SHA of the commit you reviewed.`,
      };
    }
    return {
      kind: "reply",
      text: `\`/${first.name}\` takes at most one argument: the SHA of the commit you reviewed, in full (40 hex characters) or at least its first 12, as plain text.`,
    };
  }
  if (first.args.length > 0) {
    return { kind: "reply", text: `\`/${first.name}\` takes no arguments.` };
  }
  return { kind: "command", command: first.command };
}

/**
 * The lines of the note's top-level paragraphs, trimmed, that could hold a command; `undefined` when reading them
 * would cost more than {@link PARSE_BUDGET_US}.
 *
 * GitLab has parsed `>>>` quotes two ways: today's parser (comrak, `multiline_block_quotes`) closes a quote at the
 * next `>>>` line whatever it is inside, the older `BlockquoteFenceFilter` skips `>>>` lines in code blocks within
 * the quote. Text outside a quote in one reading can be inside it, or inside a code block, in the other, so when
 * the readings differ a line counts only if both put it in a top-level paragraph.
 */
function commandLines(body: string): string[] | undefined {
  const note = new Note(dropFrontMatter(body.replace(/\r\n?/g, "\n").split("\n")));
  try {
    const comrak = dropFencedQuotes(note, "comrak");
    const current = paragraphLines(note, comrak.lines);
    if (!comrak.readingsDiffer) return current.map((l) => l.text);
    const legacy = paragraphLines(note, dropFencedQuotes(note, "code-aware").lines);
    const both = new Set(legacy.map((l) => `${l.line}:${l.text}`));
    return current.filter((l) => both.has(`${l.line}:${l.text}`)).map((l) => l.text);
  } catch (error) {
    if (error instanceof OverBudget) return undefined;
    throw error;
  }
}

/** Thrown when a note costs more parsing than {@link PARSE_BUDGET_US}. */
class OverBudget extends Error {}

/**
 * The parsing a note may cost, in microseconds as estimated from micromark's slowest inputs (images, links or
 * emphasis back to back, or deeply nested quotes: up to ~30 µs a character; many short lines: up to ~100 µs a line).
 * Finding `>>>` quotes takes a parse per quote, so a note of many quotes and a long tail could otherwise cost
 * seconds; an ordinary note needs a few percent of this, a note of the longest kind two or three parses.
 */
const PARSE_BUDGET_US = 400_000;

/** A note's lines and the parses made of them, within {@link PARSE_BUDGET_US}. Parses of unchanged lines are shared. */
class Note {
  private readonly parsed = new Map<string, Root>();
  private budget = PARSE_BUDGET_US;

  constructor(readonly lines: readonly string[]) {}

  /** Lines `from` to `to` (exclusive) of the note as written; line numbers in the result count from `from`. */
  range(from: number, to: number): Root {
    const key = `${from}:${to}`;
    let root = this.parsed.get(key);
    if (!root) {
      root = this.parse(this.lines.slice(from, to));
      this.parsed.set(key, root);
    }
    return root;
  }

  parse(lines: readonly string[]): Root {
    for (const line of lines) this.budget -= 30 * line.length + 100;
    if (this.budget < 0) throw new OverBudget();
    return fromMarkdown(lines.join("\n"));
  }
}

/**
 * GitLab's front matter (`FrontMatterFilter`): a block between `---`, `+++` or `;;;` lines at the very start,
 * rendered as a code block. Replaced by blank lines.
 */
const FRONT_MATTER_RE =
  /^(?:[^\n]*coding:[^\n]*\n)?(?:\s*\n)?(---|\+\+\+|;;;)[ \t]*\S*\n[\s\S]*?(?<=\n)(?:\1|\.{3})[ \t]*(?=\n|$)/;

function dropFrontMatter(lines: string[]): string[] {
  const front = FRONT_MATTER_RE.exec(lines.join("\n"))?.[0];
  if (front === undefined) return lines;
  const count = front.split("\n").length;
  return [...new Array<string>(count).fill(""), ...lines.slice(count)];
}

type Root = ReturnType<typeof fromMarkdown>;
type TopLevel = Root["children"][number];

/** What this module reads of any mdast node. */
interface AnyNode {
  type: string;
  value?: unknown;
  children?: AnyNode[];
  position?: { start: { line: number; offset?: number }; end: { line: number; offset?: number } };
}

/** How a `>>>` quote ends: see {@link commandLines}. */
type QuoteClose = "comrak" | "code-aware";

/**
 * The line that opens a multi-line quote: three or more `>` alone (comrak's `open_multiline_block_quote_fence`), or
 * followed by an alert type (`>>> [!note]`, comrak's `alert_start`, a multi-line alert box).
 */
const QUOTE_OPEN_RE = /^[ \t]*(>{3,})(?:[ \t]*| \[!(?:note|tip|important|warning|caution)\].*)$/i;

/** The line that closes it: as many `>` or more, alone, indented at most 3 columns. */
const QUOTE_CLOSE_RE = /^[ \t]*(>{3,})[ \t]*$/;

/**
 * GitLab's multi-line blockquotes (https://docs.gitlab.com/user/markdown/#multiline-blockquote), which CommonMark
 * does not know, replaced by a thematic break and blank lines: the quote's text is gone and, as after GitLab's
 * quote, nothing open before it (a list, a paragraph) continues after it. Line numbers are kept.
 *
 * A quote opens where CommonMark starts a top-level block quote on an opening line (so a `>>>` in a code block, an
 * HTML block or a list opens none), and ends at the next closing line (see {@link findQuoteEnd}) or with the note.
 * `readingsDiffer` says whether the other reading of {@link QuoteClose} would end a quote elsewhere.
 */
function dropFencedQuotes(note: Note, close: QuoteClose): { lines: string[]; readingsDiffer: boolean } {
  const lines = [...note.lines];
  let readingsDiffer = false;
  if (!lines.some((l) => QUOTE_OPEN_RE.test(l))) return { lines, readingsDiffer };
  for (let from = 0; from < lines.length; ) {
    // After a quote GitLab's parser starts afresh, so the rest is parsed on its own.
    const open = findQuoteOpen(note, from);
    if (open === undefined) break;
    const end = findQuoteEnd(note, open, close);
    readingsDiffer ||= end.readingsDiffer;
    lines[open] = "***";
    lines.fill("", open + 1, end.line + 1);
    from = end.line + 1;
  }
  return { lines, readingsDiffer };
}

/** The first line at or after `from` that opens a `>>>` quote, if any. */
function findQuoteOpen(note: Note, from: number): number | undefined {
  const candidate = note.lines.findIndex((l, i) => i >= from && QUOTE_OPEN_RE.test(l));
  if (candidate < 0) return undefined;
  // CommonMark reads blocks line by line, so the lines up to the first candidate settle whether it opens a quote.
  const last = note.range(from, candidate + 1).children.at(-1);
  if (last?.type === "blockquote" && from + startLine(last) === candidate) return candidate;
  for (const node of note.range(from, note.lines.length).children) {
    const at = from + startLine(node);
    if (at > candidate && node.type === "blockquote" && QUOTE_OPEN_RE.test(note.lines[at] ?? "")) return at;
  }
  return undefined;
}

/**
 * The line that closes the quote opened at `open` (the last line when the note ends first): the next closing line
 * with at least as many `>`; for `code-aware`, the next one outside the code and HTML blocks of the quoted text.
 */
function findQuoteEnd(note: Note, open: number, close: QuoteClose): { line: number; readingsDiffer: boolean } {
  const { lines } = note;
  const length = QUOTE_OPEN_RE.exec(lines[open] ?? "")?.[1]?.length ?? 3;
  const closes = (i: number) => {
    const line = lines[i] ?? "";
    const fence = QUOTE_CLOSE_RE.exec(line)?.[1];
    return fence !== undefined && fence.length >= length && indentWidth(line) <= 3;
  };
  const first = lines.findIndex((_, i) => i > open && closes(i));
  if (first < 0) return { line: lines.length - 1, readingsDiffer: false };
  const inBlock = (node: AnyNode, at: number): boolean =>
    ((node.type === "code" || node.type === "html") &&
      node.position !== undefined &&
      open + node.position.start.line <= at &&
      at <= open + node.position.end.line) ||
    (node.children ?? []).some((child) => inBlock(child, at));
  if (!inBlock(note.range(open + 1, first + 1), first)) return { line: first, readingsDiffer: false };
  if (close === "comrak") return { line: first, readingsDiffer: true };
  const quoted = note.range(open + 1, lines.length);
  const end = lines.findIndex((_, i) => i > first && closes(i) && !inBlock(quoted, i));
  return { line: end < 0 ? lines.length - 1 : end, readingsDiffer: true };
}

/** The 0-based line a node starts on. */
function startLine(node: TopLevel): number {
  return (node.position?.start.line ?? 1) - 1;
}

/** Leading blanks in columns, tabs to the next multiple of 4 (CommonMark). */
function indentWidth(line: string): number {
  let width = 0;
  for (const c of line) {
    if (c === " ") width++;
    else if (c === "\t") width += 4 - (width % 4);
    else break;
  }
  return width;
}

/**
 * Stands for any inline node that is not plain text (code, HTML, emphasis, links, images): never blank and never
 * part of a command word, so "`x` /trust" or "<!-- c -->/trust" is no line starting with a command.
 */
const NOT_TEXT = "\uFFFC";

/** A line of a paragraph as typed, and whether it starts outside any element left open by raw HTML. */
interface TypedLine {
  line: number;
  text: string;
  outside: boolean;
}

/**
 * Each line of each top-level paragraph with its line number in the note, as typed: a command must be typed, not
 * spelled with escapes or character references. Paragraphs inside an HTML element left open by raw HTML before them
 * (`<details>`, a blank line, a paragraph) are skipped: GitLab renders them inside that element, possibly collapsed.
 * An element opened inside a container (quote, list) is closed with it, so only top-level raw HTML counts.
 */
function paragraphLines(note: Note, lines: readonly string[]): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  const source = lines.join("\n");
  const open = new OpenElements();
  for (const node of note.parse(lines).children) {
    if (node.type === "html") open.feed(node.value);
    else if (node.type === "heading") open.feedAll(node);
    if (node.type !== "paragraph") continue;
    const paragraph: TypedLine[] = [];
    let current: TypedLine = { line: startLine(node), text: "", outside: open.depth === 0 };
    const nextLine = (at: number) => {
      paragraph.push({ ...current, text: current.text.trim() });
      current = { line: at, text: "", outside: open.depth === 0 };
    };
    for (const child of node.children as AnyNode[]) {
      const { start, end } = child.position ?? {};
      if (child.type === "text" && start?.offset !== undefined && end?.offset !== undefined) {
        const [first, ...more] = source.slice(start.offset, end.offset).split("\n");
        current.text += first;
        more.forEach((typed, i) => {
          nextLine(start.line + i);
          current.text += typed;
        });
      } else if (child.type === "break" && end) {
        nextLine(end.line - 1);
      } else {
        open.feedAll(child);
        current.text += NOT_TEXT;
      }
    }
    nextLine(-1);
    out.push(...plainLines(paragraph));
  }
  return out;
}

/** A GitLab table's delimiter row (`| --- | :-: |`): the line before it and the lines after it are table cells. */
const TABLE_DELIMITER_RE = /^\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?$/;

/**
 * The lines of a paragraph that GitLab shows as lines of text, as far as CommonMark cannot tell: GitLab's own inline
 * syntax can span lines (`~~struck~~` or `~struck~`, `$math$`), so a line between two `~` or two `$` may be struck
 * through or a formula; and a table turns lines of a paragraph into cells.
 */
function plainLines(paragraph: readonly TypedLine[]): TypedLine[] {
  const marks = (l: TypedLine) => (l.text.includes("~") ? 1 : 0) | (l.text.includes("$") ? 2 : 0);
  const after: number[] = [];
  for (let i = paragraph.length - 1, seen = 0; i >= 0; i--) {
    after[i] = seen;
    seen |= marks(paragraph[i]!);
  }
  const kept: TypedLine[] = [];
  let before = 0;
  let table = false;
  paragraph.forEach((l, i) => {
    table ||= TABLE_DELIMITER_RE.test(l.text) || TABLE_DELIMITER_RE.test(paragraph[i + 1]?.text ?? "");
    if (l.outside && !table && (before & after[i]!) === 0) kept.push(l);
    before |= marks(l);
  });
  return kept;
}

/** Elements with no content, never left open. */
const VOID_ELEMENTS = new Set(
  "area base basefont bgsound br col embed frame hr img input keygen link meta param source track wbr".split(" "),
);

/** Comments, processing instructions, declarations and CDATA: raw HTML that opens no element. */
const NOT_A_TAG_RE = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<![A-Za-z][^>]*>|<!\[CDATA\[[\s\S]*?\]\]>/g;

/** An open or closing tag (CommonMark's raw HTML grammar); a self-closing `/>` leaves a non-void element open. */
const TAG_RE =
  /<(\/?)([A-Za-z][A-Za-z0-9-]*)(?:\s+[A-Za-z_:][\w.:-]*(?:\s*=\s*(?:[^\s"'=<>`]+|'[^']*'|"[^"]*"))?)*\s*\/?>/g;

/**
 * The HTML elements left open by the raw HTML read so far, in the spirit of the HTML parser GitLab's sanitizer and
 * the browser run: a closing tag closes its element and whatever was opened inside it. Any unclosed element counts,
 * even one the sanitizer would drop: a command in doubt is not a command.
 */
class OpenElements {
  private readonly stack: string[] = [];

  get depth(): number {
    return this.stack.length;
  }

  feed(html: string): void {
    for (const [, closing, rawName] of html.replace(NOT_A_TAG_RE, "").matchAll(TAG_RE)) {
      const name = (rawName ?? "").toLowerCase();
      if (!closing) {
        if (!VOID_ELEMENTS.has(name)) this.stack.push(name);
        continue;
      }
      const at = this.stack.lastIndexOf(name);
      if (at >= 0) this.stack.length = at;
    }
  }

  /** The raw HTML anywhere in an inline node or heading. */
  feedAll(node: AnyNode): void {
    if (node.type === "html" && typeof node.value === "string") this.feed(node.value);
    for (const child of node.children ?? []) this.feedAll(child);
  }
}
