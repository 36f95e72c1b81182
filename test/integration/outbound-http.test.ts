// The outbound client against real local servers: names resolve at connect time and every refused
// address is refused there (an injected resolver stands in for DNS; `localhost` goes through the real
// one), literal private addresses in every spelling, ports, redirects, body limits, deadlines, TLS.
import { readFileSync } from "node:fs";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OutboundError, type OutboundHttp } from "../../src/core/ports.js";
import {
  createGuardedAgent,
  createOutboundHttp,
  guardedLookup,
  type OutboundHttpOptions,
  type Resolve,
} from "../../src/infra/outbound-http.js";

const TLS_DIR = join(import.meta.dirname, "fixtures", "tls");
const CERT = readFileSync(join(TLS_DIR, "images-test.crt"), "utf8");
const KEY = readFileSync(join(TLS_DIR, "images-test.key"), "utf8");

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A local server whose handler each test sets, counting the connections and requests it gets. */
interface Local {
  readonly port: number;
  connections: number;
  requests: string[];
  handler: Handler;
  readonly server: Server;
}

async function listen(server: Server, local: Omit<Local, "port" | "server">): Promise<Local> {
  server.on("connection", () => local.connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return Object.assign(local, { port: (server.address() as AddressInfo).port, server });
}

function newLocal(tls: boolean): Promise<Local> {
  const state = { connections: 0, requests: [] as string[], handler: ((_q, s) => s.end("ok")) as Handler };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    state.requests.push(req.url ?? "");
    state.handler(req, res);
  };
  const server = tls ? createHttpsServer({ cert: CERT, key: KEY }, onRequest) : createHttpServer(onRequest);
  return listen(server, state);
}

let plain: Local;
let secure: Local;
const clients: OutboundHttp[] = [];

beforeAll(async () => {
  [plain, secure] = await Promise.all([newLocal(false), newLocal(true)]);
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const l of [plain, secure]) {
    l.connections = 0;
    l.requests = [];
    l.handler = (_q, s) => s.end("ok");
  }
});
afterAll(async () => {
  for (const l of [plain, secure]) {
    l.server.closeAllConnections();
    await new Promise((r) => l.server.close(r));
  }
});

/** A resolver that answers `answers` for every name and records what it was asked. */
function fakeDns(...answers: string[]): Resolve & { asked: string[] } {
  const asked: string[] = [];
  const resolve = async (name: string) => {
    asked.push(name);
    return answers.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return Object.assign(resolve, { asked });
}

function client(o: Partial<OutboundHttpOptions> & { ports?: number[]; allowPrivate?: boolean } = {}) {
  const c = createOutboundHttp({
    policy: { allowPrivate: o.allowPrivate ?? false, allowedPorts: o.ports ?? [plain.port, secure.port] },
    connectTimeoutMs: 2_000,
    timeoutMs: o.timeoutMs ?? 5_000,
    maxBytes: o.maxBytes ?? 1024,
    extraCa: CERT,
    ...(o.resolve ? { resolve: o.resolve } : {}),
  });
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<OutboundError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OutboundError);
  return err as OutboundError;
}

describe("names resolved at connect time", () => {
  it("refuses a name that resolves to loopback, without connecting", async () => {
    const dns = fakeDns("127.0.0.1");
    const err = await failure(
      client({ resolve: dns }).request({ url: `https://images.example.test:${secure.port}/a.png` }),
    );
    expect(err.code).toBe("blocked_target");
    expect(err.message).not.toContain("127.0.0.1");
    expect(dns.asked).toEqual(["images.example.test"]);
    expect(secure.connections).toBe(0);
  });

  it.each([
    ["another loopback address", ["127.9.9.9"]],
    ["IPv6 loopback", ["::1"]],
    ["IPv4-mapped loopback", ["::ffff:127.0.0.1"]],
    ["loopback among several", ["127.0.0.1", "::1"]],
  ])("refuses a name that resolves to %s", async (_what, answers) => {
    const err = await failure(
      client({ resolve: fakeDns(...answers) }).request({
        url: `https://images.example.test:${secure.port}/a.png`,
      }),
    );
    expect(err.code).toBe("blocked_target");
    expect(secure.connections).toBe(0);
  });

  // The other ranges at the lookup itself: should the guard ever fail, a test must not connect to a
  // non-loopback address (nothing but loopback is ever a target from this machine).
  it.each([
    ["cloud metadata", ["169.254.169.254"]],
    ["AWS IPv6 metadata", ["fd00:ec2::254"]],
    ["an RFC 1918 address", ["10.0.0.8"]],
    ["CGNAT", ["100.64.0.1"]],
    ["NAT64 of metadata", ["64:ff9b::a9fe:a9fe"]],
    ["6to4 of a private address", ["2002:c0a8:101::1"]],
    ["one public and one loopback address (rebinding)", ["93.184.215.14", "127.0.0.1"]],
  ])("the connect-time lookup refuses a name that resolves to %s", async (_what, answers) => {
    const lookup = guardedLookup(fakeDns(...answers), false);
    for (const all of [true, false]) {
      const err = await new Promise<unknown>((resolve) =>
        lookup("images.example.test", { all }, (e) => resolve(e)),
      );
      expect(err).toBeInstanceOf(OutboundError);
      expect((err as OutboundError).code).toBe("blocked_target");
    }
  });

  it("the connect-time lookup passes public answers on, in the form net asks for", async () => {
    const lookup = guardedLookup(fakeDns("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"), false);
    const all = await new Promise<unknown>((resolve) =>
      lookup("x.example", { all: true }, (_e, a) => resolve(a)),
    );
    expect(all).toHaveLength(2);
    const v6 = await new Promise<unknown[]>((resolve) =>
      lookup("x.example", { family: 6 }, (_e, a, f) => resolve([a, f])),
    );
    expect(v6).toEqual(["2606:2800:21f:cb07:6820:80da:af6b:8b2c", 6]);
  });

  it("resolves once, when connecting: the address checked is the address connected to", async () => {
    const dns = fakeDns("127.0.0.1");
    const c = client({ resolve: dns, allowPrivate: true });
    const res = await c.request({ url: `https://images.example.test:${secure.port}/a.png` });
    expect([res.status, Buffer.from(res.body).toString()]).toEqual([200, "ok"]);
    expect(dns.asked).toEqual(["images.example.test"]);
  });

  it("refuses what the real resolver answers for localhost, at connect time too", async () => {
    const lookup = guardedLookup(
      (name) => import("node:dns/promises").then((d) => d.lookup(name, { all: true })),
      false,
    );
    const err = await new Promise<unknown>((resolve) =>
      lookup("localhost", { all: true }, (e) => resolve(e)),
    );
    expect(err).toBeInstanceOf(OutboundError);
    expect((err as OutboundError).code).toBe("blocked_target");
    // and through the whole client, by name before any lookup
    const viaClient = await failure(client().request({ url: `https://localhost:${secure.port}/a.png` }));
    expect(viaClient.code).toBe("blocked_target");
    expect(secure.connections).toBe(0);
  });
});

describe("literal addresses and the connector", () => {
  it.each([
    "127.0.0.1",
    "2130706433",
    "0x7f.1",
    "0177.0.0.1",
    "127.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "127.42.0.1",
    "0.0.0.0",
    "[::]",
    // Other ranges and transition spellings (NAT64, 6to4, Teredo, metadata, RFC 1918) are checked by
    // the same function, in test/unit/outbound-target.test.ts: a test here must never risk a
    // connection to a non-loopback address.
  ])("refuses %s", async (host) => {
    const err = await failure(client().request({ url: `https://${host}:${secure.port}/a.png` }));
    expect(err.code).toBe("blocked_target");
    expect(secure.connections).toBe(0);
  });

  it("refuses a literal private address in the connector itself (the check that holds)", async () => {
    const agent = createGuardedAgent({
      policy: { allowPrivate: false, allowedPorts: [secure.port] },
      connectTimeoutMs: 2_000,
      timeoutMs: 5_000,
      maxBytes: 1024,
    });
    try {
      for (const origin of [`https://127.0.0.1:${secure.port}`, `https://[::ffff:7f00:1]:${secure.port}`]) {
        const err = await agent.request({ origin, path: "/", method: "GET" }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(OutboundError);
        expect((err as OutboundError).code).toBe("blocked_target");
      }
      const port = await agent
        .request({ origin: `https://images.example.test:${plain.port + 1}`, path: "/", method: "GET" })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect((port as OutboundError).code).toBe("blocked_port");
    } finally {
      await agent.close();
    }
    expect(secure.connections).toBe(0);
  });
});

describe("ports, schemes, redirects, sizes, deadlines", () => {
  it("refuses a port outside the allow-list, with private targets allowed too", async () => {
    const c = client({ allowPrivate: true, ports: [443] });
    const err = await failure(c.request({ url: `https://127.0.0.1:${secure.port}/a.png` }));
    expect(err.code).toBe("blocked_port");
    expect(secure.connections).toBe(0);
  });

  it("takes http only when private targets are allowed", async () => {
    const strict = await failure(
      client({ resolve: fakeDns("127.0.0.1") }).request({
        url: `http://images.example.test:${plain.port}/`,
      }),
    );
    expect(strict.code).toBe("bad_url");
    const res = await client({ allowPrivate: true }).request({ url: `http://127.0.0.1:${plain.port}/` });
    expect(res.status).toBe(200);
  });

  it("does not follow a redirect", async () => {
    plain.handler = (req, res) => {
      if (req.url === "/a.png") res.writeHead(302, { location: "/b.png" }).end();
      else res.end("followed");
    };
    const err = await failure(
      client({ allowPrivate: true }).request({ url: `http://127.0.0.1:${plain.port}/a.png` }),
    );
    expect(err.code).toBe("redirect");
    expect(plain.requests).toEqual(["/a.png"]);
  });

  it("refuses an answer over the size limit, declared or streamed", async () => {
    plain.handler = (req, res) => {
      if (req.url === "/declared") res.writeHead(200, { "content-length": "4096" }).end(Buffer.alloc(4096));
      else {
        res.writeHead(200); // chunked, no length
        for (let i = 0; i < 8; i++) res.write(Buffer.alloc(512));
        res.end();
      }
    };
    const c = client({ allowPrivate: true, maxBytes: 1024 });
    expect((await failure(c.request({ url: `http://127.0.0.1:${plain.port}/declared` }))).code).toBe(
      "too_large",
    );
    expect((await failure(c.request({ url: `http://127.0.0.1:${plain.port}/streamed` }))).code).toBe(
      "too_large",
    );
    const fits = await c.request({ url: `http://127.0.0.1:${plain.port}/declared`, maxBytes: 4096 });
    expect(fits.body.byteLength).toBe(4096);
  });

  it("cuts an answer over the size limit when asked to (the status is what counts)", async () => {
    plain.handler = (req, res) => {
      if (req.url === "/declared")
        res.writeHead(202, { "content-length": "4096" }).end(Buffer.alloc(4096, 1));
      else {
        res.writeHead(410); // chunked, no length
        for (let i = 0; i < 8; i++) res.write(Buffer.alloc(512, 2));
        res.end();
      }
    };
    const c = client({ allowPrivate: true, maxBytes: 1024 });
    for (const [path, status, byte] of [
      ["/declared", 202, 1],
      ["/streamed", 410, 2],
    ] as const) {
      const res = await c.request({ url: `http://127.0.0.1:${plain.port}${path}`, truncate: true });
      expect(res.status).toBe(status);
      expect(res.body).toEqual(new Uint8Array(1024).fill(byte));
    }
  });

  it("gives up on a target that never answers", async () => {
    plain.handler = () => undefined; // headers never come
    const err = await failure(
      client({ allowPrivate: true, timeoutMs: 300 }).request({ url: `http://127.0.0.1:${plain.port}/slow` }),
    );
    expect(err.code).toBe("timeout");
  });

  it("gives up on a body that trickles past the deadline", async () => {
    plain.handler = (_req, res) => {
      res.writeHead(200);
      const t = setInterval(() => res.write("x"), 50);
      res.on("close", () => clearInterval(t));
    };
    const err = await failure(
      client({ allowPrivate: true, timeoutMs: 400, maxBytes: 1 << 20 }).request({
        url: `http://127.0.0.1:${plain.port}/trickle`,
      }),
    );
    expect(err.code).toBe("timeout");
  });

  it("checks the certificate against the name asked for, not the address", async () => {
    const c = client({ allowPrivate: true, resolve: fakeDns("127.0.0.1") });
    const ok = await c.request({ url: `https://images.example.test:${secure.port}/` });
    expect(ok.status).toBe(200);
    const err = await failure(c.request({ url: `https://other.example.test:${secure.port}/` }));
    expect(err.code).toBe("network");
  });

  it("answers other statuses as they are, and reads the body", async () => {
    plain.handler = (_req, res) => res.writeHead(404, { "x-thing": "1" }).end("nope");
    const res = await client({ allowPrivate: true }).request({ url: `http://127.0.0.1:${plain.port}/x` });
    expect([res.status, res.headers["x-thing"], Buffer.from(res.body).toString()]).toEqual([
      404,
      "1",
      "nope",
    ]);
  });
});
