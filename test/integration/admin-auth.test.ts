// Who may open the board (/admin/queues): the auth matrix over HTTP against the API's real
// authenticator — no credential, a customer's token, an admin JWT, an admin API key as a Bearer
// header, the login form's cookie (and its refusals), a token in the query string (ignored), logout,
// and a revoked API key whose cookie stops working.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKeyStore, type ApiKeyStore } from "../../src/queues/api-key-store.js";
import { startSystem, waitFor, type TestSystem } from "../helpers/system.js";

const PEPPER = "admin-board-pepper-0123456789-abcdefghij";

let sys: TestSystem;
let keys: ApiKeyStore;
let adminJwt: string;
let customerJwt: string;

beforeAll(async () => {
  sys = await startSystem({ worker: false, env: { API_KEY_PEPPER: PEPPER } });
  keys = createApiKeyStore({
    redis: sys.redis.client,
    prefix: sys.redis.prefix,
    clock: () => Date.now(),
    tiers: Object.keys(sys.settings.tiers),
    pepper: new TextEncoder().encode(PEPPER),
  });
  adminJwt = await sys.token("ops", { admin: true });
  customerJwt = await sys.token("alice");
});
afterAll(async () => {
  await sys?.close();
});

const API = "/admin/queues/api/queues";
const JSON_ACCEPT = { accept: "application/json" };
const HTML_ACCEPT = { accept: "text/html,application/xhtml+xml,*/*;q=0.8" };

function get(path: string, headers: Record<string, string> = JSON_ACCEPT): Promise<Response> {
  return fetch(sys.url + path, { headers, redirect: "manual" });
}

function postForm(path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(sys.url + path, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: sys.url, ...headers },
    body: new URLSearchParams(form).toString(),
    redirect: "manual",
  });
}

/** The login cookie's `name=value` and its attributes, from a Set-Cookie header. */
function loginCookie(res: Response): { pair: string; attrs: string[] } | undefined {
  const line = res.headers.getSetCookie().find((c) => c.startsWith("rg_admin="));
  if (line === undefined) return undefined;
  const [pair, ...attrs] = line.split(";").map((s) => s.trim());
  return { pair: pair!, attrs };
}

async function expectProblem(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  expect(((await res.json()) as { error: string }).error).toBe(code);
}

describe("board access", () => {
  it("/admin leads to the board; an unknown admin path is a 404 problem", async () => {
    const root = await get("/admin", HTML_ACCEPT);
    expect(root.status).toBe(303);
    expect(root.headers.get("location")).toBe("/admin/queues");
    await expectProblem(await get("/admin/nothing-here"), 404, "not_found");
  });

  it("without a credential: 401 problem for API clients, a redirect to the login form for browsers", async () => {
    await expectProblem(await get(API), 401, "unauthorized");
    for (const path of ["/admin/queues", "/admin/queues/", "/admin/queues/queue/scheduler"]) {
      const res = await get(path, HTML_ACCEPT);
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location")).toBe("/admin/login");
    }
  });

  it("a customer's token: 403 problem (as a header, whatever it accepts)", async () => {
    await expectProblem(await get(API, { authorization: `Bearer ${customerJwt}` }), 403, "forbidden");
    await expectProblem(
      await get("/admin/queues", { ...HTML_ACCEPT, authorization: `Bearer ${customerJwt}` }),
      403,
      "forbidden",
    );
  });

  it("an admin JWT as a Bearer header: the board's API and its page", async () => {
    const res = await get(API, { authorization: `Bearer ${adminJwt}` });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const page = await get("/admin/queues/", { ...HTML_ACCEPT, authorization: `Bearer ${adminJwt}` });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<base href="/admin/queues/" />');
  });

  it("an admin API key as a Bearer header; a customer's API key is refused", async () => {
    const { key } = await keys.create({ customerId: "ops", tier: "pro", admin: true, name: "board" });
    expect((await get(API, { authorization: `Bearer ${key}` })).status).toBe(200);
    const plain = await keys.create({ customerId: "alice", tier: "pro" });
    await expectProblem(await get(API, { authorization: `Bearer ${plain.key}` }), 403, "forbidden");
  });

  it("a token in the query string is ignored", async () => {
    const q = `?token=${adminJwt}&access_token=${adminJwt}&authorization=Bearer%20${adminJwt}`;
    await expectProblem(await get(API + q), 401, "unauthorized");
    expect((await get("/admin/queues" + q, HTML_ACCEPT)).status).toBe(303);
    const login = await get(`/admin/login?token=${adminJwt}`, HTML_ACCEPT);
    expect(login.status).toBe(200);
    expect(loginCookie(login)).toBeUndefined();
  });
});

describe("the login form", () => {
  it("is a plain, labelled form that is never cached or framed", async () => {
    const res = await get("/admin/login", HTML_ACCEPT);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const html = await res.text();
    expect(html).toContain('<form method="post" action="/admin/login">');
    expect(html).toContain('<label for="token">');
    expect(html).toContain('<input id="token" name="token" type="password"');
  });

  it("sets an HttpOnly, SameSite=Strict cookie for /admin and sends the admin to the board", async () => {
    const res = await postForm("/admin/login", { token: adminJwt });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/queues");
    const cookie = loginCookie(res)!;
    expect(cookie.attrs).toEqual(expect.arrayContaining(["Path=/admin", "HttpOnly", "SameSite=Strict"]));
    expect(cookie.attrs).not.toContain("Secure"); // PUBLIC_URL is not https here
    const maxAge = Number(cookie.attrs.find((a) => a.startsWith("Max-Age="))!.slice(8));
    expect(maxAge).toBeGreaterThan(3_500); // the token's hour, not ADMIN_SESSION_TTL_S's 12
    expect(maxAge).toBeLessThanOrEqual(3_600);
    expect((await get(API, { ...JSON_ACCEPT, cookie: cookie.pair })).status).toBe(200);
    const page = await get("/admin/queues", { ...HTML_ACCEPT, cookie: cookie.pair });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
  });

  it("answers a wrong, empty or customer's token with the form and an error, and no cookie", async () => {
    for (const [token, status] of [
      ["not-a-token", 401],
      ["", 401],
      [customerJwt, 403],
    ] as const) {
      const res = await postForm("/admin/login", { token });
      expect(res.status, token).toBe(status);
      expect(loginCookie(res)).toBeUndefined();
      const html = await res.text();
      expect(html).toContain('role="alert"');
      expect(html).toContain('name="token"');
      if (token !== "") expect(html).not.toContain(token);
    }
  });

  it("refuses a form posted from another site, and anything but a form", async () => {
    for (const headers of [
      { origin: "https://evil.example" },
      { origin: "null" },
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site" },
    ]) {
      const res = await postForm("/admin/login", { token: adminJwt }, headers);
      await expectProblem(res, 403, "forbidden");
      expect(loginCookie(res)).toBeUndefined();
    }
    const json = await fetch(sys.url + "/admin/login", {
      method: "POST",
      headers: { "content-type": "application/json", origin: sys.url },
      body: JSON.stringify({ token: adminJwt }),
      redirect: "manual",
    });
    await expectProblem(json, 415, "unsupported_media_type");
    const huge = await postForm("/admin/login", { token: "x".repeat(20_000) });
    await expectProblem(huge, 413, "request_too_large");
  });

  it("logout clears the cookie and goes back to the form", async () => {
    expect((await get("/admin/logout", HTML_ACCEPT)).status).toBe(200);
    const res = await postForm("/admin/logout", {});
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/login");
    const cookie = loginCookie(res)!;
    expect(cookie.pair).toBe("rg_admin=");
    expect(cookie.attrs).toEqual(expect.arrayContaining(["Max-Age=0", "Path=/admin"]));
    await expectProblem(
      await postForm("/admin/logout", {}, { origin: "https://evil.example" }),
      403,
      "forbidden",
    );
  });

  it("a cookie of a revoked API key stops working; a browser is sent back to the form", async () => {
    const { key, info } = await keys.create({ customerId: "ops", tier: "pro", admin: true });
    const cookie = loginCookie(await postForm("/admin/login", { token: key }))!;
    expect((await get(API, { ...JSON_ACCEPT, cookie: cookie.pair })).status).toBe(200);
    expect(await keys.revoke(info.prefix)).toBe("revoked");
    await waitFor(async () => (await get(API, { ...JSON_ACCEPT, cookie: cookie.pair })).status === 401);
    const page = await get("/admin/queues", { ...HTML_ACCEPT, cookie: cookie.pair });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/admin/login");
    expect(loginCookie(page)?.attrs).toContain("Max-Age=0");
  });
});
