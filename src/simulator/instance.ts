/**
 * The instance itself: `GET /metadata` and `GET /version` (`lib/api/metadata.rb`: both answer the GraphQL
 * `metadata` query, so both carry `version`, `revision`, `kas` and `enterprise`), and the version checks the
 * simulator's version-dependent behaviour uses.
 */
import type { SimInstance } from "./model.js";

/** True when `version` (`19.0.0`, `18.11.2-ee`, `19.1.0-pre`) is at least `major.minor`. */
export function versionAtLeast(version: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

/**
 * `API::Entities::Hook#signing_token_present` and the `signing_token` parameter arrived in 19.0
 * (`config/feature_flags/beta/webhook_signing_token.yml`, milestone 19.0); older instances know neither.
 */
export function knowsSigningTokens(instance: SimInstance): boolean {
  return versionAtLeast(instance.version, 19, 0);
}

/** The `metadata` query's answer (`Types::MetadataType`; KAS is off in the simulator). */
export function metadataEntity(instance: SimInstance): Record<string, unknown> {
  return {
    version: instance.version,
    revision: instance.revision,
    kas: { enabled: false, externalUrl: null, externalK8sProxyUrl: null, version: null },
    enterprise: instance.enterprise,
  };
}
