// The 405 table read from the routes registered on a Hono app: a path has the methods of its routes
// (in Allow order), middleware gives it none, HEAD counts as GET, and a new route needs no other edit.
import { Hono, type Context } from "hono";
import { describe, expect, it } from "vitest";
import { createMethodTable, type MethodTable } from "../../src/api/method-table.js";

/** An app whose notFound answers `405 <Allow>` or `404`, as src/api/app.ts does with the table. */
function appWith(register: (app: Hono) => void): { app: Hono; table: MethodTable } {
  const app = new Hono({ strict: false });
  const table = createMethodTable(app);
  const skipped: string[] = [];
  app.use("/guarded/*", async (c, next) => {
    // The question the API's authentication asks before it wants a token.
    if (table.refused(c) !== undefined) skipped.push(c.req.path);
    await next();
  });
  register(app);
  app.notFound((c: Context) => {
    const allowed = table.refused(c);
    return allowed === undefined
      ? c.text("404", 404)
      : c.text("405", 405, { allow: allowed.join(", "), "x-skipped": String(skipped.length) });
  });
  return { app, table };
}

describe("method table", () => {
  it("lists a path's methods in Allow order, whatever the order they were registered in", async () => {
    const { app, table } = appWith((a) => {
      a.delete("/things/:id", (c) => c.text("gone"));
      a.post("/things", (c) => c.text("made"));
      a.get("/things", (c) => c.text("list"));
      a.get("/things/:id", (c) => c.text("one"));
    });
    const put = await app.request("/things", { method: "PUT" });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("GET, POST");
    expect((await app.request("/things/7", { method: "PATCH" })).headers.get("allow")).toBe("GET, DELETE");
    expect(table.allowed("/things/7")).toEqual(["GET", "DELETE"]);
    expect(table.allowed("/things/7/parts")).toBeUndefined();
  });

  it("answers a route the new route's own methods, with no second edit", async () => {
    const { app } = appWith((a) => {
      const sub = new Hono();
      sub.post("/reports/:id/rerun", (c) => c.text("ok"));
      a.route("/v2", sub);
    });
    const get = await app.request("/v2/reports/r1/rerun");
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect((await app.request("/v2/reports/r1/rerun", { method: "POST" })).status).toBe(200);
  });

  it("gives middleware no method: a path with only middleware is a 404", async () => {
    const { app, table } = appWith((a) => {
      a.use("/open/*", async (_c, next) => next());
      a.all("/anything", (c) => c.text("any"));
    });
    expect((await app.request("/open/door", { method: "POST" })).status).toBe(404);
    expect(table.allowed("/open/door")).toBeUndefined();
    expect(table.allowed("/anything")).toBeUndefined();
  });

  it("counts HEAD as GET, and lists HEAD only where a route names it", async () => {
    const { app, table } = appWith((a) => {
      a.get("/plain", (c) => c.text("plain"));
      a.on(["GET", "HEAD"], "/probe", (c) => c.text("probe"));
      a.post("/submit", (c) => c.text("ok"));
    });
    expect((await app.request("/plain", { method: "HEAD" })).status).toBe(200);
    expect((await app.request("/plain", { method: "POST" })).headers.get("allow")).toBe("GET");
    expect((await app.request("/probe", { method: "POST" })).headers.get("allow")).toBe("GET, HEAD");
    const head = await app.request("/submit", { method: "HEAD" });
    expect(head.status).toBe(405);
    expect(head.headers.get("allow")).toBe("POST");
    expect(table.allowed("/probe")).toEqual(["GET", "HEAD"]);
  });

  it("matches paths as the app's router does (trailing slash, parameters, nothing beyond them)", async () => {
    const { app } = appWith((a) => {
      a.get("/jobs/:id", (c) => c.text("job"));
      a.post("/image/:family/:model/:task", (c) => c.text("image"));
    });
    expect((await app.request("/jobs/j1/", { method: "PUT" })).headers.get("allow")).toBe("GET");
    expect((await app.request("/image/a/b/c/")).headers.get("allow")).toBe("POST");
    expect((await app.request("/image/a/b")).status).toBe(404);
    expect((await app.request("/image/a/b/c/d")).status).toBe(404);
    expect((await app.request("/jobs/")).status).toBe(404);
  });

  it("is asked before the route's middleware would run, and only when no route took the request", async () => {
    const { app } = appWith((a) => {
      a.get("/guarded/item", (c) => c.text("item"));
    });
    const ok = await app.request("/guarded/item");
    expect(ok.status).toBe(200);
    const refused = await app.request("/guarded/item", { method: "DELETE" });
    expect(refused.status).toBe(405);
    // The middleware saw the refusal coming (as authentication skips asking for a token).
    expect(refused.headers.get("x-skipped")).toBe("1");
  });
});
