/**
 * What the action modules share: the state and the place webhook events go.
 */
import type { SimState } from "./state.js";

export type HookKind = "push" | "merge_request" | "note" | "confidential_note" | "pipeline";

/** Receives webhook events as they happen; `webhooks.ts` turns them into deliveries for the project's hooks. */
export interface HookSink {
  emit(projectId: number, kind: HookKind, payload: Record<string, unknown>): void;
}

export interface World {
  readonly state: SimState;
  readonly hooks: HookSink;
}

export function nowIso(): string {
  return new Date().toISOString();
}
