/** `GET /user`, `GET /users`, `GET /users/:id` (lib/api/users.rb), `GET /metadata` and `GET /version` (lib/api/metadata.rb). */
import { userBasic, userEntity } from "../entities.js";
import { paginate } from "../http/pagination.js";
import { optString, reqInt } from "../http/params.js";
import { ok, type RouteTable } from "../http/route-table.js";
import { metadataEntity } from "../instance.js";
import { SimError } from "../sim-error.js";

export function userRoutes(t: RouteTable): void {
  t.get("/user", (ctx) => ok(userEntity(ctx.state, ctx.user, { self: true })));

  // `UsersFinder#by_username`: `User.by_username` is an exact, case-insensitive match, and the answer is a list
  // (empty when nobody has the name). Ordered by id, descending (the API's default `order_by: id, sort: desc`).
  // Non-admins get `Entities::UserBasic`.
  t.get("/users", (ctx) => {
    const username = optString(ctx.params, "username")?.toLowerCase();
    const list = [...ctx.state.users.values()]
      .filter((user) => username === undefined || user.username.toLowerCase() === username)
      .sort((a, b) => b.id - a.id);
    return paginate(ctx, list, (user) => userBasic(ctx.state, user));
  });

  t.get("/users/:user_id", (ctx) => {
    const user = ctx.state.users.get(reqInt(ctx.params, "user_id"));
    if (!user) throw new SimError("not_found", "404 User Not Found");
    return ok(userEntity(ctx.state, user, { self: user.id === ctx.user.id }));
  });

  // lib/api/metadata.rb: `/metadata` (15.2+) and the deprecated `/version` run the same query.
  t.get("/metadata", (ctx) => ok(metadataEntity(ctx.state.instance)));
  t.get("/version", (ctx) => ok(metadataEntity(ctx.state.instance)));
}
