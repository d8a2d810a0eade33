/** Table test of `classifyGitLabError` over the error shapes `@gitbeaker/rest` 43 actually throws. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GitbeakerRequestError, GitbeakerRetryError, GitbeakerTimeoutError } from "@gitbeaker/rest";
import { PermanentError, RateLimitedError, TransientError } from "../../src/errors.js";
import { classifyGitLabError, DEFAULT_RATE_LIMIT_WAIT_MS } from "../../src/gitlab/classify-error.js";

const ROUTE = "POST /projects/:id/statuses/:sha";
const NOW = Date.parse("2025-01-01T00:00:00Z");
const now = () => NOW;

/** What gitbeaker throws for a non-2xx answer. */
function requestError(status: number, headers: Record<string, string> = {}, description = "oops") {
  const request = new Request("http://gitlab.test/api/v4/projects/1/statuses/abc", {
    method: "POST",
    headers: { "private-token": "glpat-secret" },
  });
  const response = new Response(JSON.stringify({ message: description }), { status, headers });
  return new GitbeakerRequestError(description, { cause: { description, request, response } });
}

describe("classifyGitLabError", () => {
  const rateLimited: Array<[string, Record<string, string>, number]> = [
    ["Retry-After in seconds", { "retry-after": "3" }, 3000],
    ["Retry-After as an HTTP date", { "retry-after": new Date(NOW + 5000).toUTCString() }, 5000],
    [
      "RateLimit-Reset (unix seconds) when Retry-After is absent",
      { "ratelimit-reset": String(NOW / 1000 + 42) },
      42_000,
    ],
    ["Retry-After wins over RateLimit-Reset", { "retry-after": "7", "ratelimit-reset": String(NOW / 1000 + 42) }, 7000],
    ["neither header: the default", {}, DEFAULT_RATE_LIMIT_WAIT_MS],
    ["an absurd Retry-After: the default", { "retry-after": "999999" }, DEFAULT_RATE_LIMIT_WAIT_MS],
    ["a reset in the past: no wait", { "ratelimit-reset": String(NOW / 1000 - 10) }, 0],
  ];
  for (const [name, headers, wait] of rateLimited) {
    it(`429, ${name} → RateLimitedError(${wait} ms)`, () => {
      const original = requestError(429, headers);
      const error = classifyGitLabError(original, ROUTE, now);
      assert.ok(error instanceof RateLimitedError);
      assert.equal(error.retryAfterMs, wait);
      assert.equal(error.cause, original);
    });
  }

  for (const status of [500, 502, 503, 504, 409, 408]) {
    it(`${status} → TransientError`, () => {
      const error = classifyGitLabError(requestError(status, {}, "Conflict"), ROUTE, now);
      assert.ok(error instanceof TransientError);
      assert.match(error.message, new RegExp(`GitLab POST /projects/:id/statuses/:sha answered ${status}: Conflict`));
    });
  }

  const permanent: Array<[number, RegExp]> = [
    [401, /^check gitlab\.token/],
    [403, /^the bot's user lacks permission for POST \/projects\/:id\/statuses\/:sha/],
    [404, /found nothing/],
    [400, /rejected the request as invalid \(Cannot transition status/],
    [422, /rejected the request as invalid/],
  ];
  for (const [status, hint] of permanent) {
    it(`${status} → PermanentError with a hint`, () => {
      const error = classifyGitLabError(requestError(status, {}, "Cannot transition status via :run"), ROUTE, now);
      assert.ok(error instanceof PermanentError);
      assert.match(error.hint ?? "", hint);
      assert.ok(!error.message.includes("glpat-"), "no token in the message");
    });
  }

  it("gitbeaker's own 429 retries ran out (no headers left) → RateLimitedError with the default wait", () => {
    const error = classifyGitLabError(
      new GitbeakerRetryError(
        "Could not successfully complete this request after 10 retries, last status code: 429. Check the applicable rate limits for this endpoint.",
      ),
      ROUTE,
    );
    assert.ok(error instanceof RateLimitedError);
    assert.equal(error.retryAfterMs, DEFAULT_RATE_LIMIT_WAIT_MS);
  });

  it("gitbeaker's 502 retries ran out → TransientError", () => {
    const error = classifyGitLabError(
      new GitbeakerRetryError("Could not successfully complete this request after 10 retries, last status code: 502."),
      ROUTE,
    );
    assert.ok(error instanceof TransientError);
  });

  it("a query timeout → TransientError", () => {
    assert.ok(
      classifyGitLabError(new GitbeakerTimeoutError("Query timeout was reached"), ROUTE) instanceof TransientError,
    );
  });

  it("a refused connection (fetch failed, ECONNREFUSED) → TransientError naming the code", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    const error = classifyGitLabError(new TypeError("fetch failed", { cause: refused }), ROUTE);
    assert.ok(error instanceof TransientError);
    assert.match(error.message, /ECONNREFUSED/);
  });

  it("passes classified and unknown errors through unchanged", () => {
    const permanent = new PermanentError("x", "fix y");
    assert.equal(classifyGitLabError(permanent, ROUTE), permanent);
    const bug = new RangeError("a bug");
    assert.equal(classifyGitLabError(bug, ROUTE), bug);
  });
});
