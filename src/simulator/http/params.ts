/**
 * Reading params the way Grape coerces them, and the lookups every route needs (project by id or path, with
 * GitLab's "a project you cannot see is a 404").
 */
import { canReadProject } from "../permissions.js";
import { SimError } from "../sim-error.js";
import type { ProjectRecord } from "../state.js";
import type { Params, RequestContext } from "./route-table.js";

/** Grape's parameter validation failure: 400 with `{"error": "<name> is missing"}` (note: `error`, not `message`). */
export class ParamError extends Error {
  constructor(readonly error: string) {
    super(error);
    this.name = "ParamError";
  }
}

export function optString(params: Params, name: string): string | undefined {
  const v = params[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new ParamError(`${name} is invalid`);
}

/** A `DateTime` param (Grape coerces ISO 8601): epoch ms, `undefined` when absent; 400 `<name> is invalid` if not a time. */
export function optTime(params: Params, name: string): number | undefined {
  const v = optString(params, name);
  if (v === undefined || v === "") return undefined;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new ParamError(`${name} is invalid`);
  return ms;
}

export function reqString(params: Params, name: string): string {
  const v = optString(params, name);
  if (v === undefined) throw new ParamError(`${name} is missing`);
  if (v === "") throw new ParamError(`${name} is empty`);
  return v;
}

export function optInt(params: Params, name: string): number | undefined {
  const v = optString(params, name);
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ParamError(`${name} is invalid`);
  return n;
}

export function reqInt(params: Params, name: string): number {
  const n = optInt(params, name);
  if (n === undefined) throw new ParamError(`${name} is missing`);
  return n;
}

export function optBool(params: Params, name: string): boolean | undefined {
  const v = params[name];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "1" || v === 1) return true;
  if (v === "false" || v === "0" || v === 0) return false;
  throw new ParamError(`${name} is invalid`);
}

/** Comma-separated string or array (`labels=a,b` or `labels[]=a&labels[]=b`). */
export function optList(params: Params, name: string): string[] | undefined {
  const v = params[name];
  if (v === undefined || v === null) return undefined;
  const parts = Array.isArray(v) ? v.map(String) : String(v).split(",");
  return parts.map((s) => s.trim()).filter((s) => s !== "");
}

export function oneOf<T extends string>(params: Params, name: string, values: readonly T[]): T | undefined {
  const v = optString(params, name);
  if (v === undefined) return undefined;
  if (!(values as readonly string[]).includes(v)) throw new ParamError(`${name} does not have a valid value`);
  return v as T;
}

/** `find_project!`: numeric id or full path; invisible and missing projects are both `404 Project Not Found`. */
export function findProject(ctx: RequestContext): ProjectRecord {
  const raw = String(ctx.params["id"] ?? "");
  const project = /^\d+$/.test(raw) ? ctx.state.projects.get(Number(raw)) : ctx.state.projectByPath(raw);
  if (!project || !canReadProject(ctx.state, ctx.user.id, project)) {
    throw new SimError("not_found", "404 Project Not Found");
  }
  return project;
}

/** Drops undefined values, for optional inputs under `exactOptionalPropertyTypes`-style strictness. */
export function compact<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
