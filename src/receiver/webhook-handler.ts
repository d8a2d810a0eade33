/**
 * The webhook edge without a web framework: verify, parse, route, dedupe, enqueue (STYLE.md 1, 2).
 *
 * Answers are what GitLab needs to keep the hook enabled: GitLab disables a project hook after a few consecutive
 * failures and counts 4xx like 5xx (FACTS.md, "Auto-disable"), so 401 is only for a bad secret, 400 only for a
 * body that is not JSON, 503 only when the event could not be stored, and everything we merely do not act on is a
 * 200 with the reason. Nothing here calls GitLab: the answer comes in milliseconds, the work happens in the worker.
 */
import { createHash } from "node:crypto";
import type { Config } from "../config/config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { DeliveryStore } from "../queue/inbox.js";
import { routeEvent, USED_EVENTS } from "./route-event.js";
import { createTokenVerifier, type TokenVerifier } from "./verify-token.js";
import {
  createRelaySignatureVerifier,
  createStandardWebhookVerifier,
  type RelaySignatureVerifier,
  type StandardWebhookVerifier,
} from "./verify-signature.js";

/** Request headers as Node gives them: lower-case names. */
export type WebhookHeaders = Record<string, string | string[] | undefined>;

/** The JSON body of every answer. */
export type WebhookAnswerBody =
  | { status: "queued"; jobs: number }
  | { status: "duplicate" }
  | { status: "ignored"; reason: string }
  | { status: "unauthorized" | "bad_request" | "unavailable" | "too_large" | "error"; reason: string };

/** Outcome label for metrics (`tmr_webhooks_total{outcome}`), one per kind of answer. */
export type WebhookOutcome =
  | "queued"
  | "duplicate"
  | "ignored"
  | "unauthorized"
  | "bad_request"
  | "unavailable"
  | "too_large"
  | "error";

export interface WebhookAnswer {
  status: number;
  body: WebhookAnswerBody;
  outcome: WebhookOutcome;
}

/**
 * What the headers alone decide: an answer to send now (a bad token), or the rest of the pipeline, which needs
 * the raw body. Splitting here lets a shell refuse an unauthenticated request before it reads a 25 MB body, while
 * there is no way to reach `receive` without passing the token check.
 */
export type WebhookStart = { answer: WebhookAnswer } | { receive(rawBody: Buffer): Promise<WebhookAnswer> };

export interface WebhookHandler {
  /** Verify the token. Never throws. */
  begin(headers: WebhookHeaders): WebhookStart;
  /** `begin` and `receive` in one call. Never throws: Redis failures become a 503. */
  handle(headers: WebhookHeaders, rawBody: Buffer): Promise<WebhookAnswer>;
}

export interface WebhookHandlerOptions {
  /** `scope` is optional: without it every project is served. */
  config: Pick<Config, "webhook" | "trust"> & Partial<Pick<Config, "scope">>;
  logger: Logger;
  store: DeliveryStore;
  /** Clock for the signature timestamp check. */
  now?: () => number;
}

/** Label for the `event` metric: known events by name, anything else lumped (the header is sender-controlled). */
export function eventLabel(headers: WebhookHeaders): string {
  const event = header(headers, "x-gitlab-event");
  if (event === undefined) return "none";
  return (USED_EVENTS as readonly string[]).includes(event) ? event : "other";
}

export function createWebhookHandler(options: WebhookHandlerOptions): WebhookHandler {
  const { config, logger, store } = options;
  const { webhook } = config;
  if (!webhook.secret && !webhook.insecure) {
    throw new ConfigError(
      "webhook.secret (or env GITLAB_WEBHOOK_SECRET) is required to verify X-Gitlab-Token; set webhook.insecure: true only for local experiments",
    );
  }
  const verifyToken: TokenVerifier | undefined = webhook.secret ? createTokenVerifier(webhook.secret) : undefined;
  const verifyStandard: StandardWebhookVerifier | undefined = webhook.signing_token
    ? createStandardWebhookVerifier({
        signingToken: webhook.signing_token,
        toleranceSeconds: webhook.signature_tolerance_seconds,
        now: options.now,
      })
    : undefined;
  const verifyRelay: RelaySignatureVerifier | undefined = webhook.relay_signature_secret
    ? createRelaySignatureVerifier(webhook.relay_signature_secret)
    : undefined;
  const routeConfig = { ...config, stateLabels: config.trust.state_labels };

  const begin = (headers: WebhookHeaders): WebhookStart => {
    if (verifyToken && !verifyToken(header(headers, "x-gitlab-token"))) {
      // Probot's wording: say what to fix, not just "no".
      return {
        answer: unauthorized(
          "X-Gitlab-Token is missing or wrong; check that the hook's secret token matches webhook.secret",
        ),
      };
    }
    return { receive: (rawBody) => receive(headers, rawBody) };
  };

  const receive = async (headers: WebhookHeaders, rawBody: Buffer): Promise<WebhookAnswer> => {
    let signedId: string | undefined;
    if (verifyStandard) {
      const check = verifyStandard(
        {
          "webhook-id": header(headers, "webhook-id"),
          "webhook-timestamp": header(headers, "webhook-timestamp"),
          "webhook-signature": header(headers, "webhook-signature"),
        },
        rawBody,
      );
      if (!check.ok) return unauthorized(`${check.reason}; check webhook.signing_token`);
      signedId = check.webhookId;
    }
    if (verifyRelay) {
      const check = await verifyRelay(header(headers, "x-hub-signature-256"), rawBody);
      if (!check.ok) return unauthorized(`${check.reason}; check webhook.relay_signature_secret`);
    }

    let payload: unknown;
    try {
      payload = JSON.parse(rawBody.toString("utf8"));
    } catch {
      return { status: 400, outcome: "bad_request", body: { status: "bad_request", reason: "body is not JSON" } };
    }

    const event = header(headers, "x-gitlab-event");
    const deliveryId = deliveryIdOf(headers, event, rawBody, signedId);
    const routed = routeEvent(event, payload, routeConfig);
    if ("ignored" in routed) {
      logger.debug({ eventId: deliveryId, event, reason: routed.ignored }, "webhook ignored");
      return { status: 200, outcome: "ignored", body: { status: "ignored", reason: routed.ignored } };
    }
    const jobs = routed.jobs.map((job) => ({ ...job, eventId: deliveryId }));
    const first = jobs[0];
    const fields = {
      eventId: deliveryId,
      event,
      projectId: first?.projectId,
      mrIid: first && "mrIid" in first ? first.mrIid : undefined,
    };
    let stored: "queued" | "duplicate";
    try {
      stored = await store.accept(deliveryId, jobs);
    } catch (error) {
      logger.error({ ...fields, err: (error as Error).message }, "webhook not stored; answered 503");
      return {
        status: 503,
        outcome: "unavailable",
        body: { status: "unavailable", reason: "the event could not be stored; retry later" },
      };
    }
    if (stored === "duplicate") {
      logger.info(fields, "webhook re-delivered; already queued");
      return { status: 200, outcome: "duplicate", body: { status: "duplicate" } };
    }
    logger.info({ ...fields, jobs: jobs.map((j) => j.kind) }, "webhook queued");
    return { status: 202, outcome: "queued", body: { status: "queued", jobs: jobs.length } };
  };

  return {
    begin,
    handle: async (headers, rawBody) => {
      const start = begin(headers);
      return "answer" in start ? start.answer : start.receive(rawBody);
    },
  };
}

function unauthorized(reason: string): WebhookAnswer {
  return { status: 401, outcome: "unauthorized", body: { status: "unauthorized", reason } };
}

/**
 * The delivery's identity, stable across re-deliveries of one event (FACTS.md, "Webhook delivery").
 *
 * With signing on, it is the signed `webhook-id` (GitLab sets it to the Idempotency-Key) and nothing else:
 * `Idempotency-Key` is not covered by the signature, so anyone who can replay a signed request could change it to
 * get the delivery processed twice, or copy another delivery's key to get that one dropped as a duplicate.
 * Without signing, no header is authenticated beyond the shared token, and it is `Idempotency-Key`, else
 * `webhook-id`, else a digest of event and body. A key too long for a sensible Redis key is hashed.
 */
function deliveryIdOf(
  headers: WebhookHeaders,
  event: string | undefined,
  rawBody: Buffer,
  signedId: string | undefined,
): string {
  const key = signedId ?? header(headers, "idempotency-key") ?? header(headers, "webhook-id");
  if (key !== undefined && key.length > 0) {
    return key.length <= 128 ? key : `sha256:${createHash("sha256").update(key).digest("hex")}`;
  }
  return `sha256:${createHash("sha256")
    .update(event ?? "")
    .update("\n")
    .update(rawBody)
    .digest("hex")}`;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
