// JWKS_URL against a real loopback endpoint: key rotation under steady traffic without a spurious
// 401, keys kept while the endpoint is down, and unknown kids rate-limited to one fetch per cool-down.
import { afterEach, describe, expect, it } from "vitest";
import { createAuthenticator, type Authenticator } from "../../src/api/auth.js";
import { createRemoteKeySet, type RemoteKeySet } from "../../src/api/jwks-remote.js";
import { isAppError } from "../../src/core/errors.js";
import { edKey, edToken, startJwksServer, type JwksServer, type TestKey } from "../helpers/jwks-server.js";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function server(keys: readonly TestKey[]): Promise<JwksServer> {
  const s = await startJwksServer(keys);
  closers.push(() => s.close());
  return s;
}

function keySet(url: string, o: { cooldownMs: number; maxAgeMs?: number }): RemoteKeySet {
  const set = createRemoteKeySet({
    url: new URL(url),
    cooldownMs: o.cooldownMs,
    maxAgeMs: o.maxAgeMs ?? 600_000,
    timeoutMs: 2_000,
    clock: Date.now,
  });
  closers.push(() => set.close());
  return set;
}

function authWith(jwks: RemoteKeySet): Authenticator {
  return createAuthenticator({ jwks, tiers: ["free"], clock: Date.now, maxTtlS: 3_600 });
}

/** Sends `tokens` through the authenticator, `concurrency` at a time; counts the outcomes. */
async function traffic(a: Authenticator, tokens: readonly string[], concurrency = 10) {
  let ok = 0;
  let refused = 0;
  for (let i = 0; i < tokens.length; i += concurrency) {
    await Promise.all(
      tokens.slice(i, i + concurrency).map(async (t) => {
        try {
          await a.authenticate(`Bearer ${t}`);
          ok += 1;
        } catch (err) {
          if (!isAppError(err) || err.status !== 401) throw err;
          refused += 1;
        }
      }),
    );
  }
  return { ok, refused };
}

let serial = 0;
/** `n` distinct tokens (each one a cache miss), signed with `key`. */
const tokens = (key: TestKey, n: number, kid?: string) =>
  Promise.all(Array.from({ length: n }, () => edToken(key, { sub: `c${serial++}` }, kid ?? key.kid)));

describe("JWKS rotation", () => {
  it("rotates A → {A,B} → B under steady traffic with 0 spurious 401s", async () => {
    const [a, b] = [await edKey("key-a"), await edKey("key-b")];
    const s = await server([a]);
    const jwks = keySet(s.url, { cooldownMs: 200 });
    const auth = authWith(jwks);

    expect(await traffic(auth, await tokens(a, 200))).toEqual({ ok: 200, refused: 0 });
    expect(s.hits()).toBe(1);

    // The provider publishes B and starts signing with it at once; A tokens keep coming.
    s.serve([a, b]);
    const [oldKid, newKid] = await Promise.all([tokens(a, 100), tokens(b, 100)]);
    const interleaved = oldKid.flatMap((t, i) => [t, newKid[i]!]);
    expect(await traffic(auth, interleaved)).toEqual({ ok: 200, refused: 0 });
    // One fetch found B: the new kid was fetched once, not once per request.
    expect(s.hits()).toBe(2);

    s.serve([b]);
    expect(await traffic(auth, await tokens(b, 200))).toEqual({ ok: 200, refused: 0 });
    expect(jwks.status().keys.map((k) => k.kid)).toEqual(["key-a", "key-b"]);

    // Once a fetch shows A gone, A no longer verifies, cached verifications of A tokens included.
    const cachedA = `Bearer ${(await tokens(a, 1))[0]!}`;
    await auth.authenticate(cachedA);
    expect(auth.peek(cachedA)).toBeDefined();
    await jwks.refresh();
    expect(jwks.status().keys.map((k) => k.kid)).toEqual(["key-b"]);
    expect(auth.peek(cachedA)).toBeUndefined();
    expect(await traffic(auth, [cachedA.slice(7)])).toEqual({ ok: 0, refused: 1 });
  });

  it("keeps the cached keys while the endpoint is down, and says so", async () => {
    const b = await edKey("key-b");
    const s = await server([b]);
    // maxAgeMs 1: the set is always stale, so every request may start a background refresh.
    const jwks = keySet(s.url, { cooldownMs: 100, maxAgeMs: 1 });
    const auth = authWith(jwks);
    await jwks.refresh();
    const refreshedAt = jwks.status().last_refresh;
    expect(refreshedAt).not.toBeNull();

    s.setDown(true);
    await jwks.refresh();
    expect(jwks.status().last_error).toMatch(/503/);
    expect(await traffic(auth, await tokens(b, 300))).toEqual({ ok: 300, refused: 0 });
    expect(jwks.status()).toMatchObject({
      last_refresh: refreshedAt,
      keys: [{ kid: "key-b", alg: "EdDSA" }],
    });

    s.setDown(false);
    await jwks.refresh();
    expect(jwks.status().last_error).toBeNull();
    expect(await traffic(auth, await tokens(b, 10))).toEqual({ ok: 10, refused: 0 });
  });

  it("fetches at most once per cool-down for an unknown kid under 1,000 requests", async () => {
    const b = await edKey("key-b");
    const stranger = await edKey("key-x");
    const s = await server([b]);
    const jwks = keySet(s.url, { cooldownMs: 60_000 });
    const auth = authWith(jwks);
    const unknown = await tokens(stranger, 1_000);
    expect(await traffic(auth, unknown, 50)).toEqual({ ok: 0, refused: 1_000 });
    expect(s.hits()).toBe(1);
    // The known key still verifies without another fetch.
    expect(await traffic(auth, await tokens(b, 5))).toEqual({ ok: 5, refused: 0 });
    expect(s.hits()).toBe(1);
  });

  it("makes many new kids at once share the one fetch the cool-down allows", async () => {
    const b = await edKey("key-b");
    const s = await server([b]);
    const jwks = keySet(s.url, { cooldownMs: 300 });
    const auth = authWith(jwks);
    await jwks.refresh();
    const strangers = await Promise.all(Array.from({ length: 200 }, (_, i) => edKey(`stranger-${i}`)));
    const forged = await Promise.all(strangers.map((k) => edToken(k)));
    expect(await traffic(auth, forged, 200)).toEqual({ ok: 0, refused: 200 });
    expect(s.hits()).toBe(2);
  });

  it("refuses HS256 signed with the endpoint's public key as the secret", async () => {
    const b = await edKey("key-b");
    const s = await server([b]);
    const auth = authWith(keySet(s.url, { cooldownMs: 100 }));
    const { SignJWT } = await import("jose");
    const secret = new TextEncoder().encode(JSON.stringify(b.jwk));
    const forged = await new SignJWT({ sub: "c", exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: "HS256", kid: "key-b" })
      .sign(secret);
    expect(await traffic(auth, [forged])).toEqual({ ok: 0, refused: 1 });
  });
});
