// The API-key verifier's hot path against a real Redis: a key in use is recognised by the SHA-256
// digest its first use left in the cache entry, so repeated uses compute no HMAC (an HMAC cost a
// cached key about 10 µs of server CPU per request, five times a cached JWT's lookup); a wrong secret
// still meets the HMAC and is refused; the digest survives a background re-read of the same record and
// goes with a revocation.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKeyVerifier, type ApiKeyVerifier } from "../../src/api/api-key-auth.js";
import { isAppError } from "../../src/core/errors.js";
import { createApiKeyStore, type ApiKeyStore } from "../../src/queues/api-key-store.js";
import { until } from "../helpers/processes.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

const PEPPER = new TextEncoder().encode("hot-path-pepper-0123456789-abcdefghijklmn");
const TIERS = ["free", "pro"];
const T0 = 1_900_000_000_000;

let redis: TestRedis;
let store: ApiKeyStore;
let now = T0;

beforeAll(() => {
  redis = testRedis();
  store = createApiKeyStore({
    redis: redis.client,
    prefix: redis.prefix,
    clock: () => now,
    tiers: TIERS,
    pepper: PEPPER,
  });
});
afterAll(async () => {
  await redis?.cleanup();
});

function verifier(recheckMs: number): ApiKeyVerifier {
  return createApiKeyVerifier({
    store,
    pepper: PEPPER,
    tiers: TIERS,
    clock: () => now,
    recheckMs,
    lastUsedMs: 60_000,
  });
}

async function status(p: Promise<unknown>): Promise<number> {
  return p.then(
    () => 200,
    (e: unknown) => (isAppError(e) ? e.status : 0),
  );
}

describe("API key hot path", () => {
  it("matches a key in use by its digest: one HMAC for its first use, none for the next thousand", async () => {
    now = T0;
    const { key } = await store.create({ customerId: "hot-1", tier: "pro" });
    const v = verifier(60_000);
    const first = await v.authenticate(key);
    expect(v.stats().keyedHashes).toBe(1);
    for (let i = 0; i < 500; i++) {
      expect(await v.authenticate(key)).toBe(first);
      expect(v.peek(key)).toBe(first);
    }
    expect(v.stats()).toMatchObject({ keyedHashes: 1, lookups: 1, cacheHits: 1_000 });

    // A wrong secret on the cached prefix is not the digest: it meets the HMAC and is refused.
    const wrong = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    expect(await status(v.authenticate(wrong))).toBe(401);
    expect(v.peek(wrong)).toBeUndefined();
    expect(v.stats().keyedHashes).toBe(3);
    // …and leaves the right key's digest in place.
    expect(await v.authenticate(key)).toBe(first);
    expect(v.stats().keyedHashes).toBe(3);
  });

  it("keeps the digest across a background re-read of the same record and drops it with a revocation", async () => {
    now = T0;
    const { key, info } = await store.create({ customerId: "hot-2", tier: "pro" });
    const v = verifier(1_000);
    await v.authenticate(key);
    expect(v.stats()).toMatchObject({ keyedHashes: 1, lookups: 1 });

    // Half the age limit: the use starts a re-read (sent now, so its answer is young at T0 + 1 200 where
    // the first one is stale); once it lands, uses still compute no HMAC.
    now = T0 + 600;
    expect(v.peek(key)?.customerId).toBe("hot-2");
    expect(v.stats().lookups).toBe(2);
    now = T0 + 1_200;
    await until("the re-read lands", async () => v.peek(key));
    for (let i = 0; i < 10; i++) expect(v.peek(key)?.customerId).toBe("hot-2");
    expect(v.stats().keyedHashes).toBe(1);

    v.revoked(info.prefix);
    await store.revoke(info.prefix, { publish: false });
    expect(v.peek(key)).toBeUndefined();
    expect(await status(v.authenticate(key))).toBe(401);
  });
});
