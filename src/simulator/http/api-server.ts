/**
 * The HTTP shell: Express parses, the route table decides. Every `/api/v4` request passes, in order, fault
 * injection (before anything else, like a proxy or Rack::Attack in front of Rails), authentication, the handler;
 * each one is appended to the request log with its route template. Unknown routes answer 501 so a test notices
 * the bot calling something the simulator does not model. `POST /api/graphql` takes the same path, with
 * GitLab's GraphqlController rules for tokens and errors (`graphql-schema.ts` is the schema).
 */
import express, { type NextFunction, type Request, type Response } from "express";
import { GraphQLError, graphql, parse, specifiedRules, validate } from "graphql";
import type { FaultInjector } from "../faults.js";
import { gitlabSchema, versionRules } from "../graphql-schema.js";
import type { RequestLogEntry } from "../model.js";
import { SimError } from "../sim-error.js";
import type { UserRecord } from "../state.js";
import type { WebhookDispatcher } from "../webhooks.js";
import type { World } from "../world.js";
import { ParamError } from "./params.js";
import type { Params, Reply, Route } from "./route-table.js";

export interface ApiServerDeps {
  world: World;
  dispatcher: WebhookDispatcher;
  faults: FaultInjector;
  requestLog: RequestLogEntry[];
  routes: readonly Route[];
  /** False: `POST /api/graphql` is not served (404), as on a GitLab stand-in without GraphQL. */
  graphqlEnabled: () => boolean;
}

const API_PREFIX = "/api/v4";
const GRAPHQL_PATH = "/api/graphql";
/** The GraphQL endpoint is not below `/api/v4`, so its log entries name its path from the root. */
const GRAPHQL_ROUTE = `POST ${GRAPHQL_PATH}`;
/** `GraphqlController::MAX_QUERY_SIZE`, in characters. */
const MAX_QUERY_SIZE = 10_000;

function tokenOf(req: Request): string | undefined {
  return (req.get("private-token") ?? /^Bearer\s+(.+)$/i.exec(req.get("authorization") ?? "")?.[1])?.trim();
}

function authenticate(deps: ApiServerDeps, req: Request): UserRecord | undefined {
  const token = tokenOf(req);
  return token ? deps.world.state.userByToken(token) : undefined;
}

function send(res: Response, reply: Reply): void {
  res.status(reply.status);
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
  if (reply.body === undefined || reply.status === 204) {
    res.end();
    return;
  }
  if (typeof reply.body === "string" && res.getHeader("content-type") !== undefined) {
    res.send(reply.body);
    return;
  }
  res.type("application/json").send(JSON.stringify(reply.body));
}

/** GitLab's error rendering: `{"message": ...}` for API errors, `{"error": ...}` for Grape param validation. */
function errorReply(e: unknown): Reply {
  if (e instanceof SimError) return { status: e.status, body: { message: e.body } };
  if (e instanceof ParamError) return { status: 400, body: { error: e.error } };
  console.error("[gitlab-simulator] handler crashed:", e);
  return { status: 500, body: { message: "500 Internal Server Error" } };
}

function handle(deps: ApiServerDeps, route: Route) {
  const template = `${route.method} ${route.template}`;
  return async (req: Request, res: Response): Promise<void> => {
    const fullPath = req.originalUrl.slice(API_PREFIX.length);
    const path = fullPath.split("?")[0] ?? fullPath;
    let userId: number | undefined;
    const finish = (reply: Reply) => {
      deps.requestLog.push({
        method: route.method,
        route: template,
        path: fullPath,
        status: reply.status,
        ...(userId === undefined ? {} : { userId }),
        at: Date.now(),
      });
      send(res, reply);
    };

    const fault = await deps.faults.apply(`${route.method} ${path}`, template);
    if (fault) return finish(fault);

    const user = authenticate(deps, req);
    if (!user) return finish({ status: 401, body: { message: "401 Unauthorized" } });
    userId = user.id;

    const query = req.query as Params;
    const body = req.body && typeof req.body === "object" ? (req.body as Params) : {};
    const ctx = {
      world: deps.world,
      state: deps.world.state,
      user,
      params: { ...query, ...body, ...req.params },
      path,
      query,
    };
    let reply: Reply;
    try {
      reply = deps.dispatcher.withEventScope(() => route.handler(ctx));
    } catch (e) {
      reply = errorReply(e);
    }
    finish(reply);
  };
}

/** GraphqlController#render_error: `{"errors": [{"message": ...}]}` with an HTTP status. */
const graphqlError = (status: number, message: string): Reply => ({ status, body: { errors: [{ message }] } });

/**
 * `Gitlab::Graphql::Variables`: a JSON object, a JSON string of one, or nothing; anything else is 422 (the wording
 * of that error is *inferred*).
 */
function graphqlVariables(raw: unknown): { variables: Record<string, unknown> } | { refusal: Reply } {
  if (raw === undefined || raw === null || raw === "") return { variables: {} };
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch (e) {
      return { refusal: graphqlError(422, e instanceof Error ? e.message : "Invalid variables") };
    }
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return { variables: value as Record<string, unknown> };
  }
  return { refusal: graphqlError(422, `Unexpected parameter: ${JSON.stringify(raw)}`) };
}

/**
 * `POST /api/graphql` (app/controllers/graphql_controller.rb). Faults first, like any route. No token is an
 * anonymous request (GitLab serves public data to it); a token that matches no user is 401 "Invalid token"
 * (`authorize_access_api!`). Then the query: over `MAX_QUERY_SIZE` is 422 "Query too large" (`limit_query_size`),
 * an empty one graphql-ruby's "No query string was present"; everything else, unknown fields and bad arguments
 * included, is 200 with `errors`, as GraphQL answers. Batched (`_json`) queries and GET are not modelled.
 */
function handleGraphql(deps: ApiServerDeps) {
  return async (req: Request, res: Response): Promise<void> => {
    const token = tokenOf(req);
    const user = token ? deps.world.state.userByToken(token) : undefined;
    const finish = (reply: Reply, route = GRAPHQL_ROUTE) => {
      deps.requestLog.push({
        method: "POST",
        route,
        path: req.originalUrl,
        status: reply.status,
        ...(user ? { userId: user.id } : {}),
        at: Date.now(),
      });
      send(res, reply);
    };
    if (!deps.graphqlEnabled()) {
      return finish({ status: 404, headers: { "content-type": "text/plain" }, body: "Not Found\n" }, "UNKNOWN");
    }

    const fault = await deps.faults.apply(GRAPHQL_ROUTE, GRAPHQL_ROUTE);
    if (fault) return finish(fault);
    if (token && !user) return finish(graphqlError(401, "Invalid token"));

    const body = req.body && typeof req.body === "object" ? (req.body as Params) : {};
    const query = typeof body["query"] === "string" ? body["query"] : "";
    if (query.length > MAX_QUERY_SIZE) return finish(graphqlError(422, "Query too large"));
    if (query.trim() === "") return finish(graphqlError(200, "No query string was present"));
    const parsed = graphqlVariables(body["variables"]);
    if ("refusal" in parsed) return finish(parsed.refusal);
    const operationName = typeof body["operationName"] === "string" ? body["operationName"] : null;
    const older = versionRules(deps.world.state.instance.version);
    if (older.length > 0) {
      // An older GitLab's schema: what it did not have is a validation error, answered like any other (200).
      let document: ReturnType<typeof parse> | undefined;
      try {
        document = parse(query);
      } catch (e) {
        if (!(e instanceof GraphQLError)) throw e; // a syntax error: `graphql` below answers it
      }
      const errors = document ? validate(gitlabSchema, document, [...specifiedRules, ...older]) : [];
      if (errors.length > 0) return finish({ status: 200, body: { errors: errors.map((e) => e.toJSON()) } });
    }
    try {
      const result = await graphql({
        schema: gitlabSchema,
        source: query,
        variableValues: parsed.variables,
        operationName,
        contextValue: { state: deps.world.state, user },
      });
      finish({ status: 200, body: result });
    } catch (e) {
      console.error("[gitlab-simulator] GraphQL crashed:", e);
      finish(graphqlError(500, "Internal server error"));
    }
  };
}

export function createApiApp(deps: ApiServerDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  // Rack parses `a[]=1&b[][c]=2` into nested params; so does qs ("extended").
  app.set("query parser", "extended");

  const api = express.Router();
  api.use(express.json({ limit: "25mb" }));
  api.use(express.urlencoded({ extended: true, limit: "25mb" }));
  for (const route of deps.routes) {
    const register = route.method.toLowerCase() as "get" | "post" | "put" | "delete";
    api[register](route.template, handle(deps, route));
  }
  api.use((req: Request, res: Response) => {
    const fullPath = req.originalUrl.slice(API_PREFIX.length);
    const user = authenticate(deps, req);
    deps.requestLog.push({
      method: req.method,
      route: "UNKNOWN",
      path: fullPath,
      status: 501,
      ...(user ? { userId: user.id } : {}),
      at: Date.now(),
    });
    console.error(`[gitlab-simulator] 501 Not Implemented: ${req.method} ${fullPath}`);
    send(res, { status: 501, body: { message: `501 Not Implemented: ${req.method} ${fullPath.split("?")[0]}` } });
  });
  api.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // Body parse errors: Rack answers malformed JSON with 400.
    const fullPath = req.originalUrl.slice(API_PREFIX.length);
    deps.requestLog.push({ method: req.method, route: "INVALID", path: fullPath, status: 400, at: Date.now() });
    send(res, { status: 400, body: { error: err instanceof Error ? err.message : "Bad Request" } });
  });

  app.use(API_PREFIX, api);
  app.post(GRAPHQL_PATH, express.json({ limit: "25mb" }), handleGraphql(deps));
  app.use(GRAPHQL_PATH, (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // A body that is not JSON: Rails answers 400 before the controller runs.
    deps.requestLog.push({ method: req.method, route: "INVALID", path: req.originalUrl, status: 400, at: Date.now() });
    send(res, graphqlError(400, err instanceof Error ? err.message : "Bad Request"));
  });
  app.use((_req: Request, res: Response) => {
    res.status(404).type("text/plain").send("Not Found\n");
  });
  return app;
}
