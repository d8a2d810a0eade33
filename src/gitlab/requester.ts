/**
 * The HTTP requester the adapter gives `@gitbeaker/rest` (its `requesterFn` option), replacing gitbeaker's own for
 * two reasons:
 * - gitbeaker's default handler retries 429 and 502 about ten times within ~256 ms and ignores `Retry-After`
 *   (FACTS.md, "Rate limits"); a 429 must instead reach `classifyGitLabError` with its headers so the worker waits
 *   as long as GitLab asked;
 * - every HTTP request, including each page of a list and each retry, is counted by route template and status;
 * - every HTTP request first waits for the shared call budget (`RequesterHooks.beforeCall`, call-budget.ts), and a
 *   429 pauses every process's calls (`RequesterHooks.rateLimited`) before it is thrown.
 *
 * Otherwise it behaves like gitbeaker's (`@gitbeaker/rest` 43 `defaultRequestHandler` and
 * `@gitbeaker/requester-utils` `defaultOptionsHandler`): snake_case JSON bodies, bracketed array query parameters,
 * `{ body, headers, status }` answers, and `GitbeakerRequestError` with `cause: { description, request, response }`
 * for a non-2xx answer. GETs, and the writes the caller names idempotent (`RequesterHooks.retriesWrite`), are tried
 * up to three times on a 5xx or a network error, within about a second, so that a blip costs no job attempt; a 429
 * never is (the worker waits as long as GitLab asked, without spending an attempt), and neither is a write that
 * could do its work twice.
 *
 * It does not import gitbeaker: the adapter (the only module that does) passes gitbeaker's error class in.
 */
/** Per-request outcome: an HTTP status, or "network" when no answer came. */
export type CallStatus = number | "network";

export interface RequesterHooks {
  /** Called once per HTTP request sent. */
  onCall(route: string, status: CallStatus): void;
  /** Builds the error for a non-2xx answer: gitbeaker's `GitbeakerRequestError`. */
  requestError(description: string, cause: { description: string; request: Request; response: Response }): Error;
  /**
   * Whether a write to `route` (`"POST /projects/:id/statuses/:sha"`) may be sent again after a 5xx or a network
   * error: only when sending it twice ends where sending it once does. Absent: no write is sent again.
   */
  retriesWrite?(route: string): boolean;
  /** Awaited before each HTTP request, retries included (the shared call budget, call-budget.ts); may throw. */
  beforeCall?(route: string): Promise<void>;
  /** Awaited with the error built for a 429 before it is thrown (to pause every process's calls). */
  rateLimited?(error: Error, route: string): Promise<void>;
}

/**
 * Pause before each further try of a request that answered 5xx or not at all (two retries, three tries in all),
 * each ±25 % so that requests that failed together do not come back together. Short on purpose: an outage longer
 * than this is the worker's to wait out, with its backoff.
 */
const RETRY_DELAYS_MS = [200, 600] as const;
const RETRY_JITTER = 0.25;
/** A 5xx's `Retry-After` up to this is waited for here; a longer one is left to the worker. */
const MAX_IN_REQUEST_WAIT_MS = 2000;

interface ServiceOptions {
  url: string;
  headers: Record<string, string>;
  authHeaders: Record<string, () => Promise<string>>;
}

interface RequestOptions {
  searchParams?: Record<string, unknown>;
  body?: unknown;
  sudo?: string | number;
  signal?: AbortSignal;
}

interface FormattedResponse {
  body: unknown;
  headers: Record<string, string>;
  status: number;
}

type Method = "get" | "post" | "put" | "patch" | "delete";

/** A `requesterFn` for gitbeaker resources: `(serviceOptions) => { get, post, put, patch, delete }`. */
export function createRequesterFn(hooks: RequesterHooks) {
  return (service: ServiceOptions) => {
    const make =
      (method: Method) =>
      async (endpoint: string, options: RequestOptions = {}): Promise<FormattedResponse> => {
        const headers: Record<string, string> = { ...service.headers };
        for (const [key, value] of Object.entries(service.authHeaders ?? {})) headers[key] = await value();
        if (options.sudo !== undefined) headers["sudo"] = String(options.sudo);
        let body: string | FormData | undefined;
        if (options.body instanceof FormData) body = options.body;
        else if (options.body !== undefined && !isEmptyObject(options.body)) {
          body = JSON.stringify(decamelizeKeys(options.body));
          headers["content-type"] = "application/json";
        }
        const base = service.url.endsWith("/") ? service.url : `${service.url}/`;
        const url = new URL(endpoint, base);
        url.search = formatQuery(options.searchParams);
        const verb = method.toUpperCase();
        const route = routeTemplate(verb, url.pathname);
        const retries = verb === "GET" || hooks.retriesWrite?.(route) === true;
        for (let attempt = 0; ; attempt++) {
          const request = new Request(url, { method: verb, headers, body, signal: options.signal });
          const pause = retries ? RETRY_DELAYS_MS[attempt] : undefined;
          let response: Response;
          await hooks.beforeCall?.(route);
          try {
            response = await fetch(request);
          } catch (error) {
            hooks.onCall(route, "network");
            // A timeout (gitbeaker's `queryTimeout` aborts the signal) already took as long as GitLab may take.
            if (pause !== undefined && !options.signal?.aborted) {
              await delay(jittered(pause));
              continue;
            }
            throw error;
          }
          hooks.onCall(route, response.status);
          if (response.ok) return parseResponse(response);
          const wait = pause === undefined || response.status < 500 ? undefined : serverWaitMs(response, pause);
          if (wait !== undefined) {
            await response.body?.cancel();
            await delay(wait);
            continue;
          }
          const error = await requestError(request, response, hooks);
          if (response.status === 429) await hooks.rateLimited?.(error, route);
          throw error;
        }
      };
    return { get: make("get"), post: make("post"), put: make("put"), patch: make("patch"), delete: make("delete") };
  };
}

/** Segment before an id -> the id's placeholder in the route template. */
const ID_AFTER: Readonly<Record<string, string>> = {
  projects: ":id",
  groups: ":id",
  users: ":user_id",
  merge_requests: ":iid",
  notes: ":note_id",
  award_emoji: ":award_id",
  pipelines: ":pipeline_id",
  jobs: ":job_id",
  branches: ":branch",
  protected_branches: ":name",
  statuses: ":sha",
  commits: ":sha",
  hooks: ":hook_id",
  labels: ":label_id",
  all: ":user_id",
};

/** `GET /projects/:id/merge_requests/:iid` from `GET /api/v4/projects/12/merge_requests/3`: no ids, no names. */
export function routeTemplate(method: string, pathname: string): string {
  const path = pathname.replace(/^.*?\/api\/v4(?=\/)/, "");
  const segments = path.split("/");
  const out = segments.map((segment, i) => {
    const before = i > 0 ? segments[i - 1] : undefined;
    const placeholder = before === undefined ? undefined : ID_AFTER[before];
    if (placeholder && !(before === "all" && !/^\d+$/.test(segment))) return placeholder;
    return segment;
  });
  return `${method} ${out.join("/")}`;
}

async function parseResponse(response: Response): Promise<FormattedResponse> {
  const headers = Object.fromEntries(response.headers.entries());
  if (response.status === 204) return { body: null, headers, status: response.status };
  const contentType = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  let body: unknown;
  if (contentType === "application/json") body = (await response.json()) ?? {};
  else body = await response.text();
  return { body, headers, status: response.status };
}

async function requestError(request: Request, response: Response, hooks: RequesterHooks): Promise<Error> {
  const content = await response.text();
  let description = content;
  if (response.headers.get("content-type")?.includes("application/json")) {
    try {
      const output = JSON.parse(content) as { error?: unknown; message?: unknown } | null;
      const property = output?.error ?? output?.message ?? "";
      description = typeof property === "string" ? property : JSON.stringify(property);
    } catch {
      // Not JSON after all: keep the text.
    }
  }
  return hooks.requestError(description, { description, request, response });
}

function decamelize(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

function decamelizeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decamelizeKeys);
  if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [decamelize(k), decamelizeKeys(v)]));
  }
  return value;
}

/** Query string like `qs.stringify(decamelizeKeys(params), { arrayFormat: "brackets" })`. */
function formatQuery(params: Record<string, unknown> | undefined): string {
  if (!params) return "";
  const query = new URLSearchParams();
  const add = (key: string, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) for (const item of value) add(`${key}[]`, item);
    else if (typeof value === "object") {
      for (const [k, v] of Object.entries(value)) add(`${key}[${decamelize(k)}]`, v);
    } else query.append(key, String(value));
  };
  for (const [key, value] of Object.entries(params)) add(decamelize(key), value);
  return query.toString();
}

function isEmptyObject(value: unknown): boolean {
  return !!value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0;
}

/**
 * How long to pause before trying a 5xx again: the usual pause, or the 5xx's `Retry-After` (a 503 may name one) when
 * longer, if that is short enough to wait here; `undefined` leaves the retry to the worker.
 */
function serverWaitMs(response: Response, pause: number): number | undefined {
  const retryAfter = response.headers.get("retry-after")?.trim();
  const named = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : 0;
  if (named > MAX_IN_REQUEST_WAIT_MS) return undefined;
  return Math.max(jittered(pause), named);
}

function jittered(ms: number): number {
  return Math.round(ms * (1 - RETRY_JITTER + 2 * RETRY_JITTER * Math.random()));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
