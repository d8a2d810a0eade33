/**
 * `X-Gitlab-Token` check. GitLab sends the project hook's secret token in plain text on every delivery
 * (https://docs.gitlab.com/user/project/integrations/webhooks/#create-a-webhook, "Secret token").
 */
import { hash, timingSafeEqual } from "node:crypto";

/** Checks a presented token against the configured secret in constant time. */
export type TokenVerifier = (presented: string | undefined) => boolean;

/**
 * Compares SHA-256 digests rather than the strings: `timingSafeEqual` needs equal lengths, and comparing digests
 * keeps the secret's length from leaking through an early length mismatch.
 */
export function createTokenVerifier(secret: string): TokenVerifier {
  const expected = sha256(secret);
  return (presented) => presented !== undefined && timingSafeEqual(sha256(presented), expected);
}

/** The one-shot `hash`: on every webhook request, and cheaper than a `createHash` object. */
function sha256(value: string): Buffer {
  return hash("sha256", value, "buffer");
}
