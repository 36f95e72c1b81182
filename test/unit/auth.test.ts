import { createHmac } from "node:crypto";
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from "jose";
import type { JWTPayload } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import { createAuthenticator, parseTtl, signToken } from "../../src/api/auth.js";
import type { Authenticator, AuthenticatorOptions } from "../../src/api/auth.js";
import { isAppError } from "../../src/core/errors.js";
import type { AppError } from "../../src/core/errors.js";

const SECRET = new TextEncoder().encode("a test secret that is at least 32 bytes long");
const OTHER_SECRET = new TextEncoder().encode("another secret, also at least 32 bytes long!");
const T0 = 1_800_000_000_000; // ms
const T0_S = T0 / 1000;

let now = T0;
const clock = (): number => now;
const BUILT_IN_TIERS = ["free", "pro", "enterprise", "unlimited"];
const MAX_TTL_S = 86_400;

beforeEach(() => {
  now = T0;
});

function auth(opts: Partial<AuthenticatorOptions> = {}): Authenticator {
  return createAuthenticator({ secret: SECRET, tiers: BUILT_IN_TIERS, clock, maxTtlS: MAX_TTL_S, ...opts });
}

/** A HS256 token with exactly these claims (no defaults added). */
async function raw(claims: JWTPayload, secret: Uint8Array = SECRET, alg = "HS256"): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(secret);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

async function refusal(a: Authenticator, header: string | undefined): Promise<AppError> {
  const err: unknown = await a.authenticate(header).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isAppError(err)) throw new Error(`expected an AppError, got ${String(err)}`);
  expect(err.code).toBe("unauthorized");
  expect(err.status).toBe(401);
  expect(err.headers?.["WWW-Authenticate"]).toMatch(/^Bearer realm="render-gateway"/);
  // Never echo the credential.
  const token = header?.replace(/^\S+\s+/, "") ?? "";
  if (token.length > 0) {
    expect(err.message).not.toContain(token);
    expect(JSON.stringify(err.details ?? {})).not.toContain(token);
  }
  return err;
}

const exp = (deltaS: number): number => T0_S + deltaS;

describe("authenticate", () => {
  it("turns a token made by signToken into a principal", async () => {
    const token = await signToken({ secret: SECRET, customerId: "cust_42", tier: "pro", ttlS: 3600, clock });
    const p = await auth().authenticate(`Bearer ${token}`);
    expect(p).toEqual({ customerId: "cust_42", tier: "pro", admin: false, expiresAt: T0 + 3600_000 });
    expect(Object.isFrozen(p)).toBe(true);
  });

  it("accepts the scheme in any case and extra spaces", async () => {
    const token = await signToken({ secret: SECRET, customerId: "c", ttlS: 60, clock });
    const a = auth();
    expect((await a.authenticate(`bearer ${token}`)).customerId).toBe("c");
    expect((await a.authenticate(`BEARER   ${token} `)).customerId).toBe("c");
  });

  describe("customer id", () => {
    it("prefers customer_id over sub and user_id", async () => {
      const t = await raw({ customer_id: "from-cid", sub: "from-sub", user_id: "from-uid", exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).customerId).toBe("from-cid");
    });
    it("falls back to sub", async () => {
      const t = await raw({ sub: "from-sub", user_id: "from-uid", exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).customerId).toBe("from-sub");
    });
    it("falls back to user_id", async () => {
      const t = await raw({ user_id: "user@example.com", exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).customerId).toBe("user@example.com");
    });
    it("accepts the whole allowed alphabet up to 128 characters", async () => {
      const id = "Az09_.:@-".padEnd(128, "x");
      const t = await raw({ sub: id, exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).customerId).toBe(id);
    });
    it.each([
      ["none at all", {}],
      ["empty customer_id", { customer_id: "" }],
      ["a number", { customer_id: 42 }],
      ["129 characters", { sub: "x".repeat(129) }],
      ["a slash", { sub: "a/b" }],
      ["a space", { user_id: "a b" }],
      ["a bad customer_id even with a good sub", { customer_id: "a/b", sub: "good" }],
    ])("refuses %s", async (_name, claims) => {
      const t = await raw({ ...claims, exp: exp(60) });
      await refusal(auth(), `Bearer ${t}`);
    });
  });

  describe("tier and admin", () => {
    it("defaults the tier to free", async () => {
      const t = await raw({ sub: "c", exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).tier).toBe("free");
    });
    it.each(["free", "pro", "enterprise", "unlimited"])("reads tier %s", async (tier) => {
      const t = await raw({ sub: "c", tier, exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).tier).toBe(tier);
    });
    it.each([["gold"], ["Pro"], [3], [null]])("refuses tier %j", async (tier) => {
      const t = await raw({ sub: "c", tier, exp: exp(60) });
      await refusal(auth(), `Bearer ${t}`);
    });
    it.each([
      ["admin", true],
      ["read admin write", true],
      [["read", "admin"], true],
      ["administrator", false],
      ["read write", false],
      [[], false],
    ])("scope %j → admin %s", async (scope, admin) => {
      const t = await raw({ sub: "c", scope, exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).admin).toBe(admin);
    });
    it.each([[42], [["admin", 1]], [{ admin: true }]])("refuses a malformed scope %j", async (scope) => {
      const t = await raw({ sub: "c", scope, exp: exp(60) });
      await refusal(auth(), `Bearer ${t}`);
    });
  });

  describe("refusals", () => {
    it("answers a missing header with a plain Bearer challenge", async () => {
      const err = await refusal(auth(), undefined);
      expect(err.message).toBe("Missing bearer token");
      expect(err.headers?.["WWW-Authenticate"]).toBe('Bearer realm="render-gateway"');
      await refusal(auth(), "");
    });
    it.each([
      "Basic dXNlcjpwYXNz",
      "Bearer",
      "Bearer ",
      "Bearer a.b.c",
      "Bearer not-a-jwt",
      "Bearertoken",
      "Bearer a b",
      "rk_abc_def",
      `Bearer ${"a".repeat(9000)}`,
    ])("refuses the header %j", async (header) => {
      const err = await refusal(auth(), header);
      expect(err.headers?.["WWW-Authenticate"]).toContain('error="invalid_token"');
    });
    it("refuses a token expired beyond the tolerance", async () => {
      const t = await raw({ sub: "c", exp: exp(-31) });
      await refusal(auth(), `Bearer ${t}`);
    });
    it("accepts a token expired within the 30 s tolerance", async () => {
      const t = await raw({ sub: "c", exp: exp(-29) });
      expect((await auth().authenticate(`Bearer ${t}`)).customerId).toBe("c");
    });
    it("honours a configured tolerance", async () => {
      const t = await raw({ sub: "c", exp: exp(-5) });
      await refusal(auth({ clockToleranceS: 0 }), `Bearer ${t}`);
    });
    it("refuses a token whose nbf is in the future beyond the tolerance", async () => {
      const t = await raw({ sub: "c", nbf: exp(31), exp: exp(600) });
      await refusal(auth(), `Bearer ${t}`);
      const soon = await raw({ sub: "c", nbf: exp(29), exp: exp(600) });
      expect((await auth().authenticate(`Bearer ${soon}`)).customerId).toBe("c");
    });
    it("refuses a token without exp", async () => {
      const t = await raw({ sub: "c" });
      const err = await refusal(auth(), `Bearer ${t}`);
      expect(String((err.cause as Error).message)).toMatch(/CLAIM/);
    });
    it("refuses a token signed with another secret", async () => {
      const t = await raw({ sub: "c", exp: exp(60) }, OTHER_SECRET);
      await refusal(auth(), `Bearer ${t}`);
    });
    it("refuses a valid token changed by padding or the base64 (not base64url) alphabet", async () => {
      const t = await raw({ sub: "c", exp: exp(60) }, SECRET);
      await auth().authenticate(`Bearer ${t}`); // the token itself is good
      for (const changed of [`${t}==`, `${t}=`, t.replace(/_/g, "/"), t.replace(/-/g, "+")]) {
        if (changed === t) continue;
        const err = await refusal(auth(), `Bearer ${changed}`);
        expect(String((err.cause as Error).message)).toMatch(/compact JWS/);
      }
    });
    it("refuses alg none", async () => {
      const t = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: "c", exp: exp(60) })}.`;
      await refusal(auth(), `Bearer ${t}`);
    });
    it("refuses HS512 and HS384 even with the right secret", async () => {
      for (const alg of ["HS384", "HS512"]) {
        const t = await raw({ sub: "c", exp: exp(60) }, SECRET, alg);
        await refusal(auth(), `Bearer ${t}`);
      }
    });
    it("refuses an RS256 token and an RS256 header over an HMAC", async () => {
      const { privateKey } = await generateKeyPair("RS256");
      const rs = await new SignJWT({ sub: "c", exp: exp(60) })
        .setProtectedHeader({ alg: "RS256" })
        .sign(privateKey);
      await refusal(auth(), `Bearer ${rs}`);
      const input = `${b64url({ alg: "RS256", typ: "JWT" })}.${b64url({ sub: "c", exp: exp(60) })}`;
      const forged = `${input}.${createHmac("sha256", SECRET).update(input).digest("base64url")}`;
      await refusal(auth(), `Bearer ${forged}`);
    });
    it("refuses a tampered payload", async () => {
      const t = await raw({ sub: "c", tier: "free", exp: exp(60) });
      const [h, , s] = t.split(".");
      await refusal(auth(), `Bearer ${h}.${b64url({ sub: "c", tier: "unlimited", exp: exp(60) })}.${s}`);
    });
    it("checks iss and aud when configured", async () => {
      const a = auth({ issuer: "https://issuer.example", audience: "render-gateway" });
      const good = await raw({
        sub: "c",
        iss: "https://issuer.example",
        aud: "render-gateway",
        exp: exp(60),
      });
      expect((await a.authenticate(`Bearer ${good}`)).customerId).toBe("c");
      for (const claims of [
        { iss: "https://evil.example", aud: "render-gateway" },
        { iss: "https://issuer.example", aud: "someone-else" },
        { aud: "render-gateway" },
        { iss: "https://issuer.example" },
      ]) {
        await refusal(a, `Bearer ${await raw({ sub: "c", ...claims, exp: exp(60) })}`);
      }
    });
    it("ignores iss and aud when not configured", async () => {
      const t = await raw({ sub: "c", iss: "anyone", aud: "anything", exp: exp(60) });
      expect((await auth().authenticate(`Bearer ${t}`)).customerId).toBe("c");
    });
    it("refuses a secret shorter than 32 bytes", () => {
      expect(() =>
        createAuthenticator({ secret: new Uint8Array(31), tiers: BUILT_IN_TIERS, clock, maxTtlS: MAX_TTL_S }),
      ).toThrow(TypeError);
    });
    it("refuses a maxTtlS that is not a positive integer", () => {
      for (const maxTtlS of [0, -1, 1.5, Number.NaN])
        expect(() => createAuthenticator({ secret: SECRET, tiers: BUILT_IN_TIERS, clock, maxTtlS })).toThrow(
          RangeError,
        );
    });
  });

  describe("maximum lifetime", () => {
    it("refuses a token whose exp lies beyond maxTtlS plus the tolerance (exp = 1e300 too)", async () => {
      for (const far of [1e300, Number.MAX_SAFE_INTEGER, exp(MAX_TTL_S + 31), exp(365 * 86_400)]) {
        const err = await refusal(auth(), `Bearer ${await raw({ sub: "c", exp: far })}`);
        expect(String((err.cause as Error).message)).toMatch(/maximum token lifetime/);
      }
    });
    it("accepts a token up to maxTtlS plus the tolerance", async () => {
      for (const ok of [exp(MAX_TTL_S), exp(MAX_TTL_S + 30)]) {
        const t = await raw({ sub: "c", exp: ok });
        expect((await auth().authenticate(`Bearer ${t}`)).customerId).toBe("c");
      }
    });
    it("honours a configured maxTtlS, measured from now (not iat)", async () => {
      const a = auth({ maxTtlS: 600, clockToleranceS: 0 });
      await refusal(a, `Bearer ${await raw({ sub: "c", exp: exp(601) })}`);
      // Issued long ago with a long lifetime, but only 600 s are left now.
      const old = await raw({ sub: "old", iat: exp(-10_000), exp: exp(600) });
      expect((await a.authenticate(`Bearer ${old}`)).customerId).toBe("old");
    });
    it("keeps answering a token within the limit from the cache", async () => {
      const a = auth();
      const t = `Bearer ${await raw({ sub: "c", exp: exp(MAX_TTL_S) })}`;
      for (let i = 0; i < 100; i++) await a.authenticate(t);
      now = T0 + 3_600_000;
      await a.authenticate(t);
      expect(a.stats()).toEqual({ verifications: 1, cacheHits: 100, cached: 1 });
    });
  });

  describe("cache", () => {
    it("answers a repeated token from the cache with the same principal", async () => {
      const a = auth();
      const t = await raw({ sub: "c", exp: exp(3600) });
      const first = await a.authenticate(`Bearer ${t}`);
      const second = await a.authenticate(`bearer ${t}`);
      expect(second).toBe(first);
      expect(a.stats()).toEqual({ verifications: 1, cacheHits: 1, cached: 1 });
    });

    it("does not cache failures", async () => {
      const a = auth();
      const t = await raw({ sub: "c", exp: exp(60) }, OTHER_SECRET);
      await refusal(a, `Bearer ${t}`);
      await refusal(a, `Bearer ${t}`);
      expect(a.stats()).toEqual({ verifications: 2, cacheHits: 0, cached: 0 });
    });

    it("never serves a token past its exp", async () => {
      const a = auth();
      const t = await raw({ sub: "c", exp: exp(60) });
      await a.authenticate(`Bearer ${t}`);
      now = T0 + 59_999;
      await a.authenticate(`Bearer ${t}`);
      expect(a.stats().cacheHits).toBe(1);
      // At exp: the cache drops it and jose (30 s tolerance) decides; a result already expired is
      // not cached again.
      now = T0 + 60_000;
      await a.authenticate(`Bearer ${t}`);
      expect(a.stats()).toEqual({ verifications: 2, cacheHits: 1, cached: 0 });
      now = T0 + 91_000;
      await refusal(a, `Bearer ${t}`);
      expect(a.stats()).toEqual({ verifications: 3, cacheHits: 1, cached: 0 });
    });

    it("keeps at most cacheSize tokens, evicting the least recently used", async () => {
      const a = auth({ cacheSize: 3 });
      const tokens = await Promise.all([1, 2, 3, 4].map((i) => raw({ sub: `c${i}`, exp: exp(600) })));
      const [t1, t2, t3, t4] = tokens.map((t) => `Bearer ${t}`) as [string, string, string, string];
      await a.authenticate(t1);
      await a.authenticate(t2);
      await a.authenticate(t3);
      await a.authenticate(t1); // t1 becomes the most recently used; t2 the least
      await a.authenticate(t4); // evicts t2
      expect(a.stats()).toEqual({ verifications: 4, cacheHits: 1, cached: 3 });
      await a.authenticate(t1);
      await a.authenticate(t3);
      await a.authenticate(t4);
      expect(a.stats().verifications).toBe(4);
      await a.authenticate(t2);
      expect(a.stats().verifications).toBe(5);
      expect(a.stats().cached).toBe(3);
    });

    it("caches nothing with cacheSize 0", async () => {
      const a = auth({ cacheSize: 0 });
      const t = `Bearer ${await raw({ sub: "c", exp: exp(600) })}`;
      await a.authenticate(t);
      await a.authenticate(t);
      expect(a.stats()).toEqual({ verifications: 2, cacheHits: 0, cached: 0 });
    });

    it("verifies concurrent first uses of one token once", async () => {
      const a = auth();
      const t = `Bearer ${await raw({ sub: "c", exp: exp(600) })}`;
      const principals = await Promise.all(Array.from({ length: 10 }, () => a.authenticate(t)));
      expect(new Set(principals).size).toBe(1);
      expect(a.stats().verifications).toBe(1);
    });

    it("clear() forgets every verification, including one in flight", async () => {
      const a = auth();
      const t1 = `Bearer ${await raw({ sub: "c1", exp: exp(600) })}`;
      const t2 = `Bearer ${await raw({ sub: "c2", exp: exp(600) })}`;
      await a.authenticate(t1);
      const inFlight = a.authenticate(t2);
      a.clear();
      await inFlight;
      expect(a.stats().cached).toBe(0);
      await a.authenticate(t1);
      expect(a.stats()).toEqual({ verifications: 3, cacheHits: 0, cached: 1 });
    });

    it("answers 999 repeats of a hot token without calling jose", async () => {
      const a = auth();
      const t = `Bearer ${await raw({ sub: "c", exp: exp(600) })}`;
      for (let i = 0; i < 1000; i++) await a.authenticate(t);
      expect(a.stats()).toEqual({ verifications: 1, cacheHits: 999, cached: 1 });
    });
  });
});

describe("signToken", () => {
  it("writes sub, customer_id, tier, scope, iat and exp with HS256", async () => {
    const t = await signToken({
      secret: SECRET,
      customerId: "acme",
      tier: "enterprise",
      admin: true,
      ttlS: 7200,
      issuer: "iss",
      audience: "aud",
      clock,
    });
    expect(decodeProtectedHeader(t)).toEqual({ alg: "HS256", typ: "JWT" });
    expect(decodeJwt(t)).toEqual({
      sub: "acme",
      customer_id: "acme",
      tier: "enterprise",
      scope: "admin",
      iat: T0_S,
      exp: T0_S + 7200,
      iss: "iss",
      aud: "aud",
    });
    const p = await auth({ issuer: "iss", audience: "aud" }).authenticate(`Bearer ${t}`);
    expect(p).toEqual({ customerId: "acme", tier: "enterprise", admin: true, expiresAt: T0 + 7200_000 });
  });

  it("defaults to tier free and no scope", async () => {
    const claims = decodeJwt(await signToken({ secret: SECRET, customerId: "acme", ttlS: 60, clock }));
    expect(claims.tier).toBe("free");
    expect(claims).not.toHaveProperty("scope");
    expect(claims).not.toHaveProperty("iss");
  });

  it("refuses bad input", async () => {
    const base = { secret: SECRET, customerId: "acme", ttlS: 60, clock };
    await expect(signToken({ ...base, customerId: "a/b" })).rejects.toThrow(TypeError);
    await expect(signToken({ ...base, ttlS: 0 })).rejects.toThrow(RangeError);
    await expect(signToken({ ...base, ttlS: 1.5 })).rejects.toThrow(RangeError);
    await expect(signToken({ ...base, secret: new Uint8Array(8) })).rejects.toThrow(TypeError);
    await expect(signToken({ ...base, tier: "gold" })).rejects.toThrow(TypeError);
  });
});

describe("parseTtl", () => {
  it.each([
    ["1h", 3600],
    ["30m", 1800],
    ["90s", 90],
    ["7d", 604_800],
    ["3600", 3600],
    ["1", 1],
  ])("%s → %d s", (text, seconds) => {
    expect(parseTtl(text)).toBe(seconds);
  });
  it.each(["", "0", "0h", "-1h", "1.5h", "1w", "h", "1 h", " 1h", "1h ", "1H", "01h", "1e3", "12345678901"])(
    "refuses %j",
    (text) => {
      expect(() => parseTtl(text)).toThrow(RangeError);
    },
  );
});

describe("peek", () => {
  it("answers only for a token verified before and still valid", async () => {
    const a = auth();
    const token = await signToken({ secret: SECRET, customerId: "c_peek", ttlS: 60, clock });
    expect(a.peek(`Bearer ${token}`)).toBeUndefined();
    await a.authenticate(`Bearer ${token}`);
    expect(a.peek(`Bearer ${token}`)?.customerId).toBe("c_peek");
    expect(a.peek(undefined)).toBeUndefined();
    expect(a.peek(`Basic ${token}`)).toBeUndefined();
    now = T0 + 61_000;
    expect(a.peek(`Bearer ${token}`)).toBeUndefined();
  });
});
