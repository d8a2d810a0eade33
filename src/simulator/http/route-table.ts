/**
 * The contract between the HTTP shell and the per-resource route modules: a handler gets the caller, the merged
 * params and the world, and returns a reply. Handlers are synchronous, so every webhook a request causes shares
 * one `X-Gitlab-Event-UUID` and is queued before the response is written.
 */
import type { SimState, UserRecord } from "../state.js";
import type { World } from "../world.js";

export type Params = Record<string, unknown>;

export interface RequestContext {
  readonly world: World;
  readonly state: SimState;
  readonly user: UserRecord;
  /** Query, body and path params merged (path wins), like Grape's `params`. */
  readonly params: Params;
  /** `/api/v4`-relative path without the query, for pagination links. */
  readonly path: string;
  /** The query as received, for pagination links. */
  readonly query: Params;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (ctx: RequestContext) => Reply;

export type Method = "GET" | "POST" | "PUT" | "DELETE";

export interface Route {
  method: Method;
  /** Express path below `/api/v4`, which is also the template logged in `requestLog`. */
  template: string;
  handler: Handler;
}

/** Collects routes; each resource module adds its own. */
export class RouteTable {
  readonly routes: Route[] = [];

  get(template: string, handler: Handler): void {
    this.routes.push({ method: "GET", template, handler });
  }

  post(template: string, handler: Handler): void {
    this.routes.push({ method: "POST", template, handler });
  }

  put(template: string, handler: Handler): void {
    this.routes.push({ method: "PUT", template, handler });
  }

  delete(template: string, handler: Handler): void {
    this.routes.push({ method: "DELETE", template, handler });
  }
}

export const ok = (body: unknown): Reply => ({ status: 200, body });
export const created = (body: unknown): Reply => ({ status: 201, body });
export const noContent = (): Reply => ({ status: 204 });
