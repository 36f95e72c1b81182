// A WebSocket connection's bounds while a handler awaits (an auth refresh, the tenant lease): what
// may wait in its message chain, the message rate and the pre-auth byte cap before it is open, the
// lease given back even when its call failed. A fake socket and
// controllable authenticator and leases make "while the call is out" exact.
import { EventEmitter } from "node:events";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import { startSession, type SessionDeps, type WsConfig } from "../../src/api/ws/session.js";
import type { WsLeases } from "../../src/queues/ws-leases.js";

class FakeWs extends EventEmitter {
  bufferedAmount = 0;
  sent: { type: string; code?: string }[] = [];
  closed: [number, string] | undefined;
  send(data: string, cb: (err?: Error) => void) {
    this.sent.push(JSON.parse(data) as { type: string });
    cb();
  }
  close(code: number, reason: string) {
    this.closed ??= [code, reason];
    setImmediate(() => this.emit("close", code));
  }
  ping() {}
  terminate() {
    setImmediate(() => this.emit("close", 1006));
  }
}

/** A promise the test settles. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

const principal = { customerId: "c1", tier: "free", admin: false, expiresAt: Date.now() + 1e9 };
const config: WsConfig = {
  authTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  pingIntervalMs: 60_000,
  maxConnectionsPerTenant: 5,
  maxJobsPerConnection: 8,
  maxMessageBytes: 64 * 1024,
  messagesPerS: 10,
  highWaterBytes: 1 << 20,
  maxBufferedBytes: 4 << 20,
  slowReaderMs: 5_000,
};
const cancelMsg = Buffer.from(JSON.stringify({ type: "cancel", job_id: "j_aaaaaaaaaaaaaaaaaaaaaaaa" }));

interface Harness {
  ws: FakeWs;
  socket: EventEmitter;
  cancels: number;
  released: number;
  auth: { gate?: Promise<void> };
  lease: { gate?: Promise<void> };
  ended: Promise<void>;
}
const open: FakeWs[] = [];
afterEach(async () => {
  for (const ws of open.splice(0)) ws.terminate();
  await new Promise((r) => setImmediate(r));
});

function start(opts: { header: boolean; hold?: () => Promise<{ held: boolean; live: number }> }): Harness {
  const ws = new FakeWs();
  open.push(ws);
  const h: Harness = {
    ws,
    socket: new EventEmitter(),
    cancels: 0,
    released: 0,
    auth: {},
    lease: {},
  } as Harness;
  const api = {
    clock: () => Date.now(),
    authenticate: async () => {
      await h.auth.gate;
      return principal;
    },
    scheduler: {
      cancel: async () => {
        h.cancels++;
        return "missing";
      },
    },
  } as unknown as ApiDeps;
  const leases: WsLeases = {
    hold:
      opts.hold ??
      (async () => {
        await h.lease.gate;
        return { held: true, live: 1 };
      }),
    release: async () => {
      h.released++;
    },
  };
  const deps: SessionDeps = {
    api,
    services: {} as SessionDeps["services"],
    leases,
    config,
    logger: pino({ level: "silent" }),
  };
  const session = startSession(
    {
      ws: ws as never,
      socket: h.socket as never,
      connId: "conn1",
      ...(opts.header ? { initial: { principal, header: "Bearer x" } } : {}),
    },
    deps,
  );
  h.ended = session.ended;
  return h;
}

const settle = () => new Promise((r) => setTimeout(r, 20));
const authMsg = () => Buffer.from(JSON.stringify({ type: "auth", token: "tok_abcdefghijklmnop" }));

describe("a connection's message chain while a handler awaits", () => {
  it("closes 1008 once more than 2 × WS_MAX_MESSAGE_BYTES wait behind an auth refresh", async () => {
    const h = start({ header: true });
    await settle();
    const gate = deferred<void>();
    h.auth.gate = gate.promise;
    h.ws.emit("message", authMsg(), false);
    for (let i = 0; i < 3; i++) h.ws.emit("message", Buffer.alloc(config.maxMessageBytes, 0x20), false);
    expect(h.ws.closed?.[0]).toBe(1008);
    expect(h.ws.closed?.[1]).toMatch(/too many messages waiting/);
    gate.resolve();
    await h.ended;
  });

  it("closes 1008 when too many small messages wait, rate-limited ones included", async () => {
    const h = start({ header: true });
    await settle();
    const gate = deferred<void>();
    h.auth.gate = gate.promise;
    h.ws.emit("message", authMsg(), false);
    for (let i = 0; i < 1000 && h.ws.closed === undefined; i++) h.ws.emit("message", cancelMsg, false);
    expect(h.ws.closed?.[0]).toBe(1008);
    gate.resolve();
    await h.ended;
  });
});

describe("before the connection is open (its lease call is out)", () => {
  it("charges the message rate: messages over it are refused, not run", async () => {
    const gate = deferred<void>();
    const h = start({ header: true });
    h.lease.gate = gate.promise;
    for (let i = 0; i < 30; i++) h.ws.emit("message", cancelMsg, false);
    gate.resolve();
    await settle();
    expect(h.ws.closed).toBeUndefined();
    expect(h.cancels).toBeLessThanOrEqual(config.messagesPerS + 1);
    expect(h.ws.sent.filter((m) => m.code === "rate_limited").length).toBeGreaterThanOrEqual(18);
  });

  it("keeps counting the bytes before the auth until the lease is held (1009 beyond 16 KiB)", async () => {
    const gate = deferred<void>();
    const h = start({ header: false });
    h.lease.gate = gate.promise;
    h.socket.emit("data", Buffer.alloc(100));
    h.ws.emit("message", authMsg(), false);
    await settle(); // authenticated; the lease call is out
    h.socket.emit("data", Buffer.alloc(20_000));
    expect(h.ws.closed?.[0]).toBe(1009);
    gate.resolve();
    await h.ended;
  });
});

describe("the tenant lease", () => {
  it("is released at the close even when its call failed (it may have landed)", async () => {
    const h = start({ header: true, hold: () => Promise.reject(new Error("Command timed out")) });
    await settle();
    expect(h.ws.closed?.[0]).toBe(1013);
    await h.ended;
    expect(h.released).toBe(1);
  });
});
