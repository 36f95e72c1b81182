// GET / and GET /playground/{file}: the files as given, their media types, a strict CSP that also
// admits the output URLs' origin, revalidation with ETag (304), HEAD, 404 for anything else, and a
// refusal at build time of a file set that could not be served. Route tests with app.request().
import { Hono } from "hono";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { ApiEnv } from "../../src/api/context.js";
import { ifNoneMatchHits } from "../../src/api/conditional.js";
import { createErrorHandler } from "../../src/api/problem.js";
import { playgroundCsp, playgroundRoutes } from "../../src/api/routes/playground.js";
import { readPlaygroundFiles } from "../../src/main/playground-files.js";

const text = (s: string) => new TextEncoder().encode(s);
const FILES = new Map([
  ["index.html", text("<!doctype html><title>p</title>")],
  ["style.css", text("body{}")],
  ["app.js", text("export {};")],
]);

function setup(publicOrigin: string | undefined = "https://gw.example.com/") {
  const app = new Hono<ApiEnv>();
  app.onError(createErrorHandler(pino({ level: "silent" })));
  app.use(async (c, next) => {
    c.set("requestId", "req_test0000");
    await next();
  });
  app.route("/", playgroundRoutes({ files: FILES, publicOrigin: () => publicOrigin }));
  return app;
}

describe("playground routes", () => {
  it("answers / with the page, its media type, no-cache, an ETag and the security headers", async () => {
    const res = await setup().request("/");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("<!doctype html><title>p</title>");
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("etag")).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("content-security-policy")).toBe(playgroundCsp("https://gw.example.com"));
  });

  it("allows scripts, styles and API calls from its own origin only", () => {
    const csp = playgroundCsp("https://gw.example.com");
    expect(csp.split("; ")).toEqual([
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data: blob: https://gw.example.com",
      "media-src 'self' data: blob: https://gw.example.com",
      "connect-src 'self'",
      "form-action 'self'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
    ]);
    expect(playgroundCsp(undefined)).toContain("img-src 'self' data: blob:;");
  });

  it("leaves a public URL that is not http(s) out of the policy", async () => {
    const res = await setup("javascript:alert(1)").request("/");
    expect(res.headers.get("content-security-policy")).toBe(playgroundCsp(undefined));
  });

  it.each([
    ["/playground/style.css", "text/css; charset=utf-8", "body{}"],
    ["/playground/app.js", "text/javascript; charset=utf-8", "export {};"],
  ])("serves %s as %s", async (path, type, body) => {
    const res = await setup().request(path);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(type);
    expect(await res.text()).toBe(body);
  });

  it("answers 304 to a matching If-None-Match, weak or strong, and 200 to another tag", async () => {
    const app = setup();
    const etag = (await app.request("/playground/app.js")).headers.get("etag")!;
    for (const tag of [etag, `W/${etag}`, `"x", ${etag}`, "*"]) {
      const res = await app.request("/playground/app.js", { headers: { "if-none-match": tag } });
      expect(res.status).toBe(304);
      expect(await res.text()).toBe("");
      expect(res.headers.get("etag")).toBe(etag);
    }
    const other = await app.request("/playground/app.js", { headers: { "if-none-match": '"other"' } });
    expect(other.status).toBe(200);
  });

  it("answers HEAD with the headers and no body", async () => {
    const res = await setup().request("/", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await res.text()).toBe("");
  });

  it.each(["/playground/missing.js", "/playground/index.html", "/playground/..%2Fapp.js", "/playground/"])(
    "answers %s with 404 not_found",
    async (path) => {
      const res = await setup().request(path);
      expect(res.status).toBe(404);
      if (res.headers.get("content-type") === "application/problem+json") {
        expect(((await res.json()) as { error: string }).error).toBe("not_found");
      }
    },
  );

  it("refuses at build a file set without index.html, or with a file it would not serve", () => {
    const build = (files: Map<string, Uint8Array>) => () =>
      playgroundRoutes({ files, publicOrigin: () => undefined });
    expect(build(new Map([["app.js", text("")]]))).toThrow(/index\.html is missing/);
    expect(build(new Map([...FILES, ["notes.txt", text("")]]))).toThrow(/notes\.txt/);
    expect(build(new Map([...FILES, [".env", text("")]]))).toThrow(/\.env/);
  });

  it("reads the packaged page, stylesheet and module, and they build", () => {
    const files = readPlaygroundFiles();
    expect([...files.keys()].sort()).toEqual([
      "api.js",
      "app.js",
      "index.html",
      "recent.js",
      "store.js",
      "style.css",
    ]);
    expect(() => playgroundRoutes({ files, publicOrigin: () => undefined })).not.toThrow();
  });
});

describe("ifNoneMatchHits", () => {
  it.each([
    [undefined, false],
    ['"a"', true],
    ['W/"a"', true],
    [' "b" , "a" ', true],
    ["*", true],
    ['"b"', false],
    ['"a', false],
  ])('%s against "a" → %s', (header, hit) => {
    expect(ifNoneMatchHits(header, '"a"')).toBe(hit);
  });
});
