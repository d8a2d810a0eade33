import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ParsedComment, parseComment } from "../../src/trust/parse-command.js";

const SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";

describe("parseComment", () => {
  const table: Array<[string, string, ParsedComment["kind"], Partial<ParsedComment>?]> = [
    ["plain trust", "/trust", "command", { command: "trust" }],
    ["alias", "/ok-to-test", "command", { command: "trust" }],
    ["trust with short sha", "/trust 1a2b3c4", "command", { command: "trust", sha: "1a2b3c4" }],
    ["trust with full sha, upper case", `/trust ${SHA.toUpperCase()}`, "command", { command: "trust", sha: SHA }],
    ["alias with sha", "/ok-to-test 1a2b3c4d", "command", { command: "trust", sha: "1a2b3c4d" }],
    ["untrust", "/untrust", "command", { command: "untrust" }],
    ["retest", "/retest", "command", { command: "retest" }],
    ["help", "/help", "command", { command: "help" }],
    ["leading blanks and text around", "LGTM, thanks!\n  /trust  \nmerging later", "command", { command: "trust" }],
    ["CRLF line ends", "looks good\r\n/trust\r\n", "command", { command: "trust" }],
    ["no command", "Looks good to me", "ignore"],
    ["empty", "", "ignore"],
    ["command mid-line", "please /trust this", "ignore"],
    ["other quick action", "/assign @me", "ignore"],
    ["prefix of a word", "/trusted", "ignore"],
    ["inside a fenced block", "Type this:\n```\n/trust\n```", "ignore"],
    ["inside a tilde fence", "~~~\n/trust\n~~~", "ignore"],
    ["inside an unclosed fence", "```\n/trust", "ignore"],
    ["inside inline code", "`/trust`", "ignore"],
    ["in a quote", "> /trust\nI would not do that", "ignore"],
    ["in a nested quote", ">> /trust", "ignore"],
    ["after a closed fence", "```\ncode\n```\n/retest", "command", { command: "retest" }],
    ["sha not hex", "/trust nothex", "reply"],
    ["sha too short", "/trust 1a2b3c", "reply"],
    ["sha too long", `/trust ${SHA}0`, "reply"],
    ["two arguments", "/trust 1a2b3c4 extra", "reply"],
    ["argument to untrust", "/untrust now", "reply"],
    ["two different commands", "/trust\n/untrust", "reply"],
    ["the same command twice", "/trust\n/ok-to-test", "command", { command: "trust" }],
  ];
  for (const [name, body, kind, expected] of table) {
    it(name, () => {
      const result = parseComment(body);
      assert.equal(result.kind, kind, JSON.stringify(result));
      if (expected) assert.deepEqual({ ...result, ...expected }, result);
    });
  }

  it("a malformed /trust says what it expects", () => {
    const result = parseComment("/trust nothex");
    assert.equal(result.kind, "reply");
    assert.match((result as { text: string }).text, /7 to 40 hex characters/);
  });
});
