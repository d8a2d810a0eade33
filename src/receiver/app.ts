/**
 * The HTTP shell: express around the framework-free webhook handler, plus probes and metrics.
 *
 * - `POST /webhook`: the token is checked from the headers before the body is read, so an unauthenticated sender
 *   cannot make us buffer 25 MB; then the raw body (needed byte-exact for signatures) up to `webhook.body_limit`.
 * - `GET /healthz`: the process answers. `GET /readyz`: Redis answers (a receiver that cannot store must not get
 *   traffic). `GET /metrics`: Prometheus text; the queue depth is sampled on each scrape.
 * - Errors (a body over the limit, an aborted upload, a bug) become short JSON answers; a stack trace never leaves
 *   the process and a malformed request never crashes it.
 *
 * The webhook route is the hot path (`npm run bench:receiver`), so it reads the body and writes the answer with
 * Node's own request/response calls instead of body-parser and `res.json`, which measured as a sizeable share of
 * the receiver's CPU time per request. For the same reason `POST /webhook` is answered before express's router
 * (see {@link serveWebhookFirst}); every other path, and any other spelling of this one, goes through express.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import express, { type ErrorRequestHandler } from "express";
import type { Config } from "../config/config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { eventLabel, type WebhookAnswer, type WebhookHandler } from "./webhook-handler.js";

export interface AppOptions {
  config: Pick<Config, "webhook">;
  logger: Logger;
  metrics: Metrics;
  /** Absent in a worker-only process: it serves probes and metrics, not webhooks. */
  webhook?: WebhookHandler;
  /** Readiness: resolves true when Redis answers. */
  ready(): Promise<boolean>;
  /** Refreshes gauges sampled on scrape (queue depth). */
  beforeScrape?(): Promise<void>;
}

export function createApp(options: AppOptions): express.Express {
  const { config, logger, metrics, webhook } = options;
  const app = express();
  app.disable("x-powered-by");

  if (webhook) {
    const limit = config.webhook.body_limit;
    const answer = (req: IncomingMessage, res: ServerResponse, result: WebhookAnswer, started: bigint) => {
      metrics.webhooks.inc({ event: eventLabel(req.headers), outcome: result.outcome });
      metrics.receiveLatency.observe({ outcome: result.outcome }, Number(process.hrtime.bigint() - started) / 1e9);
      sendJson(res, result.status, result.body);
    };
    const receiveWebhook = (req: IncomingMessage, res: ServerResponse) => {
      const started = process.hrtime.bigint();
      const start = webhook.begin(req.headers);
      if ("answer" in start) {
        logger.warn(
          { ip: req.socket.remoteAddress, event: req.headers["x-gitlab-event"] },
          "webhook refused: bad or missing token",
        );
        // Closing the connection spares reading a body nobody will look at.
        res.setHeader("Connection", "close");
        answer(req, res, start.answer, started);
        return;
      }
      readBody(req, limit)
        .then(start.receive, (error: unknown): WebhookAnswer => {
          if (!(error instanceof BodyError)) throw error;
          // The rest of an oversized or broken upload is not worth reading.
          res.setHeader("Connection", "close");
          return {
            status: error.status,
            outcome: error.outcome,
            body: { status: error.outcome, reason: error.message },
          };
        })
        .then((result) => {
          if (result.outcome === "unauthorized") {
            logger.warn({ ip: req.socket.remoteAddress, reason: result.body }, "webhook refused: bad signature");
          }
          answer(req, res, result, started);
        })
        .catch((error: unknown) => {
          logger.error({ err: (error as Error)?.message }, "webhook request failed");
          answer(req, res, internalError(), started);
        });
    };
    // Other spellings express matches (`/Webhook`, `/webhook/`) still reach the same handler through the router.
    app.post("/webhook", receiveWebhook);
    serveWebhookFirst(app, logger, receiveWebhook);
  }

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });

  app.get("/readyz", async (_req, res) => {
    const ok = await options.ready().catch(() => false);
    res.status(ok ? 200 : 503).json({ status: ok ? "ready" : "unavailable", redis: ok ? "ok" : "unreachable" });
  });

  app.get("/metrics", async (_req, res) => {
    try {
      await options.beforeScrape?.();
    } catch (error) {
      // Serve the other metrics anyway; the gauge keeps its last sample.
      logger.warn({ err: (error as Error).message }, "queue depth not sampled");
    }
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use((_req, res) => {
    res.status(404).json({ status: "not_found" });
  });

  const onError: ErrorRequestHandler = (error, req, res, _next) => {
    logger.error({ err: (error as Error)?.message, path: req.path }, "request failed");
    if (res.headersSent) return;
    const { status, body } = internalError();
    res.status(status).json(body);
  };
  app.use(onError);
  return app;
}

/**
 * Answers `POST /webhook` (with or without a query string) before express sees the request. Express's per-request
 * work (`app.handle` in express/lib/application.js: `Object.setPrototypeOf` on request and response, then the
 * router's layer matching) cost about 150 µs of CPU per request on the benchmark machine, twice what Node's HTTP
 * server itself costs (bare express 226-244 µs/request, bare `http.createServer` 80-92 µs/request, same load), and
 * the webhook route uses nothing express adds. An express app calls `app.handle(req, res, next)` on every request
 * (express/lib/express.js `createApplication`), so wrapping that one method keeps `app.listen` and every other route.
 */
function serveWebhookFirst(
  app: express.Express,
  logger: Logger,
  receiveWebhook: (req: IncomingMessage, res: ServerResponse) => void,
): void {
  const shell = app as unknown as { handle(req: IncomingMessage, res: ServerResponse, next?: unknown): void };
  const expressHandle = shell.handle.bind(app);
  shell.handle = (req, res, next) => {
    const url = req.url ?? "";
    if (req.method === "POST" && url.startsWith("/webhook") && (url.length === 8 || url[8] === "?")) {
      try {
        receiveWebhook(req, res);
      } catch (error) {
        // What the error handler below does for express's routes: a bug must not take the process down.
        logger.error({ err: (error as Error)?.message, path: "/webhook" }, "request failed");
        if (res.headersSent) res.destroy();
        else sendJson(res, 500, internalError().body);
      }
      return;
    }
    expressHandle(req, res, next);
  };
}

function internalError(): WebhookAnswer {
  return { status: 500, outcome: "error", body: { status: "error", reason: "internal error" } };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Why a body could not be read; becomes the answer. */
class BodyError extends Error {
  constructor(
    readonly status: number,
    readonly outcome: "too_large" | "bad_request",
    message: string,
  ) {
    super(message);
  }
}

/**
 * The raw body, refused past `limit` bytes: at once when `Content-Length` says so (GitLab always sends it),
 * otherwise as soon as the count passes the limit. GitLab does not compress webhook bodies, so any
 * `Content-Encoding` but identity is refused rather than inflated.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoding = req.headers["content-encoding"];
    if (encoding !== undefined && encoding.toLowerCase() !== "identity") {
      reject(new BodyError(415, "bad_request", `Content-Encoding ${encoding} is not supported`));
      return;
    }
    const tooLarge = () => new BodyError(413, "too_large", `body exceeds webhook.body_limit (${limit} bytes)`);
    if (Number(req.headers["content-length"]) > limit) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("close", onAbort);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    // `close` before `end`: the sender went away mid-upload.
    const onAbort = () => {
      cleanup();
      reject(new BodyError(400, "bad_request", "request body incomplete"));
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onAbort);
    req.once("close", onAbort);
  });
}
