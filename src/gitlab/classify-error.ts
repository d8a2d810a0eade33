/**
 * Turns whatever a GitLab call threw into the failure classes the worker understands (src/errors.ts):
 * rate limited (wait as told), transient (retry with backoff), or permanent (fail now and say what to fix).
 *
 * Shapes, from `@gitbeaker/rest` 43 (`dist/index.mjs`, `defaultRequestHandler`):
 * - a non-2xx answer throws `GitbeakerRequestError` whose `cause` is `{ description, request, response }`
 *   (`response` a fetch `Response`, so its status and headers are there);
 * - 429 and 502 are retried inside gitbeaker about ten times over ~256 ms, ignoring `Retry-After`; when that runs
 *   out it throws `GitbeakerRetryError` with only the last status in the message, no headers;
 * - a query timeout throws `GitbeakerTimeoutError`; a refused connection or DNS failure is fetch's `TypeError`.
 * Matched by `name`, not `instanceof`, so a second copy of the package in node_modules cannot break it.
 */
import { PermanentError, RateLimitedError, TransientError } from "../errors.js";
import { routeTemplate } from "./requester.js";

/** Wait used for a 429 that names no wait (no `Retry-After`, no `RateLimit-Reset`): GitLab limits per minute. */
export const DEFAULT_RATE_LIMIT_WAIT_MS = 60_000;
/** A wait longer than this is treated as a bad header, not as an instruction to sleep for hours. */
const MAX_RATE_LIMIT_WAIT_MS = 60 * 60_000;

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

interface ResponseLike {
  status: number;
  headers?: { get(name: string): string | null } | Record<string, string | undefined>;
}

/**
 * Classify `error` from a call to `route` (a template such as `POST /projects/:id/statuses/:sha`, used in messages;
 * never a URL with a token in it). Errors already classified pass through unchanged.
 */
export function classifyGitLabError(error: unknown, route: string, now: () => number = Date.now): Error {
  if (error instanceof RateLimitedError || error instanceof PermanentError || error instanceof TransientError) {
    return error;
  }
  const name = error instanceof Error ? error.name : "";
  const response = responseOf(error);
  if (name === "GitbeakerRequestError" && response) {
    const description = (error as { cause?: { description?: unknown } }).cause?.description;
    return fromStatus(response, route, gitlabMessageText(description), error, now);
  }
  if (name === "GitbeakerRetryError") {
    const status = /last status code: (\d{3})/.exec((error as Error).message)?.[1];
    if (status === "429") {
      return new RateLimitedError(`GitLab rate limit on ${route} (no wait named)`, DEFAULT_RATE_LIMIT_WAIT_MS, {
        cause: error,
      });
    }
    return new TransientError(`GitLab ${route} kept failing (last status ${status ?? "unknown"})`, { cause: error });
  }
  if (name === "GitbeakerTimeoutError" || name === "TimeoutError" || name === "AbortError") {
    return new TransientError(`GitLab ${route} timed out`, { cause: error });
  }
  const code = networkCode(error);
  if (code !== undefined) {
    return new TransientError(`GitLab unreachable for ${route} (${code}); check gitlab.url if this persists`, {
      cause: error,
    });
  }
  return error instanceof Error ? error : new TransientError(`GitLab ${route} failed: ${String(error)}`);
}

function fromStatus(response: ResponseLike, route: string, description: string, cause: unknown, now: () => number) {
  const { status } = response;
  const what = `GitLab ${route} answered ${status}${description ? `: ${description}` : ""}`;
  if (status === 429) {
    return new RateLimitedError(`GitLab rate limit on ${route}`, rateLimitWaitMs(response, now), { cause });
  }
  // 408 and 409 ("a concurrent update", FACTS.md) may succeed when tried again, like any 5xx.
  if (status >= 500 || status === 408 || status === 409) return new TransientError(what, { cause });
  return new PermanentError(what, hintFor(status, route, description), { cause });
}

function hintFor(status: number, route: string, description: string): string {
  switch (status) {
    case 401:
      return "check gitlab.token: GitLab refused it (expired, revoked, or without the api scope)";
    case 403:
      return `the bot's user lacks permission for ${route}: it needs the Maintainer role on the project (to manage protected trusted branches and run their pipelines)`;
    case 404:
      return `${route} found nothing: the project, MR, branch or pipeline is gone, or the bot's user cannot see it (add it as a member of private projects)`;
    case 400:
    case 422:
      return `GitLab rejected the request as invalid${description ? ` (${description})` : ""}; this is a bot bug or a GitLab version it does not support, please report it`;
    default:
      return `GitLab answered ${status} for ${route}; check the bot's configuration and GitLab's logs`;
  }
}

/**
 * GitLab's error `message` as one plain sentence. GitLab answers a string (`render_api_error!`), or, for a model's
 * validation errors, the errors hash (`render_validation_error!` in `lib/api/helpers.rb`: `{"message": {"base":
 * ["a", "b"], "field": ["is invalid"]}}`), which the requester hands on as JSON text. Base messages stand alone,
 * a field's are prefixed with the field as Rails' `full_messages` does: `a; b; field is invalid`. Anything that is
 * not JSON (a plain message, a proxy's HTML) is returned as it is.
 */
export function gitlabMessageText(message: unknown): string {
  if (typeof message !== "string") return flattenMessage(message, undefined);
  const trimmed = message.trim();
  if (!/^[[{"]/.test(trimmed)) return message;
  try {
    return flattenMessage(JSON.parse(trimmed) as unknown, undefined);
  } catch {
    return message;
  }
}

function flattenMessage(value: unknown, field: string | undefined): string {
  const parts = (v: unknown, f: string | undefined) => flattenMessage(v, f).trim();
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) {
    return value
      .map((v) => parts(v, field))
      .filter(Boolean)
      .join("; ");
  }
  if (typeof value === "object") {
    return Object.entries(value as Record<string, unknown>)
      .map(([key, v]) => parts(v, key === "base" || key === "message" || key === "error" ? field : key))
      .filter(Boolean)
      .join("; ");
  }
  const text = String(value).replace(/\s+/g, " ").trim();
  return field && text ? `${field} ${text}` : text;
}

/** `Retry-After` (seconds or an HTTP date), else `RateLimit-Reset` (unix seconds), else the default. */
function rateLimitWaitMs(response: ResponseLike, now: () => number = Date.now): number {
  const retryAfter = headerOf(response, "retry-after")?.trim();
  let wait: number | undefined;
  if (retryAfter) {
    if (/^\d+$/.test(retryAfter)) wait = Number(retryAfter) * 1000;
    else {
      const date = Date.parse(retryAfter);
      if (!Number.isNaN(date)) wait = date - now();
    }
  }
  if (wait === undefined) {
    const reset = headerOf(response, "ratelimit-reset")?.trim();
    if (reset && /^\d+$/.test(reset)) wait = Number(reset) * 1000 - now();
  }
  if (wait === undefined || wait > MAX_RATE_LIMIT_WAIT_MS) return DEFAULT_RATE_LIMIT_WAIT_MS;
  return Math.max(0, wait);
}

function responseOf(error: unknown): ResponseLike | undefined {
  const response = (error as { cause?: { response?: unknown } } | undefined)?.cause?.response;
  if (response && typeof (response as ResponseLike).status === "number") return response as ResponseLike;
  return undefined;
}

function headerOf(response: ResponseLike, name: string): string | undefined {
  const { headers } = response;
  if (!headers) return undefined;
  if (typeof headers.get === "function") return headers.get(name) ?? undefined;
  const record = headers as Record<string, string | undefined>;
  return record[name] ?? Object.entries(record).find(([k]) => k.toLowerCase() === name)?.[1];
}

/** `code` of a network error, on the error or its cause (fetch wraps it: `TypeError: fetch failed`). */
function networkCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
  }
  if (error instanceof TypeError && error.message === "fetch failed") return "fetch failed";
  return undefined;
}

/**
 * What GitLab did, in a few words for a reply on the MR: `502 on POST /projects/:id/repository/branches` (read from
 * the answer itself, found along the error's causes: no ids, no GitLab text), `no answer` for a network error or a
 * timeout, `undefined` when the error did not come from GitLab.
 */
export function failureBrief(error: unknown): string | undefined {
  let timedOut = false;
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const cause = (e as { cause?: { request?: unknown; response?: unknown } }).cause;
    const response = responseOf(e);
    if (response && cause?.request instanceof Request) {
      return `${response.status} on ${routeTemplate(cause.request.method, new URL(cause.request.url).pathname)}`;
    }
    if (e instanceof Error && TIMEOUT_NAMES.has(e.name)) timedOut = true;
  }
  return timedOut || networkCode(error) !== undefined ? "no answer" : undefined;
}

const TIMEOUT_NAMES = new Set(["GitbeakerTimeoutError", "TimeoutError", "AbortError"]);
