/**
 * Fault injection for `/api/v4` requests: latency, random 5xx, rate limiting (429 with `Retry-After`, optionally
 * the `RateLimit-*` headers), and deterministic `failNext` for tests.
 *
 * Bodies follow GitLab: Rails API errors are JSON `{"message": "500 Internal Server Error"}`; 502/503 come from
 * Workhorse/the load balancer as plain text; Rack::Attack answers 429 with `Retry later` (text/plain) and
 * `Retry-After`, plus `RateLimit-Name/Limit/Observed/Remaining/Reset` on most throttles
 * (`Gitlab::RackAttack::ThrottledResponse`), not all.
 */
import type { Faults } from "./model.js";

export interface FaultResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface PendingFailure {
  remaining: number;
  status: number;
  retryAfterSeconds: number | undefined;
  route: RegExp | undefined;
  message: string | undefined;
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** gitlab.com's authenticated API limit: 2000 requests per minute per user. */
const RATE_LIMIT = 2000;

export class FaultInjector {
  private faults: Faults = {};
  private pending: PendingFailure[] = [];

  set(f: Faults): void {
    this.faults = { ...this.faults, ...f };
  }

  clear(): void {
    this.faults = {};
    this.pending = [];
  }

  get dropWebhookRate(): number {
    return this.faults.dropWebhookRate ?? 0;
  }

  failNext(n: number, status: number, o: { retryAfterSeconds?: number; route?: RegExp; message?: string } = {}): void {
    this.pending.push({
      remaining: n,
      status,
      retryAfterSeconds: o.retryAfterSeconds,
      route: o.route,
      message: o.message,
    });
  }

  /**
   * Decides the fate of one API request before it is handled. `target` is `"METHOD /path"` and `template`
   * `"METHOD /route/:template"`; a `failNext` route filter may match either.
   */
  async apply(target: string, template: string): Promise<FaultResponse | undefined> {
    if (this.faults.latencyMs) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
    const scripted = this.pending.find(
      (p) => p.remaining > 0 && (!p.route || p.route.test(target) || p.route.test(template)),
    );
    if (scripted) {
      scripted.remaining -= 1;
      this.pending = this.pending.filter((p) => p.remaining > 0);
      return this.response(scripted.status, scripted.retryAfterSeconds, scripted.message);
    }
    if (this.faults.rateLimitRate && Math.random() < this.faults.rateLimitRate) {
      return this.response(429, this.faults.retryAfterSeconds);
    }
    if (this.faults.errorRate && Math.random() < this.faults.errorRate) {
      return this.response(this.faults.errorStatus ?? 500, undefined);
    }
    return undefined;
  }

  private response(status: number, retryAfterSeconds: number | undefined, message?: string): FaultResponse {
    if (status === 429) {
      const retryAfter = retryAfterSeconds ?? this.faults.retryAfterSeconds ?? 1;
      const headers: Record<string, string> = { "Content-Type": "text/plain", "Retry-After": String(retryAfter) };
      if (this.faults.rateLimitHeaders) {
        Object.assign(headers, {
          "RateLimit-Name": "throttle_authenticated_api",
          "RateLimit-Limit": String(RATE_LIMIT),
          "RateLimit-Observed": String(RATE_LIMIT + 1),
          "RateLimit-Remaining": "0",
          "RateLimit-Reset": String(Math.floor(Date.now() / 1000) + retryAfter),
        });
      }
      return { status, headers, body: "Retry later\n" };
    }
    const text = message ?? `${status} ${REASONS[status] ?? "Error"}`;
    if (status === 502 || status === 503) {
      return { status, headers: { "Content-Type": "text/plain" }, body: `${text}\n` };
    }
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (retryAfterSeconds !== undefined) headers["Retry-After"] = String(retryAfterSeconds);
    return { status, headers, body: JSON.stringify({ message: text }) };
  }
}
