// The JWKS key set's fetch bounds and bookkeeping, with an injected fetch (no socket): oversized,
// redirected, failing and hanging endpoints, unusable keys skipped, what admins are shown.
import { generateKeyPairSync } from "node:crypto";
import { exportJWK, generateKeyPair } from "jose";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { createRemoteKeySet, type RemoteKeySet } from "../../src/api/jwks-remote.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const sets: RemoteKeySet[] = [];
afterEach(() => {
  for (const s of sets.splice(0)) s.close();
});

function keySet(fetch: typeof globalThis.fetch, url = "https://idp.example/jwks.json"): RemoteKeySet {
  const s = createRemoteKeySet({
    url: new URL(url),
    cooldownMs: 60_000,
    maxAgeMs: 600_000,
    timeoutMs: 200,
    maxBytes: 4_096,
    clock: Date.now,
    fetch,
  });
  sets.push(s);
  return s;
}

const answer =
  (body: string, status = 200, headers: Record<string, string> = {}): typeof globalThis.fetch =>
  () =>
    Promise.resolve(new Response(body, { status, headers }));

async function edJwk(kid: string) {
  const { publicKey } = await generateKeyPair("EdDSA", { extractable: true });
  return { ...(await exportJWK(publicKey)), kid };
}

describe("remote key set", () => {
  it("keeps the usable keys of a JWKS and counts the others as skipped", async () => {
    const rsaPrivate = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
      format: "jwk",
    });
    const doc = {
      keys: [
        await edJwk("good"),
        { kty: "oct", k: "c2VjcmV0", kid: "hmac" },
        { ...rsaPrivate, kid: "private" },
        { kty: "EC", crv: "P-384", x: "AA", y: "AA", kid: "p384" },
        { ...(await edJwk("enc")), use: "enc" },
      ],
    };
    const s = keySet(answer(JSON.stringify(doc)));
    await s.refresh();
    expect(s.status()).toMatchObject({ keys: [{ kid: "good", alg: "EdDSA" }], skipped: 4, last_error: null });
    expect(await s.resolve("EdDSA", "good")).toBeDefined();
    expect(await s.resolve("ES256", "good")).toBeUndefined();
  });

  it("finds a key by kid and algorithm when one kid names keys of two types", async () => {
    const { publicKey } = await generateKeyPair("ES256", { extractable: true });
    const doc = { keys: [{ ...(await exportJWK(publicKey)), kid: "shared" }, await edJwk("shared")] };
    const s = keySet(answer(JSON.stringify(doc)));
    await s.refresh();
    expect((await s.resolve("EdDSA", "shared"))?.alg).toBe("EdDSA");
    expect((await s.resolve("ES256", "shared"))?.alg).toBe("ES256");
    expect(await s.resolve("RS256", "shared")).toBeUndefined();
  });

  it.each([
    ["an oversized body", answer(JSON.stringify({ keys: [], pad: "x".repeat(5_000) })), /larger than 4096/],
    ["a declared oversized body", answer("{}", 200, { "content-length": "999999" }), /larger than 4096/],
    ["a redirect", answer("", 302, { location: "https://evil.example/" }), /answered 302/],
    ["a 500", answer("oops", 500), /answered 500/],
    ["not JSON", answer("<html>"), /unreadable/],
    ["not a JWKS", answer('{"keys": 3}'), /not a JWKS/],
    [
      "too many keys",
      answer(JSON.stringify({ keys: Array.from({ length: 101 }, () => ({})) })),
      /more than 100/,
    ],
  ])("records %s as the last error and keeps nothing", async (_name, fetch, message) => {
    const s = keySet(fetch);
    await s.refresh();
    expect(s.status().last_error).toMatch(message);
    expect(s.status().keys).toEqual([]);
    expect(s.status().last_refresh).toBeNull();
  });

  it("gives up on an endpoint that does not answer within the timeout", async () => {
    const hang: typeof globalThis.fetch = (_url, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason as Error));
      });
    const s = keySet(hang);
    const pending = s.refresh();
    // Collected garbage must not take the deadline with it (a weakly held AbortSignal.timeout did).
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    await pending;
    expect(s.status().last_error).toBe("no answer within 200 ms");
  });

  it("keeps the last good keys when a later fetch fails", async () => {
    let body = JSON.stringify({ keys: [await edJwk("k1")] });
    let status = 200;
    const s = keySet(() => Promise.resolve(new Response(body, { status })));
    await s.refresh();
    status = 503;
    body = "";
    await s.refresh();
    expect(s.status()).toMatchObject({
      keys: [{ kid: "k1" }],
      last_error: "JWKS endpoint answered 503",
      fetches: 2,
    });
    expect(await s.resolve("EdDSA", "k1")).toBeDefined();
  });

  it("shows admins the URL without credentials or query", () => {
    const s = keySet(answer("{}"), "https://user:pw@idp.example/jwks?token=abc");
    expect(s.status().url).toBe("https://idp.example/jwks");
  });

  it("keeps the URL's query and credentials out of a fetch error it keeps", async () => {
    const href = "https://user:pw@idp.example/jwks?token=abc";
    const s = keySet(
      () => Promise.reject(new TypeError(`cannot fetch ${new URL(href).href}: refused`)),
      href,
    );
    await s.refresh();
    expect(s.status().last_error).toBe("cannot fetch https://idp.example/jwks: refused");
  });

  it("lets any number of tokens of one new kid wait for the next fetch, and bounds the kids waiting", async () => {
    const a = await edJwk("key-a");
    const b = await edJwk("key-b");
    let published = [a];
    let calls = 0;
    const s = createRemoteKeySet({
      url: new URL("https://idp.example/jwks.json"),
      cooldownMs: 150,
      maxAgeMs: 600_000,
      timeoutMs: 1_000,
      maxBytes: 8_192,
      clock: Date.now,
      fetch: () => {
        calls += 1;
        return Promise.resolve(new Response(JSON.stringify({ keys: published })));
      },
    });
    sets.push(s);
    await s.refresh();
    // the provider rotates within the cool-down and signs 1,000 tokens with the new key at once;
    // 300 forged kids arrive with them
    published = [a, b];
    const rotated = Array.from({ length: 1_000 }, () => s.resolve("EdDSA", "key-b"));
    const forged = Array.from({ length: 300 }, (_, i) => s.resolve("EdDSA", `forged-${i}`));
    const got = await Promise.all(rotated);
    expect(got.every((k) => k?.kid === "key-b")).toBe(true);
    expect(await Promise.all(forged)).toEqual(Array(300).fill(undefined));
    // one fetch for all of them, after the cool-down
    expect(calls).toBe(2);
  });

  it("refuses at once the unknown kids beyond those waiting", async () => {
    const s = keySet(answer(JSON.stringify({ keys: [await edJwk("k1")] })));
    await s.refresh();
    const waiting = Array.from({ length: 256 }, (_, i) => s.resolve("EdDSA", `forged-${i}`));
    let settled = false;
    const beyond = s.resolve("EdDSA", "one-more").finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(true);
    await expect(beyond).resolves.toBeUndefined();
    // a kid already waiting may still be asked for
    let joined = false;
    const again = s.resolve("EdDSA", "forged-0").finally(() => (joined = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(joined).toBe(false);
    s.close();
    await Promise.all([...waiting, again]);
  });

  it("releases a token waiting for the next allowed fetch when closed", async () => {
    const s = keySet(answer(JSON.stringify({ keys: [await edJwk("k1")] })));
    await s.refresh();
    const waiting = s.resolve("EdDSA", "new-kid");
    s.close();
    await expect(waiting).resolves.toBeUndefined();
    expect(s.status().fetches).toBe(1);
  });

  it("never takes a kid for unknown from a fetch that started before the kid was asked for", async () => {
    const a = await edJwk("key-a");
    const b = await edJwk("key-b");
    let published = [a];
    let calls = 0;
    // each fetch reads the keys published when it starts, and answers 50 ms later
    const slow: typeof globalThis.fetch = () => {
      calls += 1;
      const body = JSON.stringify({ keys: published });
      return new Promise((resolve) => setTimeout(() => resolve(new Response(body)), 50));
    };
    const s = createRemoteKeySet({
      url: new URL("https://idp.example/jwks.json"),
      cooldownMs: 100,
      maxAgeMs: 600_000,
      timeoutMs: 1_000,
      maxBytes: 4_096,
      clock: Date.now,
      fetch: slow,
    });
    sets.push(s);
    await s.refresh();
    await new Promise((r) => setTimeout(r, 120));
    const stale = s.refresh(); // goes out before key-b is published
    published = [a, b];
    // asked while that fetch is in flight: it waits for a fetch that can know key-b
    expect(await s.resolve("EdDSA", "key-b")).toBeDefined();
    await stale;
    expect(calls).toBe(3);
  });

  it("refuses durations that are not positive integers", () => {
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() =>
        createRemoteKeySet({
          url: new URL("https://idp.example/"),
          cooldownMs: bad,
          maxAgeMs: 1,
          timeoutMs: 1,
          clock: Date.now,
        }),
      ).toThrow(RangeError);
  });
});
