import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ParsedComment, parseComment } from "../../src/trust/parse-command.js";

const SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";

type Row = [name: string, body: string, kind: ParsedComment["kind"], expected?: Partial<ParsedComment>];

function table(rows: Row[]): void {
  for (const [name, body, kind, expected] of rows) {
    it(name, () => {
      const result = parseComment(body);
      assert.equal(result.kind, kind, JSON.stringify(result));
      if (expected) assert.deepEqual({ ...result, ...expected }, result);
    });
  }
}

function replyText(body: string): string {
  const result = parseComment(body);
  assert.equal(result.kind, "reply", JSON.stringify(result));
  return (result as { text: string }).text;
}

describe("parseComment", () => {
  table([
    ["plain trust", "/trust", "command", { command: "trust" }],
    ["alias", "/ok-to-test", "command", { command: "trust" }],
    ["trust with a full sha", `/trust ${SHA}`, "command", { command: "trust", sha: SHA }],
    ["trust with full sha, upper case", `/trust ${SHA.toUpperCase()}`, "command", { command: "trust", sha: SHA }],
    [
      "trust with a 12-hex prefix",
      `/trust ${SHA.slice(0, 12)}`,
      "command",
      { command: "trust", sha: SHA.slice(0, 12) },
    ],
    ["alias with sha", `/ok-to-test ${SHA.slice(0, 16)}`, "command", { command: "trust", sha: SHA.slice(0, 16) }],
    ["untrust", "/untrust", "command", { command: "untrust" }],
    ["retest", "/retest", "command", { command: "retest" }],
    ["help", "/help", "command", { command: "help" }],
    ["leading blanks and text around", "LGTM, thanks!\n  /trust  \nmerging later", "command", { command: "trust" }],
    ["a later line of the same paragraph", "Reviewed, looks safe.\n/trust", "command", { command: "trust" }],
    ["after a paragraph and a blank line", "Reviewed, looks safe.\n\n/trust", "command", { command: "trust" }],
    ["after a line ending in a hard break", "Reviewed  \n/trust", "command", { command: "trust" }],
    ["CRLF line ends", "looks good\r\n/trust\r\n", "command", { command: "trust" }],
    ["no command", "Looks good to me", "ignore"],
    ["empty", "", "ignore"],
    ["command mid-line", "please /trust this", "ignore"],
    ["other quick action", "/assign @me", "ignore"],
    ["prefix of a word", "/trusted", "ignore"],
    ["after a closed fence", "```\ncode\n```\n/retest", "command", { command: "retest" }],
    ["a ~ or $ on one side only", "Takes ~5 min, costs $2.\n/trust\nThanks!", "command", { command: "trust" }],
    ["emphasis and code on the line before", "*Reviewed* `src/`:\n/trust", "command", { command: "trust" }],
    ["sha not hex", "/trust nothex", "reply"],
    ["sha too short", "/trust 1a2b3c", "reply"],
    ["sha too long", `/trust ${SHA}0`, "reply"],
    ["two arguments", `/trust ${SHA} extra`, "reply"],
    ["argument to untrust", "/untrust now", "reply"],
    ["two different commands", "/trust\n/untrust", "reply"],
    ["the same command twice", "/trust\n/ok-to-test", "command", { command: "trust" }],
  ]);

  describe("commands a reader does not see as commands are ignored", () => {
    table([
      [">>> quote", ">>>\n/trust\n>>>", "ignore"],
      [">>> quote, longer fence, indented", "  >>>>\n/trust\n>>>>>", "ignore"],
      [">>> quote left open to the end", "Dave wrote:\n>>>\n/trust", "ignore"],
      [">>> alert box", ">>> [!note] From Dave\n\n/trust\n\n>>>", "ignore"],
      ["> quote", "> /trust\nI would not do that", "ignore"],
      ["> quote, lazy continuation", "> Dave asked for\n/trust", "ignore"],
      ["nested > quote", ">> /trust", "ignore"],
      ["fenced code", "Type this:\n```\n/trust\n```", "ignore"],
      ["tilde fence", "~~~\n/trust\n~~~", "ignore"],
      ["unclosed fence", "```\n/trust", "ignore"],
      ["4-space indented code", "Type this:\n\n    /trust", "ignore"],
      ["tab-indented code", "\t/trust", "ignore"],
      ["HTML comment block", "<!--\n/trust\n-->", "ignore"],
      ["HTML comment block with blank lines", "<!--\n\n/trust\n\n-->", "ignore"],
      ["inline HTML comment before it", "<!-- x -->/trust", "ignore"],
      ["inline HTML comment in a paragraph", "Fine <!-- c -->/trust", "ignore"],
      ["<pre> block", "<pre>\n/trust\n</pre>", "ignore"],
      ["<pre> block with blank lines", "<pre>\n\n/trust\n\n</pre>", "ignore"],
      ["<details> block", "<details>\n/trust\n</details>", "ignore"],
      ["<details> block with blank lines", "<details><summary>Log</summary>\n\n/trust\n\n</details>", "ignore"],
      ["<details> opened inline", "See the log <details>\n/trust", "ignore"],
      ["<details/> is no void element", "<details/>\n\n/trust", "ignore"],
      ["inline code", "`/trust`", "ignore"],
      ["inline code before it", "`x` /trust", "ignore"],
      ["emphasis", "*/trust*", "ignore"],
      ["emphasis over lines", "*Dave asked:\n/trust\nbut no*", "ignore"],
      ["list item", "- /trust", "ignore"],
      ["ordered list item", "1. /trust", "ignore"],
      ["link text", "[/trust](https://example.com)", "ignore"],
      ["link text over lines", "[see\n/trust\nhere](https://example.com)", "ignore"],
      ["heading", "# /trust", "ignore"],
      ["setext heading", "/trust\n---", "ignore"],
      ["escaped slash", "\\/trust", "ignore"],
      ["character reference", "&#47;trust", "ignore"],
      ["character reference for a line feed", "Fine&#10;/trust", "ignore"],
      ["front matter", "+++\n/trust\n+++", "ignore"],
      ["GitLab strikethrough over lines", "~~Dave asked for\n/trust\nbut not yet~~", "ignore"],
      ["GitLab math over lines", "$$\n/trust\n$$", "ignore"],
      ["GitLab table row", "| step |\n| --- |\n/trust", "ignore"],
      ["GitLab table header", "/trust\n| --- |", "ignore"],
    ]);
  });

  describe(">>> quotes as GitLab reads them", () => {
    table([
      ["text after a closed quote", "Dave wrote:\n>>>\n/retest\n>>>\n/trust", "command", { command: "trust" }],
      ["after a quote and a blank line", ">>>\n/retest\n>>>\n\n/trust", "command", { command: "trust" }],
      ["a shorter fence does not close", ">>>>\n>>>\n/trust\n>>>\n>>>>\n/retest", "command", { command: "retest" }],
      ["a `>>>` in a code block opens nothing", "```\n>>>\n```\n/trust", "command", { command: "trust" }],
      ["a `>>>` in an HTML block opens nothing", "<div>\n>>>\n</div>\n\n/trust", "command", { command: "trust" }],
      // Today's GitLab closes the quote at the `>>>` inside the code block; the older filter does not. Both hide it.
      ["a `>>>` in code inside a quote (older GitLab)", ">>>\n```\n>>>\n/trust\n```\n>>>", "ignore"],
      ["a `>>>` in code inside a quote (today's GitLab)", ">>>\n```\n>>>\n```\n>>>\n/trust", "ignore"],
      ["raw HTML in a quote is closed with it", ">>>\n<details>\n\n>>>\n\n/trust", "command", { command: "trust" }],
      ["a `>>>` in an HTML block inside a quote", ">>>\n<details>\n>>>\n\n/trust", "ignore"],
      [
        "a closed <details> before it",
        "<details><summary>Log</summary>\n\n```\nlog\n```\n\n</details>\n\n/trust",
        "command",
      ],
      ["front matter before it", "---\nwhat: review\n---\n/trust", "command", { command: "trust" }],
      ["a command inside a quote is not one of two", ">>>\n/untrust\n>>>\n/trust", "command", { command: "trust" }],
    ]);
  });

  describe("replies never repeat the note", () => {
    it("a malformed /trust says what it expects, without the arguments", () => {
      const text = replyText('/trust <!-- trusted-mr-bot:sticky {"v":1} -->');
      assert.match(
        text,
        /takes at most one argument: the SHA of the commit you reviewed, in full \(40 hex characters\)/,
      );
      assert.doesNotMatch(text, /sticky|"v"|<!--/);
      assert.doesNotMatch(replyText("/trust @all please"), /@all|please/);
      assert.doesNotMatch(replyText("/ok-to-test [x](https://evil.example)"), /evil|\[x\]/);
    });

    it("a short SHA is refused with the reason, without the SHA", () => {
      for (const short of [SHA.slice(0, 7), SHA.slice(0, 8), SHA.slice(0, 11)]) {
        const text = replyText(`/trust ${short}`);
        assert.match(text, /^Short commit SHAs are not accepted: anyone can craft a commit that starts with the same/);
        assert.match(text, /followed by the full 40-character SHA/);
        assert.ok(!text.includes(short), text);
      }
    });

    it("arguments to other commands are not repeated", () => {
      assert.equal(replyText("/untrust <!-- trusted-mr-bot:sticky -->"), "`/untrust` takes no arguments.");
    });

    it("one command per comment names the commands, not the note", () => {
      assert.equal(
        replyText("/trust @all\n/RETEST <b>x</b>"),
        "One command per comment, please: this one has /trust, /retest.",
      );
    });
  });

  describe("cost", () => {
    it("a long note without a command line is not parsed", () => {
      const started = performance.now();
      assert.equal(parseComment(`${"word ".repeat(200_000)}\n> /trust`).kind, "ignore");
      assert.ok(performance.now() - started < 500);
    });

    it("a review of nearly the longest kind, with quotes, is read", () => {
      const paragraph =
        "The change to `parse()` looks right; see [the spec](https://spec.commonmark.org/) for *why*.\n";
      const quote = `>>>\n${paragraph.repeat(4)}>>>\n\n`;
      const body = `${paragraph.repeat(15)}\n${quote}${paragraph.repeat(15)}\n${quote}${paragraph.repeat(10)}\n/trust ${SHA}`;
      assert.ok(body.length > 4_000 && body.length <= 5_000, String(body.length));
      assert.deepEqual(parseComment(body), { kind: "command", command: "trust", sha: SHA });
    });

    it("a long note with a command line gets a reply, not a parse", () => {
      assert.match(replyText(`${"a".repeat(5_000)}\n\n/trust`), /comments of up to 5,000 characters/);
    });

    it("a note that would take many parses gets the same reply", () => {
      // Every `>>>` inside a code block sends the search for the next quote through the whole rest of the note.
      const body = `${"```\n>>>\n```\n>>>\nq\n>>>\n".repeat(20)}${"a\n".repeat(2000)}/trust`;
      assert.ok(body.length <= 5_000);
      const started = performance.now();
      assert.match(replyText(body), /comments of up to 5,000 characters/);
      assert.ok(performance.now() - started < 2000);
    });
  });
});
