/**
 * A refusal the simulated GitLab gives, with the HTTP status and JSON `message` GitLab would answer. World actions
 * throw it; the REST layer renders it as `{"message": ...}`; direct callers (tests, demo) see it as an Error.
 */
export type SimErrorKind =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "unprocessable";

const STATUS: Record<SimErrorKind, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  unprocessable: 422,
};

export class SimError extends Error {
  readonly status: number;

  /**
   * @param body The JSON `message` value. GitLab sends a string for most errors and an object of field → messages
   *   for validation errors (`render_validation_error!`).
   */
  constructor(
    readonly kind: SimErrorKind,
    readonly body: string | string[] | Record<string, string[]>,
  ) {
    super(typeof body === "string" ? body : JSON.stringify(body));
    this.name = "SimError";
    this.status = STATUS[kind];
  }
}

/** GitLab's `forbidden!` body. */
export const FORBIDDEN = "403 Forbidden";
