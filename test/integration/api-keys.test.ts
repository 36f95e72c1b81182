// API keys against a real Redis: the store keeps only a keyed hash (a scan of every key and value
// finds no key or secret), the verifier's cache answers for at most API_KEY_RECHECK_MS, a revocation
// message drops a key at once, last-used writes are throttled, and over HTTP a wrong secret, an
// unknown prefix and a malformed key get the very same 401 as a bad JWT.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKeyVerifier, type ApiKeyVerifier } from "../../src/api/api-key-auth.js";
import { listenForRevocations } from "../../src/api/api-key-revocations.js";
import { startFaultProxy } from "../helpers/tcp-proxy.js";
import { isAppError, type AppError } from "../../src/core/errors.js";
import { createApiKeyStore, type ApiKeyStore } from "../../src/queues/api-key-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { until } from "../helpers/processes.js";
import { redisUrl } from "../helpers/redis.js";
import { startSystem, type TestSystem } from "../helpers/system.js";

const PEPPER_TEXT = "integration-pepper-0123456789-abcdefghij";
const PEPPER = new TextEncoder().encode(PEPPER_TEXT);
const TIERS = ["free", "pro", "enterprise", "unlimited"];
const T0 = 1_900_000_000_000;

let sys: TestSystem;
let store: ApiKeyStore;
let now = T0;
const clock = () => now;

beforeAll(async () => {
  sys = await startSystem({ worker: false, env: { API_KEY_PEPPER: PEPPER_TEXT } });
  store = createApiKeyStore({
    redis: sys.redis.client,
    prefix: sys.redis.prefix,
    clock: () => Date.now(),
    tiers: [...TIERS, "legacy"],
    pepper: PEPPER,
  });
});
afterAll(async () => {
  await sys?.close();
});

function verifier(
  o: { recheckMs?: number; trustMs?: number; lastUsedMs?: number; pepper?: Uint8Array } = {},
): ApiKeyVerifier {
  return createApiKeyVerifier({
    store,
    pepper: o.pepper ?? PEPPER,
    tiers: TIERS,
    clock,
    recheckMs: o.recheckMs ?? 1_000,
    ...(o.trustMs === undefined ? {} : { trustMs: o.trustMs }),
    lastUsedMs: o.lastUsedMs ?? 60_000,
  });
}

/** A revocation listener of `v` on the test prefix's channel (the verifier's clock unless given). */
function listenerOf(subscriber: Redis, v: ApiKeyVerifier, recheckMs: number, listenerClock = clock) {
  return listenForRevocations({
    subscriber,
    channel: createKeys(sys.redis.prefix).apiKeyChannel,
    verifier: v,
    clock: listenerClock,
    recheckMs,
  });
}

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAppError(err), String(err)).toBe(true);
  return err as AppError;
}

describe("API key store", () => {
  it("creates keys whose record holds a hash, lists them without it, checks tiers, names and expiry", async () => {
    const a = await store.create({ customerId: "store-a", tier: "pro", name: "ci runner", admin: true });
    const b = await store.create({ customerId: "store-b", expiresAt: Date.now() + 60_000 });
    expect(a.key).toMatch(/^rk_[a-z0-9]{12}_[A-Za-z0-9]{43}$/);
    expect(a.info).toMatchObject({ customerId: "store-a", tier: "pro", name: "ci runner", admin: true });
    expect(b.info.tier).toBe("free");
    const c = await store.create({ customerId: "store-c", ttlMs: 90_000 });
    expect(c.info.expiresAt).toBe(c.info.createdAt + 90_000);
    await expect(store.create({ customerId: "x", ttlMs: 0 })).rejects.toThrow(/ttlMs/);
    const found = await store.find(a.info.prefix);
    expect(found?.hash.byteLength).toBe(32);
    expect(found?.customerId).toBe("store-a");

    const listA = await store.list("store-a");
    expect(listA).toEqual([a.info]);
    expect(JSON.stringify(listA)).not.toContain("hash");
    const all = (await store.list()).map((k) => k.prefix);
    expect(all).toEqual(expect.arrayContaining([a.info.prefix, b.info.prefix]));
    expect(await store.list("nobody")).toEqual([]);

    await expect(store.create({ customerId: "x", tier: "platinum" })).rejects.toThrow(/unknown tier/);
    await expect(store.create({ customerId: "bad id" })).rejects.toThrow(/customer id/);
    await expect(store.create({ customerId: "x", name: "a\nb" })).rejects.toThrow(/name/);
    await expect(store.create({ customerId: "x", expiresAt: Date.now() - 1 })).rejects.toThrow(/future/);
    // beyond 100 years: a date `keys list` could not show (99999999d was stored and broke the list)
    for (const days of [99_999_999, 9_999_999_999]) {
      await expect(store.create({ customerId: "x", ttlMs: days * 86_400_000 })).rejects.toThrow(
        /at most 36500d ahead/,
      );
    }
    expect(
      (await store.create({ customerId: "x", ttlMs: 36_500 * 86_400_000 })).info.expiresAt,
    ).toBeDefined();
    const noPepper = createApiKeyStore({
      redis: sys.redis.client,
      prefix: sys.redis.prefix,
      clock,
      tiers: TIERS,
    });
    await expect(noPepper.create({ customerId: "x" })).rejects.toThrow(/pepper/);
  });

  it("revokes once, keeps the key listed as revoked, and reports an unknown prefix", async () => {
    const { info } = await store.create({ customerId: "store-r" });
    expect(await store.revoke(info.prefix)).toBe("revoked");
    expect(await store.revoke(info.prefix)).toBe("already_revoked");
    expect(await store.revoke("zzzzzzzzzzzz")).toBe("unknown");
    expect(await store.revoke("not a prefix")).toBe("unknown");
    const [listed] = await store.list("store-r");
    expect(listed?.revokedAt).toBeGreaterThan(0);
  });
});

describe("API key verifier", () => {
  it("asks Redis once per re-check for a prefix it has none of, then knows a key made there", async () => {
    now = T0;
    const v = verifier({ recheckMs: 1_000 });
    const bogus = `rk_${"q".repeat(12)}_${"Z".repeat(43)}`;
    for (let i = 0; i < 20; i++) expect((await refusal(v.authenticate(bogus))).status).toBe(401);
    expect(v.stats().lookups).toBe(1);
    now = T0 + 1_000;
    expect((await refusal(v.authenticate(bogus))).status).toBe(401);
    expect(v.stats().lookups).toBe(2);
  });

  it("accepts the key, refuses another secret, and serves the cache only while younger than recheckMs", async () => {
    now = T0;
    const { key, info } = await store.create({ customerId: "v-1", tier: "enterprise", admin: true });
    const v = verifier({ recheckMs: 1_000 });
    const p = await v.authenticate(key);
    expect(p).toEqual({
      customerId: "v-1",
      tier: "enterprise",
      admin: true,
      expiresAt: Number.MAX_SAFE_INTEGER,
      keyPrefix: info.prefix,
    });
    expect(v.peek(key)).toEqual(p);
    expect(v.stats().lookups).toBe(1);
    const wrong = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    expect((await refusal(v.authenticate(wrong))).status).toBe(401);
    expect(v.peek(wrong)).toBeUndefined();

    // Revoked without a message: the cached answer is served until recheckMs, never after.
    await store.revoke(info.prefix, { publish: false });
    now = T0 + 999;
    expect(v.peek(key)).toEqual(p);
    await until("the background re-check lands", async () => (v.stats().cached === 0 ? true : undefined));
    expect(v.peek(key)).toBeUndefined();
    now = T0 + 1_000;
    expect((await refusal(v.authenticate(key))).status).toBe(401);

    // Without any use in between, a stale entry is read again before it answers.
    const other = await store.create({ customerId: "v-1b" });
    const v2 = verifier({ recheckMs: 1_000 });
    await v2.authenticate(other.key);
    await store.revoke(other.info.prefix, { publish: false });
    now = T0 + 2_000;
    expect(v2.peek(other.key)).toBeUndefined();
    expect((await refusal(v2.authenticate(other.key))).status).toBe(401);
  });

  it("refuses an expired key from its cached expiry, a key of a tier that is gone, and every key without a pepper", async () => {
    now = Date.now();
    const exp = await store.create({ customerId: "v-2", expiresAt: now + 5_000 });
    const v = verifier({ recheckMs: 60_000 });
    expect((await v.authenticate(exp.key)).expiresAt).toBe(now + 5_000);
    now += 5_000;
    expect(v.peek(exp.key)).toBeUndefined();
    expect((await refusal(v.authenticate(exp.key))).status).toBe(401);

    const legacy = await store.create({ customerId: "v-3", tier: "legacy" });
    expect((await refusal(v.authenticate(legacy.key))).status).toBe(401);

    const fine = await store.create({ customerId: "v-4" });
    const off = createApiKeyVerifier({
      store,
      pepper: undefined,
      tiers: TIERS,
      clock,
      recheckMs: 1_000,
      lastUsedMs: 0,
    });
    expect((await refusal(off.authenticate(fine.key))).status).toBe(401);
    expect(off.peek(fine.key)).toBeUndefined();
  });

  it("wrong secret, unknown prefix and malformed key are refused with identical errors", async () => {
    const { key } = await store.create({ customerId: "v-5" });
    const v = verifier();
    const wrongSecret = key.slice(0, 16) + "x".repeat(43);
    const unknownPrefix = "rk_000000000000_" + key.slice(16);
    const malformed = "rk_nope";
    const errors = await Promise.all(
      [wrongSecret, unknownPrefix, malformed].map((t) => refusal(v.authenticate(t))),
    );
    const shape = (e: AppError) => ({
      code: e.code,
      status: e.status,
      message: e.message,
      headers: e.headers,
    });
    expect(shape(errors[1]!)).toEqual(shape(errors[0]!));
    expect(shape(errors[2]!)).toEqual(shape(errors[0]!));
    expect(errors[0]!.headers).toEqual({
      "WWW-Authenticate": 'Bearer realm="render-gateway", error="invalid_token"',
    });
  });

  it("writes the last use at most once per lastUsedMs", async () => {
    now = T0;
    const { key, info } = await store.create({ customerId: "v-6" });
    const v = verifier({ lastUsedMs: 1_000, recheckMs: 60_000 });
    await v.authenticate(key);
    await until("the first use is recorded", async () =>
      (await store.find(info.prefix))?.lastUsedAt === T0 ? true : undefined,
    );
    now = T0 + 500;
    v.peek(key);
    await v.authenticate(key);
    now = T0 + 1_000;
    v.peek(key);
    await until("the use after lastUsedMs is recorded", async () => {
      const at = (await store.find(info.prefix))?.lastUsedAt;
      return at === T0 + 1_000 ? true : at === T0 ? undefined : false;
    });
  });

  it("drops a key at once when its revocation is published, with a subscriber of its own", async () => {
    now = T0;
    const { key, info } = await store.create({ customerId: "v-7" });
    const v = verifier({ recheckMs: 60_000 });
    await v.authenticate(key);
    const subscriber = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const listener = listenerOf(subscriber, v, 60_000);
    try {
      await listener.start();
      expect(await store.revoke(info.prefix)).toBe("revoked");
      await until(
        "the message arrives",
        async () => (v.stats().revocations === 1 ? true : undefined),
        5_000,
        5,
      );
      expect(v.peek(key)).toBeUndefined();
      expect((await refusal(v.authenticate(key))).status).toBe(401);
    } finally {
      await listener.stop();
      subscriber.disconnect();
    }
  });
});

describe("revocation listener", () => {
  it("drops the whole cache when its connection comes back (messages may have been lost meanwhile)", async () => {
    now = T0;
    const { key } = await store.create({ customerId: "v-8" });
    const v = verifier({ recheckMs: 60_000 });
    await v.authenticate(key);
    const subscriber = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const id = Number(await subscriber.client("ID"));
    const listener = listenerOf(subscriber, v, 60_000);
    try {
      await listener.start();
      expect(v.stats().cached).toBe(1);
      await sys.redis.client.client("KILL", "ID", String(id));
      await until(
        "the reconnect empties the cache",
        async () => (v.stats().cached === 0 ? true : undefined),
        10_000,
        10,
      );
      // Still listening after the reconnect: a later revocation is heard. The key is cached again on
      // every round, because the confirmed resubscription drops the whole cache once more (a key
      // cached between the reconnect and that confirmation may have missed a message).
      const before = v.stats().revocations;
      await until(
        "a revocation after the reconnect is heard",
        async () => {
          await v.authenticate(key);
          await sys.redis.client.publish(createKeys(sys.redis.prefix).apiKeyChannel, key.slice(3, 15));
          return v.stats().revocations > before ? true : undefined;
        },
        30_000, // the resubscribe after a reconnect can take seconds on a loaded 2-core machine
        50,
      );
    } finally {
      await listener.stop();
      subscriber.disconnect();
    }
  }, 60_000);
});

describe("cache age and the revocation channel", () => {
  it("serves cached answers for trustMs while the channel delivers, recheckMs without it", async () => {
    now = T0;
    const { key, info } = await store.create({ customerId: "v-9" });
    const v = verifier({ recheckMs: 1_000, trustMs: 60_000 });
    // No channel yet: a revocation without its message is seen after recheckMs.
    await v.authenticate(key);
    expect(await store.revoke(info.prefix, { publish: false })).toBe("revoked");
    now = T0 + 1_000;
    expect((await refusal(v.authenticate(key))).status).toBe(401);

    const second = await store.create({ customerId: "v-9" });
    const subscriber = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const listener = listenerOf(subscriber, v, 1_000);
    try {
      await listener.start();
      await v.authenticate(second.key);
      const lookups = v.stats().lookups;
      // Up: answers are served for trustMs (every revocation comes as a message)...
      now += 30_000;
      await v.authenticate(second.key);
      expect(v.stats().lookups - lookups).toBeLessThanOrEqual(1);
      // ...and a published revocation still lands at once.
      expect(await store.revoke(second.info.prefix)).toBe("revoked");
      await until(
        "the message arrives",
        async () => (v.peek(second.key) === undefined ? true : undefined),
        5_000,
        5,
      );
      expect((await refusal(v.authenticate(second.key))).status).toBe(401);
    } finally {
      await listener.stop();
      subscriber.disconnect();
    }
  });

  it("falls back to recheckMs when the channel's connection stops answering", async () => {
    now = T0;
    const { key, info } = await store.create({ customerId: "v-10" });
    const v = verifier({ recheckMs: 200, trustMs: 60_000 });
    const proxy = await startFaultProxy(redisUrl());
    const subscriber = new Redis(proxy.url, { maxRetriesPerRequest: null, connectionName: "rk-sub-held" });
    const listener = listenerOf(subscriber, v, 200, () => Date.now());
    try {
      await listener.start();
      await v.authenticate(key);
      // The connection goes silent (no close, no answers), and the revocation's message is lost in it.
      const held = proxy.holdConnections("rk-sub-held");
      await held.started;
      expect(await store.revoke(info.prefix)).toBe("revoked");
      // Pings stop coming back: within 1.5 × recheckMs the cache age drops to recheckMs again.
      now = T0 + 500;
      await until(
        "the key is read again and refused",
        async () =>
          await v.authenticate(key).then(
            () => undefined,
            () => true,
          ),
        5_000,
        20,
      );
      held.release();
    } finally {
      await listener.stop();
      subscriber.disconnect();
      await proxy.close();
    }
  });
});

describe("API keys over HTTP", () => {
  it("answers wrong secret, unknown prefix, malformed key and a bad JWT with identical status, headers and body", async () => {
    const { key } = await store.create({ customerId: "http-1", tier: "pro" });
    expect((await sys.call("/queue", { token: key })).status).toBe(200);
    const id = "req_sameIdForEveryCall01";
    const answers = await Promise.all(
      [
        key.slice(0, 16) + "y".repeat(43),
        "rk_111111111111_" + key.slice(16),
        "rk_" + "q".repeat(30),
        "eyJhbGciOiJIUzI1NiJ9.e30.bad",
      ].map(async (t) => {
        const res = await sys.call("/queue", { token: t, headers: { "x-request-id": id } });
        const headers = Object.fromEntries([...res.headers].filter(([n]) => n !== "date"));
        return { status: res.status, headers, body: await res.text() };
      }),
    );
    expect(answers[0]!.status).toBe(401);
    for (const a of answers.slice(1)) expect(a).toEqual(answers[0]);
  });

  it("an admin key sees another customer's job; a plain key of a third customer does not", async () => {
    const owner = await store.create({ customerId: "http-owner", tier: "pro" });
    const admin = await store.create({ customerId: "http-ops", admin: true });
    const stranger = await store.create({ customerId: "http-stranger" });
    const res = await sys.call("/queue", {
      method: "POST",
      token: owner.key,
      body: JSON.stringify({ modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "k" }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    expect((await sys.call(`/jobs/${id}?redirect=false`, { token: owner.key })).status).toBe(200);
    expect((await sys.call(`/jobs/${id}?redirect=false`, { token: admin.key })).status).toBe(200);
    expect((await sys.call(`/jobs/${id}?redirect=false`, { token: stranger.key })).status).toBe(404);
  });

  it("leaves no key or secret in any Redis key or value after keys are made and used", async () => {
    const made = await Promise.all(
      [1, 2, 3].map((i) => store.create({ customerId: `scan-${i}`, name: `scan ${i}` })),
    );
    for (const { key } of made) expect((await sys.call("/queue", { token: key })).status).toBe(200);
    await store.revoke(made[0]!.info.prefix);
    const c = sys.redis.client;
    const texts: string[] = [];
    let cursor = "0";
    do {
      const [next, names] = await c.scan(cursor, "MATCH", `${sys.redis.prefix}*`, "COUNT", 500);
      cursor = next;
      for (const name of names) {
        texts.push(name);
        const type = await c.type(name);
        if (type === "string") texts.push((await c.get(name)) ?? "");
        else if (type === "hash") texts.push(JSON.stringify(await c.hgetall(name)));
        else if (type === "set") texts.push(JSON.stringify(await c.smembers(name)));
        else if (type === "zset") texts.push(JSON.stringify(await c.zrange(name, "0", "-1", "WITHSCORES")));
        else if (type === "list") texts.push(JSON.stringify(await c.lrange(name, 0, -1)));
        else if (type === "stream") texts.push(JSON.stringify(await c.xrange(name, "-", "+")));
        else texts.push(`unexpected type ${type}`);
      }
    } while (cursor !== "0");
    const all = texts.join("\n");
    expect(all).toContain(made[1]!.info.prefix); // the scan does see the keys' records
    for (const { key } of made) {
      expect(all).not.toContain(key);
      expect(all).not.toContain(key.slice(16)); // the secret
      expect(all).not.toContain(Buffer.from(key).toString("base64"));
      expect(all).not.toContain(Buffer.from(key).toString("hex"));
    }
    expect(all).not.toContain("unexpected type");
  });
});
