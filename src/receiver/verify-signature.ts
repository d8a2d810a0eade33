/**
 * Signature checks over the raw body, on top of the `X-Gitlab-Token` check.
 *
 * - GitLab's own signing (newer GitLab, `webhook_signing_token`) follows Standard Webhooks
 *   (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md): HMAC-SHA256 over
 *   `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64 part of a `whsec_` secret, sent as a
 *   space-separated list of `v1,<base64>` so a sender can sign with an old and a new key during rotation.
 * - A relay in front of the bot (a smee/webhook proxy, an API gateway) may add GitHub's
 *   `X-Hub-Signature-256: sha256=<hex>`. GitLab never sends that header; it is what `@octokit/webhooks-methods`
 *   verifies, so it is used for exactly that and nothing else.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { verify as verifyHubSignature } from "@octokit/webhooks-methods";
import { ConfigError } from "../errors.js";

/** Outcome of a signature check; `reason` is safe to return to the sender and to log. */
export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/** The Standard-Webhooks headers, as received (lower-case names). */
export interface StandardWebhookHeaders {
  "webhook-id"?: string;
  "webhook-timestamp"?: string;
  "webhook-signature"?: string;
}

export interface StandardWebhookVerifierOptions {
  /** `whsec_<base64>`, as configured in GitLab. */
  signingToken: string;
  /** Reject timestamps further than this from now, either way (replay protection). */
  toleranceSeconds: number;
  /** Injectable clock for tests, in milliseconds. */
  now?: () => number;
}

/**
 * A valid Standard-Webhooks signature also vouches for the delivery's identity: `webhook-id` is inside the signed
 * content, so it is handed back as the one id a replaying sender cannot change (unlike `Idempotency-Key`).
 */
export type StandardWebhookCheck = { ok: true; webhookId: string } | { ok: false; reason: string };

export type StandardWebhookVerifier = (headers: StandardWebhookHeaders, rawBody: Buffer) => StandardWebhookCheck;

export function createStandardWebhookVerifier(options: StandardWebhookVerifierOptions): StandardWebhookVerifier {
  const key = Buffer.from(options.signingToken.slice("whsec_".length), "base64");
  if (key.length === 0) {
    throw new ConfigError("webhook.signing_token: the part after whsec_ must be a non-empty base64 key");
  }
  const now = options.now ?? Date.now;
  const toleranceMs = options.toleranceSeconds * 1000;
  return (headers, rawBody) => {
    const id = headers["webhook-id"];
    const timestamp = headers["webhook-timestamp"];
    const signatures = headers["webhook-signature"];
    if (!id || !timestamp || !signatures) {
      return { ok: false, reason: "webhook-id, webhook-timestamp and webhook-signature headers are required" };
    }
    if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "webhook-timestamp is not unix seconds" };
    if (Math.abs(now() - Number(timestamp) * 1000) > toleranceMs) {
      return { ok: false, reason: "webhook-timestamp is outside the tolerance window" };
    }
    const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`, "utf8").update(rawBody).digest();
    for (const entry of signatures.split(" ")) {
      const comma = entry.indexOf(",");
      // Other versions (e.g. `v1a` asymmetric signatures) are skipped, as the spec asks.
      if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
      const presented = Buffer.from(entry.slice(comma + 1), "base64");
      if (presented.length === expected.length && timingSafeEqual(presented, expected)) {
        return { ok: true, webhookId: id };
      }
    }
    return { ok: false, reason: "no webhook-signature matches" };
  };
}

/** Signs like GitLab does; for tests, the simulator and the benchmark. */
export function signStandardWebhook(signingToken: string, id: string, timestamp: number, rawBody: Buffer): string {
  const key = Buffer.from(signingToken.slice("whsec_".length), "base64");
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.`, "utf8").update(rawBody).digest("base64");
  return `v1,${mac}`;
}

export type RelaySignatureVerifier = (header: string | undefined, rawBody: Buffer) => Promise<SignatureCheck>;

/** `X-Hub-Signature-256: sha256=<hex>` added by a relay, verified with `@octokit/webhooks-methods`. */
export function createRelaySignatureVerifier(secret: string): RelaySignatureVerifier {
  return async (header, rawBody) => {
    if (!header) return { ok: false, reason: "X-Hub-Signature-256 header is required" };
    // `verify` throws on an empty payload instead of answering false; an empty body cannot carry a valid event.
    if (rawBody.length === 0) return { ok: false, reason: "X-Hub-Signature-256 does not match the body" };
    const ok = await verifyHubSignature(secret, rawBody.toString("utf8"), header);
    return ok ? { ok: true } : { ok: false, reason: "X-Hub-Signature-256 does not match the body" };
  };
}
