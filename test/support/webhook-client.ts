/** Posts webhooks the way GitLab does (headers per FACTS.md, "Webhook delivery") over real HTTP. */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { TEST_SECRET } from "./service-config.js";

const PAYLOADS = new URL("../fixtures/gitlab/payloads/", import.meta.url);

/** A payload as tests edit it: top-level sections by name. */
export type Payload = Record<string, Record<string, unknown>>;

/** One of GitLab's documented example payloads, parsed (a fresh copy each call). */
export function examplePayload(name: "merge_request" | "note_merge_request" | "pipeline" | "push"): Payload {
  return JSON.parse(readFileSync(new URL(`${name}.json`, PAYLOADS), "utf8")) as Payload;
}

/** The documented note payload with `note` as its text. */
export function commandNote(note: string, noteId = 1244): Payload {
  const payload = examplePayload("note_merge_request");
  Object.assign(payload["object_attributes"]!, { note, id: noteId });
  return payload;
}

export interface PostOptions {
  event?: string;
  /** `null` sends no token. */
  token?: string | null;
  idempotencyKey?: string | null;
  headers?: Record<string, string>;
}

/** The receiver's answer: status code and the short JSON body (`status`, `jobs` or `reason`). */
export interface PostResult {
  status: number;
  body: { status?: string; jobs?: number; reason?: string } | string;
}

export async function postWebhook(baseUrl: string, body: unknown, options: PostOptions = {}): Promise<PostResult> {
  const headers: Record<string, string> = { "content-type": "application/json", "user-agent": "GitLab/18.0.0" };
  if (options.event !== undefined) headers["x-gitlab-event"] = options.event;
  const token = options.token === undefined ? TEST_SECRET : options.token;
  if (token !== null) headers["x-gitlab-token"] = token;
  const key = options.idempotencyKey === undefined ? randomUUID() : options.idempotencyKey;
  if (key !== null) headers["idempotency-key"] = key;
  Object.assign(headers, options.headers);
  const raw = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const response = await fetch(`${baseUrl}/webhook`, { method: "POST", headers, body: raw });
  const text = await response.text();
  let parsed: PostResult["body"] = text;
  try {
    parsed = JSON.parse(text) as PostResult["body"];
  } catch {
    // Not JSON: keep the text for the assertion message.
  }
  return { status: response.status, body: parsed };
}
