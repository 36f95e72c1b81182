// The API key format (API.md §1): what a key looks like, how it is read back, its keyed hash, and the
// router that sends `rk_` tokens to the API-key verifier and everything else to the JWT side.
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  API_KEY_PREFIX_RE,
  generateApiKey,
  hashApiKey,
  isApiKeyToken,
  parseApiKey,
  sameHash,
} from "../../src/core/api-key.js";
import type { ApiKeyVerifier } from "../../src/api/api-key-auth.js";
import type { Authenticator, Principal } from "../../src/api/auth.js";
import { createTokenRouter } from "../../src/api/token-router.js";

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const PEPPER = new TextEncoder().encode("a pepper of at least thirty-two bytes!!");

describe("API key format", () => {
  it("makes rk_<12 of [a-z0-9]>_<43 of [A-Za-z0-9]>: an RFC 6750 b64token, distinct every time", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { key, prefix } = generateApiKey();
      expect(key).toMatch(/^rk_[a-z0-9]{12}_[A-Za-z0-9]{43}$/);
      expect(key).toMatch(B64TOKEN);
      expect(prefix).toMatch(API_KEY_PREFIX_RE);
      expect(parseApiKey(key)).toEqual({ prefix, secret: key.slice(16) });
      seen.add(key);
    }
    expect(seen.size).toBe(200);
  });

  it("draws from the given bytes without modulo bias (bytes ≥ 252 for the prefix are skipped)", () => {
    let n = 0;
    const bytes = (len: number) => Uint8Array.from({ length: len }, () => (n++ % 2 === 0 ? 255 : 0));
    const { key } = generateApiKey(bytes);
    expect(key.startsWith("rk_aaaaaaaaaaaa_")).toBe(true);
  });

  it("reads back only well-formed keys", () => {
    const good = `rk_abcdefghij12_${"A".repeat(43)}`;
    expect(parseApiKey(good)).toEqual({ prefix: "abcdefghij12", secret: "A".repeat(43) });
    for (const bad of [
      "rk_",
      "rk_abcdefghij12",
      `rk_ABCDEFGHIJ12_${"A".repeat(43)}`,
      `rk_abcdefghij1_${"A".repeat(44)}`,
      `rk_abcdefghij12_${"A".repeat(42)}`,
      `rk_abcdefghij12_${"A".repeat(44)}`,
      `rk_abcdefghij12_${"A".repeat(42)}_`,
      `rk_abc_efghij12_${"A".repeat(43)}`,
      `xk_abcdefghij12_${"A".repeat(43)}`,
      `${good}\n`,
      "rk_" + "a".repeat(10_000),
    ]) {
      expect(parseApiKey(bad), bad.slice(0, 40)).toBeUndefined();
    }
    expect(isApiKeyToken("rk_anything")).toBe(true);
    expect(isApiKeyToken("eyJhbGciOiJIUzI1NiJ9.e30.x")).toBe(false);
  });

  it("hashes the whole key with HMAC-SHA256 under the pepper and compares in constant time", () => {
    const { key } = generateApiKey();
    const h = hashApiKey(PEPPER, key);
    expect(h.toString("hex")).toBe(createHmac("sha256", PEPPER).update(key).digest("hex"));
    expect(sameHash(h, hashApiKey(PEPPER, key))).toBe(true);
    expect(sameHash(h, hashApiKey(new TextEncoder().encode("x".repeat(32)), key))).toBe(false);
    expect(sameHash(h, h.subarray(0, 31))).toBe(false);
  });
});

describe("token router", () => {
  const jwtPrincipal: Principal = { customerId: "jwt", tier: "free", admin: false, expiresAt: 1 };
  const keyPrincipal: Principal = {
    customerId: "key",
    tier: "pro",
    admin: true,
    expiresAt: 2,
    keyPrefix: "p",
  };
  const seen: string[] = [];
  const sources = { hs256: true, public_keys: [], jwks: null };
  const jwt: Authenticator = {
    authenticate: async (h) => (seen.push(`jwt ${String(h)}`), jwtPrincipal),
    peek: (h) => (seen.push(`jwt peek ${String(h)}`), undefined),
    clear: () => seen.push("jwt clear"),
    stats: () => ({ verifications: 1, cacheHits: 2, cached: 3 }),
    sources: () => sources,
  };
  const keys: ApiKeyVerifier = {
    authenticate: async (t) => (seen.push(`key ${t}`), keyPrincipal),
    peek: (t) => (seen.push(`key peek ${t}`), keyPrincipal),
    revoked: () => undefined,
    clear: () => seen.push("key clear"),
    channel: () => undefined,
    stats: () => ({ lookups: 10, cacheHits: 20, cached: 30, revocations: 0, keyedHashes: 0 }),
  };

  it("sends Bearer rk_… to the key verifier and everything else to the JWT side", async () => {
    const router = createTokenRouter(jwt, keys);
    seen.length = 0;
    expect(await router.authenticate("Bearer rk_x")).toBe(keyPrincipal);
    expect(await router.authenticate("bearer  rk_x ")).toBe(keyPrincipal);
    expect(await router.authenticate("Bearer eyJ.a.b")).toBe(jwtPrincipal);
    expect(await router.authenticate(undefined)).toBe(jwtPrincipal);
    expect(await router.authenticate("Basic rk_x")).toBe(jwtPrincipal);
    expect(await router.authenticate(`Bearer rk_${"a".repeat(9000)}`)).toBe(jwtPrincipal);
    expect(router.peek("Bearer rk_y")).toBe(keyPrincipal);
    expect(router.peek("Bearer j")).toBeUndefined();
    router.clear();
    expect(seen.map((s) => s.slice(0, 30))).toEqual([
      "key rk_x",
      "key rk_x",
      "jwt Bearer eyJ.a.b",
      "jwt undefined",
      "jwt Basic rk_x",
      `jwt Bearer rk_${"a".repeat(16)}`,
      "key peek rk_y",
      "jwt peek Bearer j",
      "jwt clear",
      "key clear",
    ]);
    expect(router.stats()).toMatchObject({ verifications: 11, cacheHits: 22, cached: 33 });
    expect(router.sources()).toBe(sources);
  });
});
