/**
 * Webhook delivery, modelled on `app/services/web_hook_service.rb`: one request per (event, hook), sent
 * asynchronously (GitLab queues `WebHookWorker` jobs in Sidekiq), with GitLab's headers, a 10 s timeout, no
 * automatic retry. Deliveries go out one at a time in event order so tests are deterministic.
 */
import { createHmac, randomUUID } from "node:crypto";
import type { Delivery, DeliveryLogEntry, SimHook, WebhookEvent, WebhookMode } from "./model.js";
import type { SimState } from "./state.js";
import type { HookKind, HookSink } from "./world.js";

/** GitLab aborts a webhook request after `webhook_timeout`, 10 s by default. */
const TIMEOUT_MS = 10_000;

const EVENT_HEADER: Record<HookKind, WebhookEvent> = {
  push: "Push Hook",
  merge_request: "Merge Request Hook",
  note: "Note Hook",
  // `WebHookService.hook_to_event("confidential_note_hooks")`: the hook scope's name, singularized and titleized.
  confidential_note: "Confidential Note Hook",
  pipeline: "Pipeline Hook",
};

function subscribed(hook: SimHook, kind: HookKind): boolean {
  switch (kind) {
    case "push":
      return hook.pushEvents;
    case "merge_request":
      return hook.mergeRequestsEvents;
    case "note":
      return hook.noteEvents;
    case "confidential_note":
      return hook.confidentialNoteEvents;
    case "pipeline":
      return hook.pipelineEvents;
  }
}

/**
 * Standard Webhooks signature: base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed with the base64-decoded part
 * of a `whsec_<base64>` secret.
 */
export function standardWebhookSignature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

export interface DispatcherOptions {
  /** Its `instance` gives the version for `User-Agent` and whether the instance signs (`webhookSigning`). */
  state: SimState;
  instance: string;
  /** Read on every event: a share of deliveries to lose (fault injection). */
  dropRate: () => number;
}

export class WebhookDispatcher implements HookSink {
  mode: WebhookMode = "deliver";
  readonly log: DeliveryLogEntry[] = [];
  private held: Delivery[] = [];
  private readonly queue: Delivery[] = [];
  private pumping = false;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  /** `X-Gitlab-Event-UUID` shared by every hook fired while one request (or one simulator action) runs. */
  private eventUuid: string | undefined;
  private readonly shutdown = new AbortController();

  constructor(private readonly opts: DispatcherOptions) {}

  /** Runs `fn` with one `X-Gitlab-Event-UUID` for all the events it causes (nested scopes share the outer one). */
  withEventScope<T>(fn: () => T): T {
    if (this.eventUuid !== undefined) return fn();
    this.eventUuid = randomUUID();
    try {
      return fn();
    } finally {
      this.eventUuid = undefined;
    }
  }

  emit(projectId: number, kind: HookKind, payload: Record<string, unknown>): void {
    const project = this.opts.state.projects.get(projectId);
    if (!project || this.shutdown.signal.aborted) return;
    const body = JSON.stringify(payload);
    const eventUuid = this.eventUuid ?? randomUUID();
    for (const hook of project.hooks) {
      if (!subscribed(hook, kind)) continue;
      const delivery = this.build(hook, EVENT_HEADER[kind], body, randomUUID(), eventUuid);
      if (this.mode === "drop") continue;
      if (this.mode === "hold") {
        this.held.push(delivery);
        continue;
      }
      if (Math.random() < this.opts.dropRate()) continue;
      this.queue.push(delivery);
    }
    if (this.queue.length > 0 && !this.pumping) {
      this.pumping = true;
      // Like Sidekiq: the request that caused the event is answered before the webhook goes out.
      setImmediate(() => void this.pump());
    }
  }

  heldDeliveries(): Delivery[] {
    return [...this.held];
  }

  takeHeldDeliveries(): Delivery[] {
    const out = this.held;
    this.held = [];
    return out;
  }

  /** GitLab's "Resend request": same `Idempotency-Key`, new `X-Gitlab-Webhook-UUID`, fresh timestamp/signature. */
  async redeliver(d: Delivery): Promise<{ status: number; body: string }> {
    const hook = this.findHook(d.hookId);
    const eventUuid = d.headers["X-Gitlab-Event-UUID"] ?? randomUUID();
    const fresh = hook ? this.build(hook, d.event, d.body, d.idempotencyKey, eventUuid) : d;
    this.inFlight += 1;
    try {
      const result = await this.send(fresh);
      if (result.status === "error") throw new Error(`webhook redelivery to ${d.url} failed: ${result.error}`);
      return { status: result.status, body: result.body };
    } finally {
      this.inFlight -= 1;
      this.notifyIdle();
    }
  }

  /** Drops queued deliveries and aborts the ones in flight (the simulator is stopping). */
  close(): void {
    this.queue.length = 0;
    this.shutdown.abort();
  }

  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && !this.pumping && this.inFlight === 0;
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private findHook(hookId: number): SimHook | undefined {
    for (const p of this.opts.state.projects.values()) {
      const hook = p.hooks.find((h) => h.id === hookId);
      if (hook) return hook;
    }
    return undefined;
  }

  private build(hook: SimHook, event: WebhookEvent, body: string, idempotencyKey: string, eventUuid: string): Delivery {
    const webhookUuid = randomUUID();
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      "User-Agent": `GitLab/${this.opts.state.instance.version}`,
      "X-Gitlab-Event": event,
      "X-Gitlab-Webhook-UUID": webhookUuid,
      "X-Gitlab-Instance": this.opts.instance,
      "X-Gitlab-Event-UUID": eventUuid,
      "Idempotency-Key": idempotencyKey,
    };
    if (hook.token) headers["X-Gitlab-Token"] = hook.token;
    // GitLab 19.0 `build_headers`: `webhook-id` and `webhook-timestamp` on every delivery, `webhook-signature` when
    // the `webhook_signing_token` flag is on and the hook has a signing token. Older instances send none of them.
    if (this.opts.state.instance.webhookSigning) {
      const timestamp = Math.floor(Date.now() / 1000);
      headers["webhook-id"] = idempotencyKey;
      headers["webhook-timestamp"] = String(timestamp);
      if (hook.signingToken) {
        headers["webhook-signature"] = standardWebhookSignature(hook.signingToken, idempotencyKey, timestamp, body);
      }
    }
    return { id: webhookUuid, hookId: hook.id, url: hook.url, event, headers, body, idempotencyKey };
  }

  private async pump(): Promise<void> {
    try {
      for (let d = this.queue.shift(); d !== undefined; d = this.queue.shift()) {
        // Rebuild the signature at send time: the timestamp must be fresh when the request leaves.
        const hook = this.findHook(d.hookId);
        if (!hook) continue; // deleted since the event: GitLab's worker finds no hook and sends nothing
        await this.send(this.build(hook, d.event, d.body, d.idempotencyKey, d.headers["X-Gitlab-Event-UUID"]!));
      }
    } finally {
      this.pumping = false;
      this.notifyIdle();
    }
  }

  private async send(
    d: Delivery,
  ): Promise<{ status: number; body: string } | { status: "error"; error: string; body?: undefined }> {
    try {
      const res = await fetch(d.url, {
        method: "POST",
        headers: d.headers,
        body: d.body,
        redirect: "manual",
        signal: AbortSignal.any([AbortSignal.timeout(TIMEOUT_MS), this.shutdown.signal]),
      });
      const body = await res.text();
      this.log.push({
        event: d.event,
        url: d.url,
        status: res.status,
        idempotencyKey: d.idempotencyKey,
        at: Date.now(),
      });
      return { status: res.status, body };
    } catch (e) {
      this.log.push({ event: d.event, url: d.url, status: "error", idempotencyKey: d.idempotencyKey, at: Date.now() });
      return { status: "error", error: e instanceof Error ? e.message : String(e) };
    }
  }
}
