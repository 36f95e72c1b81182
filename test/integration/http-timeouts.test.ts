// The API server's HTTP timeouts (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS,
// HTTP_KEEP_ALIVE_TIMEOUT_MS), over raw sockets: a client that trickles its headers or its body is
// answered 408 and cut off (node's default held an authenticated slow body 300 s); an idle
// keep-alive connection is closed; and long responses — a sync wait, an event stream — are not cut.
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSystem, readSse, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;
let bearer: string;

beforeAll(async () => {
  sys = await startSystem({
    env: {
      HTTP_HEADERS_TIMEOUT_MS: "500",
      HTTP_REQUEST_TIMEOUT_MS: "1000",
      HTTP_KEEP_ALIVE_TIMEOUT_MS: "1000",
      SSE_HEARTBEAT_MS: "200",
    },
  });
  bearer = await sys.token("slow-client");
});
afterAll(async () => {
  await sys?.close();
});

interface RawConnection {
  readonly socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Resolves with what the server sent once it closed the connection. */
  readonly closed: Promise<string>;
}

function open(): Promise<RawConnection> {
  const { port } = new URL(sys.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), "127.0.0.1");
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (data += d));
    const closed = new Promise<string>((r) => socket.once("close", () => r(data)));
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => undefined);
      resolve({ socket, received: () => data, closed });
    });
  });
}

/** Writes `text` one byte every `everyMs` until the server closes the connection or it is all sent. */
function trickle(conn: RawConnection, text: string, everyMs = 50): () => void {
  let i = 0;
  const timer = setInterval(() => {
    if (conn.socket.destroyed || i >= text.length) return clearInterval(timer);
    conn.socket.write(text[i++]!);
  }, everyMs);
  return () => clearInterval(timer);
}

/** Waits for the server to close the connection, failing after `boundMs` (far above the limits). */
async function closedByServer(conn: RawConnection, boundMs = 15_000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      conn.socket.destroy();
      reject(new Error(`the server kept the connection open; it sent ${JSON.stringify(conn.received())}`));
    }, boundMs);
  });
  try {
    return await Promise.race([conn.closed, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** The problem document of a raw answer, after checking its status line and request id headers. */
function problemIn(sent: string, status: number): Record<string, unknown> {
  expect(sent).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  const [head = "", body = ""] = sent.split("\r\n\r\n");
  expect(head).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/);
  const id = /\r\nx-request-id: (req_[A-Za-z0-9]+)\r\n/.exec(head)?.[1];
  expect(id).toBeDefined();
  const problem = JSON.parse(body) as Record<string, unknown>;
  expect(problem).toMatchObject({ status, request_id: id });
  return problem;
}

describe("HTTP server timeouts", () => {
  it("answers 408 and closes when an authenticated body trickles in slower than the request timeout", async () => {
    const conn = await open();
    const body = JSON.stringify({
      ...{ modality: "image", family: "flux", model: "schnell", task: "t2i" },
      prompt: "x".repeat(2000),
    });
    conn.socket.write(
      `POST /queue HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer ${bearer}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
    );
    const stop = trickle(conn, body);
    try {
      const sent = await closedByServer(conn);
      expect(problemIn(sent, 408)).toMatchObject({ error: "request_timeout" });
    } finally {
      stop();
    }
  });

  it("answers headers past node's limit and a malformed request with problem documents", async () => {
    const big = await open();
    big.socket.write(
      `GET /queue HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer ${"a".repeat(20_000)}\r\n\r\n`,
    );
    expect(problemIn(await closedByServer(big), 431)).toMatchObject({ error: "headers_too_large" });
    const bad = await open();
    bad.socket.write("NOT AN HTTP REQUEST\r\n\r\n");
    expect(problemIn(await closedByServer(bad), 400)).toMatchObject({
      error: "validation_error",
      details: { field: "request" },
    });
  });

  it("answers 408 and closes when the headers trickle in slower than the headers timeout", async () => {
    const conn = await open();
    const stop = trickle(
      conn,
      `GET /health HTTP/1.1\r\nHost: gateway\r\nX-Padding: ${"p".repeat(400)}\r\n\r\n`,
    );
    try {
      expect(problemIn(await closedByServer(conn), 408)).toMatchObject({ error: "request_timeout" });
    } finally {
      stop();
    }
  });

  it("announces the keep-alive timeout and closes an idle keep-alive connection", async () => {
    const conn = await open();
    conn.socket.write("GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n");
    const sent = await closedByServer(conn);
    expect(sent).toMatch(/^HTTP\/1\.1 200 /);
    expect(sent.toLowerCase()).toContain("keep-alive: timeout=1\r\n");
  });

  it("does not cut a sync wait that lasts longer than the request timeout", async () => {
    sys.sim.setConfig({ stepMs: 100 });
    try {
      // 20 steps of 100 ms: about 2 s of waiting after a body received at once.
      const res = await sys.call("/image/flux/schnell/t2i?format=512", {
        method: "POST",
        token: bearer,
        body: JSON.stringify({ prompt: "a slow render", steps: 20 }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/png");
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });

  it("does not cut an event stream that lasts longer than the request timeout", async () => {
    sys.sim.setConfig({ stepMs: 100 });
    try {
      const queued = await sys.call("/queue", {
        method: "POST",
        token: bearer,
        body: JSON.stringify({
          modality: "image",
          family: "flux",
          model: "schnell",
          task: "t2i",
          format: "512",
          prompt: "streamed",
          steps: 20,
        }),
      });
      expect(queued.status).toBe(202);
      const { id } = (await queued.json()) as { id: string };
      const stream = await sys.call(`/jobs/${id}/events`, { token: bearer });
      const events = await readSse(stream, (e) => e.event === "complete" || e.event === "error", 20_000);
      expect(events.at(-1)?.event).toBe("complete");
      expect(events.filter((e) => e.event === "progress").length).toBeGreaterThan(0);
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });
});
