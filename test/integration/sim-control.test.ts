// Who may change the simulator at run time (PUT /sim/config, POST /sim/stats/reset): loopback peers
// only, whatever address it listens on, unless SIM_CONFIG_TOKEN is set, which then is required.
// Real servers on loopback; a non-loopback peer is the same app given a socket with that address
// (the node adapter's bindings), since a test machine cannot be relied on to have another interface.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SIM_CONFIG, applyConfigPatch, type SimConfig } from "../../src/sim/config.js";
import { createSimApp, type WorkTracker } from "../../src/sim/app.js";
import { isLoopbackAddress } from "../../src/sim/control-guard.js";
import { createMediaCache } from "../../src/sim/media-cache.js";
import { createStatsRecorder } from "../../src/sim/stats.js";
import { startSimServer, type SimServer } from "../../src/sim/server.js";

const TOKEN = "sim-control-token-0123456789";

/** The simulator's app alone, answering as if the peer were `remoteAddress`. */
function appWithPeer(controlToken?: string) {
  let config: SimConfig = DEFAULT_SIM_CONFIG;
  const tracker: WorkTracker = {
    closing: () => false,
    open: () => new AbortController(),
    release: () => undefined,
    hold: () => undefined,
  };
  const app = createSimApp({
    config: () => config,
    setConfig: (patch) => {
      config = applyConfigPatch(config, patch);
    },
    stats: createStatsRecorder(),
    cache: createMediaCache(),
    random: Math.random,
    tracker,
    logger: undefined,
    ...(controlToken === undefined ? {} : { controlToken }),
  });
  const put = (remoteAddress: string, headers: Record<string, string> = {}) =>
    app.request(
      "/sim/config",
      {
        method: "PUT",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ step_ms: 99 }),
      },
      { incoming: { socket: { remoteAddress, remotePort: 40000, remoteFamily: "IPv4" } } },
    );
  return { put, config: () => config, app };
}

describe("isLoopbackAddress", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.9.8.7", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["10.0.0.5", false],
    ["192.168.1.2", false],
    ["::ffff:10.0.0.5", false],
    ["fe80::1", false],
    ["0.0.0.0", false],
    ["localhost", false],
    [undefined, false],
  ])("%s → %s", (address, loopback) => {
    expect(isLoopbackAddress(address)).toBe(loopback);
  });
});

describe("without SIM_CONFIG_TOKEN", () => {
  it("refuses a non-loopback peer with 403 and keeps the config", async () => {
    const sim = appWithPeer();
    for (const peer of ["10.1.2.3", "203.0.113.7", "::ffff:192.0.2.1", "2001:db8::1"]) {
      const res = await sim.put(peer);
      expect(res.status, peer).toBe(403);
      expect(await res.json()).toEqual({ error: expect.stringMatching(/loopback/) });
    }
    const reset = await sim.app.request(
      "/sim/stats/reset",
      { method: "POST" },
      {
        incoming: { socket: { remoteAddress: "10.1.2.3" } },
      },
    );
    expect(reset.status).toBe(403);
    expect(sim.config().stepMs).toBe(DEFAULT_SIM_CONFIG.stepMs);
  });

  it("serves a loopback peer, and refuses when the peer is unknown", async () => {
    const sim = appWithPeer();
    expect((await sim.put("127.0.0.1")).status).toBe(204);
    expect(sim.config().stepMs).toBe(99);
    const noSocket = await sim.app.request("/sim/config", { method: "PUT", body: "{}" });
    expect(noSocket.status).toBe(403);
  });

  it("reads (GET /sim/config, /sim/stats) stay open to anyone", async () => {
    const sim = appWithPeer();
    const env = { incoming: { socket: { remoteAddress: "10.1.2.3" } } };
    expect((await sim.app.request("/sim/config", {}, env)).status).toBe(200);
    expect((await sim.app.request("/sim/stats", {}, env)).status).toBe(200);
  });
});

describe("with SIM_CONFIG_TOKEN", () => {
  it("serves a non-loopback peer that carries the token", async () => {
    const sim = appWithPeer(TOKEN);
    expect((await sim.put("10.1.2.3", { authorization: `Bearer ${TOKEN}` })).status).toBe(204);
    expect(sim.config().stepMs).toBe(99);
  });

  describe("over HTTP on loopback", () => {
    let server: SimServer;
    beforeAll(async () => {
      server = await startSimServer({ config: DEFAULT_SIM_CONFIG, controlToken: TOKEN });
    });
    afterAll(async () => {
      await server?.close();
    });

    const put = (headers: Record<string, string>) =>
      fetch(`${server.url}/sim/config`, {
        method: "PUT",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ capacity: 3 }),
      });

    it("requires the token from loopback peers too (401 without or with a wrong one)", async () => {
      for (const headers of [
        {},
        { authorization: "Bearer wrong-token-0123456789" },
        { authorization: TOKEN },
      ]) {
        const res = await put(headers);
        expect([400, 401]).toContain(res.status);
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
        expect(await res.json()).toEqual({ error: expect.any(String) });
      }
      expect((await fetch(`${server.url}/sim/stats/reset`, { method: "POST" })).status).toBe(401);
      expect(server.config().capacity).toBe(DEFAULT_SIM_CONFIG.capacity);
    });

    it("changes the config with the right token", async () => {
      expect((await put({ authorization: `Bearer ${TOKEN}` })).status).toBe(204);
      expect(server.config().capacity).toBe(3);
    });
  });
});
