/**
 * Offset pagination like `Gitlab::Pagination::OffsetPagination`: `page` (default 1), `per_page` (default 20, at most
 * 100), and the headers `x-page`, `x-per-page`, `x-next-page`, `x-prev-page` (empty when none), `x-total`,
 * `x-total-pages` and `link` (`rel="prev"`, `"next"`, `"first"`, `"last"`, each the request URL with the other
 * query params kept). `@gitbeaker/rest` follows `rel="next"` until it is absent or `maxPages` is reached.
 */
import { stringify } from "node:querystring";
import type { Params, Reply, RequestContext } from "./route-table.js";

const DEFAULT_PER_PAGE = 20;
const MAX_PER_PAGE = 100;

function positiveInt(v: unknown, fallback: number): number {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** Flattens a parsed (qs-style) query back into `key=value` pairs, arrays as `key[]=`. */
function flatten(query: Params): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(query)) {
    if (Array.isArray(v)) out[`${k}[]`] = v.map(String);
    else if (v !== undefined && v !== null && typeof v !== "object") out[k] = String(v);
  }
  return out;
}

export function paginate<T>(ctx: RequestContext, items: readonly T[], toJson: (item: T) => unknown): Reply {
  const perPage = Math.min(positiveInt(ctx.query["per_page"], DEFAULT_PER_PAGE), MAX_PER_PAGE);
  const page = positiveInt(ctx.query["page"], 1);
  const total = items.length;
  const totalPages = Math.max(1, Math.ceil(total / perPage));
  const slice = items.slice((page - 1) * perPage, page * perPage);

  const base = `${ctx.state.baseUrl}/api/v4${ctx.path}`;
  const link = (p: number) =>
    `<${base}?${stringify({ ...flatten(ctx.query), page: String(p), per_page: String(perPage) })}>`;
  const links: string[] = [];
  if (page > 1) links.push(`${link(page - 1)}; rel="prev"`);
  if (page < totalPages) links.push(`${link(page + 1)}; rel="next"`);
  links.push(`${link(1)}; rel="first"`, `${link(totalPages)}; rel="last"`);

  return {
    status: 200,
    body: slice.map(toJson),
    headers: {
      "x-page": String(page),
      "x-per-page": String(perPage),
      "x-next-page": page < totalPages ? String(page + 1) : "",
      "x-prev-page": page > 1 ? String(page - 1) : "",
      "x-total": String(total),
      "x-total-pages": String(totalPages),
      link: links.join(", "),
    },
  };
}

/** Sorts by a key, `sort=asc|desc`, as the finders do. */
export function sortBy<T>(items: T[], key: (item: T) => string | number, dir: "asc" | "desc"): T[] {
  const sign = dir === "asc" ? 1 : -1;
  return items.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -sign : ka > kb ? sign : 0;
  });
}
