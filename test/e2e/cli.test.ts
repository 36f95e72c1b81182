// The command line (API.md §5): `token` prints exactly one JWT usable against a running API, admin
// scope shows backend details on /ready; without JWT_SECRET the dev secret under DATA_DIR is created
// once (mode 0600) even by concurrent commands; `start` refuses a Redis that may evict keys.
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eHarness, call, until, type Gateway } from "../helpers/processes.js";

const JWT_LINE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/;

let h: E2eHarness;
let gw: Gateway;

beforeAll(async () => {
  h = new E2eHarness();
  gw = await h.start(undefined);
});
afterAll(async () => {
  await h?.cleanup();
});

function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}

describe("render-gateway token", () => {
  it("prints exactly one JWT line that the API accepts", async () => {
    const r = await h.run(["token", "--customer", "c1", "--tier", "pro", "--ttl", "10m"]);
    expect(r.code, r.proc.describe()).toBe(0);
    expect(r.stdout).toMatch(JWT_LINE);
    expect(r.stderr).toBe("");
    const jwt = r.stdout.trim();
    const c = claims(jwt);
    expect(c).toMatchObject({ customer_id: "c1", sub: "c1", tier: "pro" });
    expect(Number(c.exp) - Number(c.iat)).toBe(600);
    expect(c.scope).toBeUndefined();

    // Usable: a pro customer may queue at high priority, and sees its own job.
    const res = await call(gw.url, "/queue", {
      method: "POST",
      token: jwt,
      body: {
        modality: "image",
        family: "flux",
        model: "schnell",
        task: "t2i",
        prompt: "cli",
        priority: "high",
      },
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const job = await call(gw.url, `/jobs/${id}?redirect=false`, { token: jwt });
    expect(job.status).toBe(200);
    expect(((await job.json()) as { priority: string }).priority).toBe("high");
  });

  it("--scope admin: /ready shows backend details to admins only", async () => {
    const r = await h.run(["token", "--customer", "ops", "--scope", "admin"]);
    expect(r.code, r.proc.describe()).toBe(0);
    expect(r.stdout).toMatch(JWT_LINE);
    const admin = r.stdout.trim();
    expect(claims(admin).scope).toBe("admin");

    const user = (await h.run(["token", "--customer", "someone"])).stdout.trim();
    const asAdmin = await until("the worker's backends are visible", async () => {
      const res = await call(gw.url, "/ready", { token: admin });
      const body = (await res.json()) as { backends?: { id: string; capacity: number; healthy: boolean }[] };
      return res.status === 200 && (body.backends?.length ?? 0) > 0 ? body : undefined;
    });
    expect(asAdmin.backends!.every((b) => typeof b.id === "string" && b.capacity > 0)).toBe(true);
    for (const t of [user, undefined]) {
      const res = await call(gw.url, "/ready", t === undefined ? {} : { token: t });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body.status).toBe("ready");
      expect(body.backends).toBeUndefined();
      expect(body.queue).toBeUndefined();
    }
  });

  it("rejects bad arguments with a message and a non-zero exit", async () => {
    const runs = await Promise.all(
      [
        ["token"],
        ["token", "--customer", "c1", "--tier", "gold"],
        ["token", "--customer", "c1", "--ttl", "forever"],
        ["token", "--customer", "c1", "--scope", "root"],
      ].map((args) => h.run(args)),
    );
    for (const r of runs) {
      expect(r.code, r.proc.describe()).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(r.stdout).toBe("");
      expect(r.stderr.length).toBeGreaterThan(0);
    }
  });
});

describe("production secrets: nothing dev-only", () => {
  it("start with JWT_SECRET set prints no token, only how to mint one", async () => {
    const stdout = gw.proc.stdout;
    expect(stdout).toContain(`render-gateway is up at ${gw.url}`);
    expect(stdout).not.toMatch(/[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
    expect(stdout).not.toMatch(/dev token:/);
    expect(stdout).toContain("npx render-gateway token --customer");
    expect(stdout).toContain('"Authorization: Bearer $TOKEN"');
  });

  it("token --ttl above JWT_MAX_TTL_S is refused with a message naming the limit", async () => {
    const runs = await Promise.all([
      h.run(["token", "--customer", "c1", "--ttl", "2d"]),
      h.run(["token", "--customer", "c1", "--ttl", "2h"], { env: { JWT_MAX_TTL_S: "3600" } }),
    ]);
    for (const r of runs) {
      expect(r.code, r.proc.describe()).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/--ttl .* is longer than JWT_MAX_TTL_S \((86400|3600) s\)/);
    }
    const atLimit = await h.run(["token", "--customer", "c1", "--ttl", "1d"]);
    expect(atLimit.code, atLimit.proc.describe()).toBe(0);
    expect((await call(gw.url, "/queue", { token: atLimit.stdout.trim() })).status).toBe(200);
  });
});

describe("the dev secret (no JWT_SECRET)", () => {
  it("is created once with mode 0600 by two concurrent token commands, and both tokens verify", async () => {
    const dataDir = h.tempDir();
    const env = { JWT_SECRET: undefined };
    const [a, b] = await Promise.all([
      h.run(["token", "--customer", "first", "--tier", "pro"], { dataDir, env }),
      h.run(["token", "--customer", "second", "--tier", "pro"], { dataDir, env }),
    ]);
    expect(a.code, a.proc.describe()).toBe(0);
    expect(b.code, b.proc.describe()).toBe(0);
    expect(a.stdout).toMatch(JWT_LINE);
    expect(b.stdout).toMatch(JWT_LINE);
    const st = statSync(join(dataDir, "secrets", "dev-secret"));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "secrets")).mode & 0o077).toBe(0);

    // An API on that data dir (dev secret too) accepts both; the JWT_SECRET-signed API does not.
    const api = await h.start("api", { dataDir, env });
    for (const t of [a.stdout.trim(), b.stdout.trim()]) {
      expect((await call(api.url, "/queue", { token: t })).status).toBe(200);
      expect((await call(gw.url, "/queue", { token: t })).status).toBe(401);
    }
    const exit = await api.proc.stop();
    expect(exit, api.proc.describe()).toEqual({ code: 0, signal: null, forced: false });
  });
});

describe("start against an evicting Redis", () => {
  it("refuses maxmemory-policy allkeys-lru with a clear message and a non-zero exit", async () => {
    const redis = await h.spawnRedis(["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    const dataDir = h.tempDir();
    const r = await h.run(["start", "--roles", "api"], {
      dataDir,
      env: { REDIS_URL: redis.url },
      timeoutMs: 30_000,
    });
    expect(r.code, r.proc.describe()).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/maxmemory-policy/);
    expect(r.stderr).toMatch(/allkeys-lru/);
    expect(r.stderr).toMatch(/noeviction/);
    expect(r.stdout).not.toContain("render-gateway is up");
    // Nothing was left behind that claims a running API.
    expect(() => statSync(join(dataDir, "run", "api.url"))).toThrow();
  });
});
