// The WebSocket's bounds: the auth deadline, bytes before auth, idle close (never while a job is in
// flight), the per-tenant connection limit across processes (Redis leases that lapse), the message
// rate, the Origin allow-list and the heartbeat that drops a peer that stopped answering pings.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWsLeases } from "../../src/queues/ws-leases.js";
import { createApiKeyStore } from "../../src/queues/api-key-store.js";
import { FLUX_SCHNELL_512, startSystem, TEST_SECRET, waitFor, type TestSystem } from "../helpers/system.js";
import { testRedis } from "../helpers/redis.js";
import { closedWithin, openWs, upgradeStatus, wsUrl, type WsClient } from "../helpers/ws-client.js";

const PEPPER = "websocket-pepper-0123456789-abcdefghijk";

let sys: TestSystem;
let url: string;
const clients: WsClient[] = [];

beforeAll(async () => {
  sys = await startSystem({
    env: {
      WS_AUTH_TIMEOUT_MS: "300",
      WS_IDLE_TIMEOUT_MS: "1500",
      WS_MAX_CONNECTIONS_PER_TENANT: "2",
      WS_MESSAGES_PER_S: "5",
      WS_PING_INTERVAL_MS: "200",
      WS_ALLOWED_ORIGINS: "https://app.example.com",
      API_KEY_PEPPER: PEPPER,
      // a WebSocket is no HTTP request: these never cut it (the idle test's connection lives ~4 s)
      HTTP_HEADERS_TIMEOUT_MS: "500",
      HTTP_REQUEST_TIMEOUT_MS: "500",
      HTTP_KEEP_ALIVE_TIMEOUT_MS: "200",
    },
  });
  url = wsUrl(sys.url);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sys?.close();
});

async function connect(opts: Parameters<typeof openWs>[1]): Promise<WsClient> {
  const c = await openWs(url, opts);
  clients.push(c);
  return c;
}

/** True once the connection answers a ping: it is authenticated and holds its lease. */
async function answers(c: WsClient, id: string, timeoutMs = 5_000): Promise<boolean> {
  c.send({ type: "ping", id });
  try {
    await c.next((m) => m.id === id && m.type === "pong", timeoutMs);
    return true;
  } catch {
    return false;
  }
}

describe("authentication bounds", () => {
  it("closes 4401 when no auth message comes in time", async () => {
    const c = await connect({});
    const closed = await closedWithin(c);
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/no auth message within 300 ms/);
  });

  it("closes 1009 when a connection sends more than a small auth message before authenticating", async () => {
    const c = await connect({});
    c.send({ type: "auth", token: "x".repeat(20_000) });
    expect((await closedWithin(c)).code).toBe(1009);
  });
});

describe("credentials over a connection's life", () => {
  it("takes an API key, and closes 4401 once it is revoked", async () => {
    const keys = createApiKeyStore({
      redis: sys.redis.client,
      prefix: sys.redis.prefix,
      clock: () => Date.now(),
      tiers: Object.keys(sys.settings.tiers),
      pepper: new TextEncoder().encode(PEPPER),
    });
    const { key, info } = await keys.create({ customerId: "key-holder", tier: "pro" });
    const c = await connect({ token: key });
    expect(await answers(c, "with-key")).toBe(true);
    expect(await keys.revoke(info.prefix)).toBe("revoked");
    // the next ping interval checks the key again
    const closed = await closedWithin(c);
    expect(closed).toMatchObject({ code: 4401, reason: "the token is no longer valid" });
  });

  it("refreshes the token with a later auth message of the same customer, never another's", async () => {
    const c = await connect({});
    c.send({ type: "auth", token: await sys.token("refresher") });
    c.send({ type: "auth", token: await sys.token("refresher", { tier: "enterprise" }) });
    expect(await answers(c, "refreshed")).toBe(true);
    c.send({ type: "auth", token: await sys.token("somebody-else") });
    expect((await closedWithin(c)).code).toBe(4401);
  });
});

describe("idle connections", () => {
  it("closes a connection with nothing to do (4000), but not while its job runs", async () => {
    const t = await sys.token("idle-user");
    const idle = await connect({ token: t });
    const closed = await closedWithin(idle);
    expect(closed).toMatchObject({ code: 4000 });
    expect(closed.reason).toMatch(/idle/);

    sys.sim.setConfig({ stepMs: 60 });
    try {
      const busy = await connect({ token: t });
      const { modality, family, model, task, format } = FLUX_SCHNELL_512;
      // about 3.6 s of work, well beyond the idle timeout
      busy.send({
        type: "generate",
        id: "long",
        modality,
        family,
        model,
        task,
        request: { format, prompt: "busy", steps: 60 },
      });
      const done = await busy.next((m) => m.id === "long" && m.type === "complete");
      expect(done.output).toMatch(/^http/);
      expect((await closedWithin(busy)).code).toBe(4000);
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });
});

describe("connections per tenant", () => {
  it("refuses the one over the limit with 4429, and takes a new one once a place is free", async () => {
    const t = await sys.token("limited");
    const first = await connect({ token: t });
    const second = await connect({ token: t });
    expect(await answers(first, "p1")).toBe(true);
    expect(await answers(second, "p2")).toBe(true);
    const third = await connect({ token: t });
    const refused = await closedWithin(third);
    expect(refused.code).toBe(4429);
    expect(refused.reason).toMatch(/too many connections.*2/);
    // another customer is not affected
    const other = await connect({ token: await sys.token("someone-else") });
    expect(await answers(other, "o1")).toBe(true);

    await first.close();
    const again = await waitFor(async () => {
      const c = await connect({ token: t });
      return (await answers(c, "p3")) ? c : undefined;
    });
    expect(again.ws.readyState).toBe(again.ws.OPEN);
  });

  it("counts leases in Redis across processes; a dead process's leases lapse", async () => {
    const r = testRedis();
    try {
      // two API processes' stores on one Redis
      const a = createWsLeases(r.client, r.prefix);
      const b = createWsLeases(r.client, r.prefix);
      expect(await a.hold("acme", "c1", 1_000, 500, 2)).toEqual({ held: true, live: 1 });
      expect(await b.hold("acme", "c2", 1_000, 500, 2)).toEqual({ held: true, live: 2 });
      expect(await b.hold("acme", "c3", 1_100, 500, 2)).toEqual({ held: false, live: 2 });
      // a renewal of a held lease never counts against the limit
      expect(await a.hold("acme", "c1", 1_200, 500, 2)).toEqual({ held: true, live: 2 });
      // c2's process died at 1_000: its lease lapsed at 1_500; c1's was renewed until 1_700
      expect(await b.hold("acme", "c3", 1_600, 500, 2)).toEqual({ held: true, live: 2 });
      await a.release("acme", "c1");
      expect(await b.hold("acme", "c4", 1_650, 500, 2)).toEqual({ held: true, live: 2 });
    } finally {
      await r.cleanup();
    }
  });
});

describe("message rate, origins and heartbeat", () => {
  it("answers messages over the rate with rate_limited, then serves again", async () => {
    const c = await connect({ token: await sys.token("chatty") });
    expect(await answers(c, "warm")).toBe(true);
    for (let i = 0; i < 20; i++) c.send({ type: "ping", id: `burst-${i}` });
    const limited = await c.next((m) => m.type === "error" && m.code === "rate_limited");
    expect(limited).toMatchObject({ status: 429, retry_after: 1 });
    const pongs = () =>
      c.messages.filter((m) => m.type === "pong" && String(m.id).startsWith("burst-")).length;
    expect(pongs()).toBeLessThan(20);
    // the bucket refills: a ping is answered again (one try every 300 ms)
    let n = 0;
    await waitFor(async () => (await answers(c, `later-${n++}`, 300)) || undefined);
  });

  it("refuses a browser Origin outside WS_ALLOWED_ORIGINS (403), and takes the allowed one or none", async () => {
    const t = await sys.token("origins");
    const evil = await upgradeStatus(url, { origin: "https://evil.example", authorization: `Bearer ${t}` });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ error: "forbidden", details: { field: "origin" } });
    expect(
      (await upgradeStatus(url, { origin: "https://app.example.com", authorization: `Bearer ${t}` })).status,
    ).toBe(101);
    expect((await upgradeStatus(url, { authorization: `Bearer ${t}` })).status).toBe(101);
  });

  it("drops a peer that stops answering pings", async () => {
    const c = await connect({ token: await sys.token("silent"), options: { autoPong: false } });
    const closed = await closedWithin(c);
    // cut off without a closing handshake
    expect(closed.code).toBe(1006);
  });
});

describe("shutdown", () => {
  it("closes open connections with 1001", async () => {
    const own = await startSystem({ worker: false, env: { JWT_SECRET: TEST_SECRET } });
    const c = await openWs(wsUrl(own.url), { token: await own.token("leaving") });
    const closing = own.close();
    expect(await closedWithin(c)).toMatchObject({ code: 1001, reason: "server shutting down" });
    await closing;
  });
});
