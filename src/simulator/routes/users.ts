/** `GET /user`, `GET /users/:id`, `GET /version` (lib/api/users.rb, lib/api/version.rb). */
import { userEntity } from "../entities.js";
import { reqInt } from "../http/params.js";
import { ok, type RouteTable } from "../http/route-table.js";
import { SimError } from "../sim-error.js";

export function userRoutes(t: RouteTable, o: { version: string }): void {
  t.get("/user", (ctx) => ok(userEntity(ctx.state, ctx.user, { self: true })));

  t.get("/users/:user_id", (ctx) => {
    const user = ctx.state.users.get(reqInt(ctx.params, "user_id"));
    if (!user) throw new SimError("not_found", "404 User Not Found");
    return ok(userEntity(ctx.state, user, { self: user.id === ctx.user.id }));
  });

  t.get("/version", () =>
    ok({ version: o.version, revision: "simulator", kas: { enabled: false }, enterprise: false }),
  );
}
