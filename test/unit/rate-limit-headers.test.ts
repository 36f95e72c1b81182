// The RateLimit-Policy / RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11 on RFC 9651
// structured fields), Retry-After, and the limiter's decisions on a store that counts in memory.
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/api/auth.js";
import type { ApiEnv } from "../../src/api/context.js";
import { limitReads } from "../../src/api/middleware/limit-reads.js";
import { createErrorHandler } from "../../src/api/problem.js";
import {
  rateLimitItem,
  rateLimitItemOf,
  rateLimitPolicyItem,
  retryAfterSeconds,
  sfString,
  wholeSecondsUntil,
} from "../../src/api/rate-limit-headers.js";
import { createRateLimiter } from "../../src/api/rate-limits.js";
import { AppError, isAppError } from "../../src/core/errors.js";
import { DEFAULT_TIERS, parseTiers } from "../../src/core/tiers.js";
import type { QuotaUse, RateLimitStore } from "../../src/queues/rate-limit-store.js";
import { pino } from "pino";

describe("structured field values", () => {
  it("formats the draft's examples", () => {
    // draft §3.2 and §4.2
    expect(rateLimitPolicyItem("default", 100, 10)).toBe('"default";q=100;w=10');
    expect(rateLimitItem("default", 50, 30)).toBe('"default";r=50;t=30');
    expect(rateLimitPolicyItem("submits", 1_200, 60)).toBe('"submits";q=1200;w=60');
    expect(rateLimitItem("reads", 0, 1)).toBe('"reads";r=0;t=1');
    expect(rateLimitItemOf('say "hi"')(3, 4)).toBe('"say \\"hi\\"";r=3;t=4');
  });

  it("keeps integers within sf-integer: whole, non-negative, at most 15 digits", () => {
    expect(rateLimitPolicyItem("p", 1e18, 60)).toBe('"p";q=999999999999999;w=60');
    expect(rateLimitItem("p", -3, 2.9)).toBe('"p";r=0;t=2');
    expect(rateLimitItem("p", 7.8, 0)).toBe('"p";r=7;t=0');
  });

  it("quotes and escapes sf-strings, and refuses what one cannot hold", () => {
    expect(sfString("submits")).toBe('"submits"');
    expect(sfString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(sfString("")).toBe('""');
    expect(() => sfString("é")).toThrow(TypeError);
    expect(() => sfString("a\nb")).toThrow(TypeError);
  });

  it("rounds time up to whole seconds; Retry-After is at least 1", () => {
    expect(wholeSecondsUntil(0)).toBe(0);
    expect(wholeSecondsUntil(1)).toBe(1);
    expect(wholeSecondsUntil(1_000)).toBe(1);
    expect(wholeSecondsUntil(1_001)).toBe(2);
    expect(wholeSecondsUntil(-5)).toBe(0);
    expect(retryAfterSeconds(0)).toBe(1);
    expect(retryAfterSeconds(-1)).toBe(1);
    expect(retryAfterSeconds(999)).toBe(1);
    expect(retryAfterSeconds(59_001)).toBe(60);
  });
});

/**
 * A store that counts in memory, with a window that never ends on its own: through `take` (as a
 * Redis call), or, `local`, through `takeLocal` (as a process's block).
 */
function countingStore(resetMs = 42_500, local = false) {
  const counts = new Map<string, number>();
  const calls: string[] = [];
  const store: RateLimitStore = {
    quota: (policy, limit, windowS) => {
      const count = (customer: string): QuotaUse => {
        calls.push(`${policy} ${customer} ${limit}/${windowS}`);
        const key = `${policy}:${customer}`;
        const n = (counts.get(key) ?? 0) + 1;
        counts.set(key, n);
        return { allowed: n <= limit, remaining: Math.max(0, limit - n), resetMs };
      };
      return {
        policy,
        limit,
        windowS,
        takeLocal: (customer) => (local ? count(customer) : undefined),
        take: (customer) =>
          local ? Promise.reject(new Error("asked Redis")) : Promise.resolve(count(customer)),
      };
    },
  };
  return { store, calls };
}

const principal = (tier: string, o: Partial<Principal> = {}): Principal => ({
  customerId: "acme",
  tier,
  admin: false,
  expiresAt: Date.now() + 3_600_000,
  ...o,
});

const tiers = parseTiers({
  free: { ...DEFAULT_TIERS.free, submits_per_min: 2, reads_per_s: 3 },
  open: { ...DEFAULT_TIERS.unlimited, reads_per_s: null },
});

describe("the limiter", () => {
  it.each([
    ["asked of the store", false],
    ["given from the process's block (takeLocal)", true],
  ])(
    "answers the quota left in headers, then refuses with 429, Retry-After and the same fields: units %s",
    async (_how, local) => {
      const { store, calls } = countingStore(42_500, local);
      const limiter = createRateLimiter({ tiers, store });
      expect(await limiter.take("submits", principal("free"))).toEqual({
        "ratelimit-policy": '"submits";q=2;w=60',
        ratelimit: '"submits";r=1;t=43',
      });
      expect(await limiter.take("submits", principal("free"))).toEqual({
        "ratelimit-policy": '"submits";q=2;w=60',
        ratelimit: '"submits";r=0;t=43',
      });
      // the refusal is a rejected promise, never a throw
      let pending: Promise<unknown> | undefined;
      expect(() => {
        pending = limiter.take("submits", principal("free"));
      }).not.toThrow();
      const refused = await pending!.catch((e: unknown) => e);
      expect(isAppError(refused)).toBe(true);
      const err = refused as AppError;
      expect(err.code).toBe("rate_limited");
      expect(err.status).toBe(429);
      expect(err.headers).toEqual({
        "retry-after": "43",
        "ratelimit-policy": '"submits";q=2;w=60',
        ratelimit: '"submits";r=0;t=43',
      });
      expect(err.details).toEqual({ policy: "submits", limit: 2, window_s: 60, tier: "free" });
      expect(err.message).toMatch(/2 generation submits per 60 s on the free tier; retry in 43 s/);
      // Each policy has its own window length and count.
      expect(await limiter.take("reads", principal("free"))).toEqual({
        "ratelimit-policy": '"reads";q=3;w=1',
        ratelimit: '"reads";r=2;t=43',
      });
      expect(calls).toEqual([
        "submits acme 2/60",
        "submits acme 2/60",
        "submits acme 2/60",
        "reads acme 3/1",
      ]);
    },
  );

  it("never asks the store for an admin or a tier without a limit", async () => {
    const { store, calls } = countingStore();
    const limiter = createRateLimiter({ tiers, store });
    for (let i = 0; i < 5; i++) {
      expect(await limiter.take("submits", principal("free", { admin: true }))).toBeUndefined();
      expect(await limiter.take("reads", principal("free", { admin: true }))).toBeUndefined();
      expect(await limiter.take("submits", principal("open"))).toBeUndefined();
      expect(await limiter.take("reads", principal("open"))).toBeUndefined();
    }
    expect(calls).toEqual([]);
  });

  it("passes the store's error on (the error handler makes a Redis outage a 503)", async () => {
    const down = new Error("Stream isn't writeable and enableOfflineQueue options is false");
    const limiter = createRateLimiter({
      tiers,
      store: {
        quota: (policy, limit, windowS) => ({
          policy,
          limit,
          windowS,
          takeLocal: () => undefined,
          take: () => Promise.reject(down),
        }),
      },
    });
    await expect(limiter.take("reads", principal("free"))).rejects.toBe(down);
  });

  it("lets a request through uncounted while Redis answers but refuses writes", async () => {
    for (const reply of [
      "OOM command not allowed when used memory > 'maxmemory'.",
      "READONLY You can't write against a read only replica.",
      "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
    ]) {
      const limiter = createRateLimiter({
        tiers,
        store: {
          quota: (policy, limit, windowS) => ({
            policy,
            limit,
            windowS,
            takeLocal: () => undefined,
            take: () => Promise.reject(new Error(reply)),
          }),
        },
      });
      expect(await limiter.take("reads", principal("free"))).toBeUndefined();
      expect(await limiter.take("submits", principal("free"))).toBeUndefined();
    }
  });
});

describe("limitReads", () => {
  /** An app whose routes see `who` as the principal, with the reads middleware on every path. */
  function app(who: Principal | undefined) {
    const { store, calls } = countingStore(800);
    const a = new Hono<ApiEnv>();
    a.onError(createErrorHandler(pino({ level: "silent" })));
    a.use(async (c, next) => {
      c.set("requestId", "req_test0000");
      if (who) c.set("principal", who);
      await next();
    });
    a.use(limitReads({ limiter: createRateLimiter({ tiers, store }) }));
    a.get("/thing", (c) => c.json({ ok: true }));
    a.get("/missing", () => {
      throw new AppError("not_found", "no such thing");
    });
    a.post("/thing", (c) => c.json({ posted: true }));
    return { app: a, calls };
  }

  it("counts GET and HEAD, and puts the fields on answers and problem documents alike", async () => {
    const { app: a, calls } = app(principal("free"));
    const ok = await a.request("/thing");
    expect(ok.status).toBe(200);
    expect(ok.headers.get("ratelimit")).toBe('"reads";r=2;t=1');
    expect(ok.headers.get("ratelimit-policy")).toBe('"reads";q=3;w=1');
    const head = await a.request("/thing", { method: "HEAD" });
    expect(head.headers.get("ratelimit")).toBe('"reads";r=1;t=1');
    const missing = await a.request("/missing");
    expect(missing.status).toBe(404);
    expect(missing.headers.get("ratelimit")).toBe('"reads";r=0;t=1');
    const refused = await a.request("/thing");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.headers.get("ratelimit")).toBe('"reads";r=0;t=1');
    expect(((await refused.json()) as { error: string }).error).toBe("rate_limited");
    expect(calls).toHaveLength(4);
  });

  it("takes one unit when two registrations match the request", async () => {
    const { store, calls } = countingStore();
    const reads = limitReads({ limiter: createRateLimiter({ tiers, store }) });
    const a = new Hono<ApiEnv>();
    a.use(async (c, next) => {
      c.set("principal", principal("free"));
      await next();
    });
    // As app.ts registers it: Hono's `/models/*` also matches `/models`.
    a.use("/models", reads);
    a.use("/models/*", reads);
    a.get("/models", (c) => c.json({}));
    const res = await a.request("/models");
    expect(res.headers.get("ratelimit")).toBe('"reads";r=2;t=43');
    expect(calls).toHaveLength(1);
  });

  it("leaves other methods and requests without a principal alone", async () => {
    const withPrincipal = app(principal("free"));
    const posted = await withPrincipal.app.request("/thing", { method: "POST" });
    expect(posted.status).toBe(200);
    expect(posted.headers.get("ratelimit")).toBeNull();
    expect(withPrincipal.calls).toEqual([]);
    const anonymous = app(undefined);
    expect((await anonymous.app.request("/thing")).status).toBe(200);
    expect(anonymous.calls).toEqual([]);
  });
});
