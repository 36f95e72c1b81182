// Request bodies in flight (issue 7, findings 1 and 6): a client that goes away mid-body is counted
// and logged at debug, never answered or logged as a server error; bodies in flight share a byte
// budget, refused fast with 503 when it is spent and released on every path.
import { connect, type Socket } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BODY_UNCOUNTED_BYTES } from "../../src/core/request-limits.js";
import { FLUX_SCHNELL_512, startSystem, waitFor, type TestSystem } from "../helpers/system.js";

interface LogLine {
  level: number;
  msg: string;
  err?: unknown;
}

const BUDGET = 64 * 1024;
const logs: LogLine[] = [];
let sys: TestSystem;
let token: string;
let admin: string;

beforeAll(async () => {
  const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  sys = await startSystem({ worker: false, logger, env: { BODY_BUDGET_BYTES: String(BUDGET) } });
  token = await sys.token("body-reads");
  admin = await sys.token("ops", { admin: true });
});
afterAll(async () => {
  await sys?.close();
});

interface Counters {
  client_aborts: number;
  budget_refusals: number;
  bytes_in_flight: number;
  reads_in_flight: number;
}

async function counters(): Promise<Counters> {
  const body = (await (await sys.call("/ready", { token: admin })).json()) as { requests?: Counters };
  return (
    body.requests ?? { client_aborts: -1, budget_refusals: -1, bytes_in_flight: -1, reads_in_flight: -1 }
  );
}

/** A raw connection that sent the headers of POST /queue and `sent` of its body. */
async function partialPost(
  head: Record<string, string>,
  sent: string,
): Promise<{ socket: Socket; answer: Promise<string> }> {
  const u = new URL(sys.url);
  const socket = connect(Number(u.port), u.hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let got = "";
  const answer = new Promise<string>((resolve) => {
    socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
    socket.on("close", () => resolve(got));
    socket.on("error", () => undefined);
  });
  const lines = [
    "POST /queue HTTP/1.1",
    `Host: ${u.host}`,
    `Authorization: Bearer ${token}`,
    "Content-Type: application/json",
    ...Object.entries(head).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.write(`${lines.join("\r\n")}\r\n\r\n${sent}`);
  return { socket, answer };
}

describe("a client that aborts its request body", () => {
  it.each([
    ["with a Content-Length, closing at once", { "Content-Length": "1000" }, '{"prompt":"a red f', "destroy"],
    ["with a Content-Length, half-closing", { "Content-Length": "1000" }, '{"prompt":"a red f', "end"],
    ["chunked, closing at once", { "Transfer-Encoding": "chunked" }, '10\r\n{"prompt":"a red\r\n', "destroy"],
  ] as const)("%s: counted, logged at debug, never a 500 or an error log", async (_what, head, sent, how) => {
    const before = await counters();
    const logged = logs.length;
    const { socket, answer } = await partialPost(head, sent);
    // The server is reading the body.
    await waitFor(async () => ((await counters()).reads_in_flight > 0 ? true : undefined));
    if (how === "end") socket.end();
    else socket.destroy();
    const after = await waitFor(async () => {
      const c = await counters();
      return c.client_aborts > before.client_aborts ? c : undefined;
    });
    expect(after.client_aborts).toBe(before.client_aborts + 1);
    expect(after.bytes_in_flight).toBe(0);
    const mine = logs.slice(logged);
    expect(mine.filter((l) => l.level >= 40)).toEqual([]);
    expect(mine.some((l) => l.level === 20 && /client closed the connection/.test(l.msg))).toBe(true);
    // Whatever reached a half-closed socket is not a server error.
    expect(await answer).not.toMatch(/^HTTP\/1\.1 5/);
  });

  it("answers an aborted body 400 invalid_json (the app's own answer, where a client could read it)", async () => {
    const before = await counters();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"prompt":"a red f'));
        controller.error(new Error("aborted"));
      },
    });
    const res = await sys.fetch(
      new Request(`${sys.url}/queue`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body,
        duplex: "half",
      }),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_json");
    expect((await counters()).client_aborts).toBe(before.client_aborts + 1);
  });
});

describe("the budget of bodies in flight (BODY_BUDGET_BYTES)", () => {
  const post = (body: string) =>
    sys.call("/queue", { method: "POST", token, body, headers: { "content-type": "application/json" } });
  /** A valid job padded with spaces to `size` bytes. */
  const jobOf = (size: number) => {
    const json = JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "a lighthouse" });
    return json + " ".repeat(Math.max(0, size - json.length));
  };

  it("refuses a body that would exceed it with 503 and Retry-After, and serves it once the budget is free", async () => {
    const before = await counters();
    // A slow upload that has sent most of the budget (past the uncounted first bytes) holds it.
    const held = await partialPost(
      { "Content-Length": String(10 * BUDGET) },
      "{" + " ".repeat(BUDGET + BODY_UNCOUNTED_BYTES - 1001),
    );
    await waitFor(async () => ((await counters()).bytes_in_flight === BUDGET - 1000 ? true : undefined));

    const refused = await post(jobOf(BODY_UNCOUNTED_BYTES + 2000));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(((await refused.json()) as { error: string }).error).toBe("unavailable");
    // A small one is never counted.
    expect((await post(jobOf(BODY_UNCOUNTED_BYTES - 100))).status).toBe(202);
    expect((await counters()).budget_refusals).toBe(before.budget_refusals + 1);

    held.socket.destroy();
    await waitFor(async () => ((await counters()).bytes_in_flight === 0 ? true : undefined));
    expect((await post(jobOf(BODY_UNCOUNTED_BYTES + 2000))).status).toBe(202);
  });

  it("is not held by connections that declare large bodies and send nothing", async () => {
    const idle = await Promise.all(
      [1, 2, 3].map(() => partialPost({ "Content-Length": String(BUDGET - 1000) }, "{")),
    );
    await waitFor(async () => ((await counters()).reads_in_flight >= 3 ? true : undefined));
    expect((await counters()).bytes_in_flight).toBe(0);
    expect((await post(jobOf(BODY_UNCOUNTED_BYTES + 2000))).status).toBe(202);
    for (const { socket } of idle) socket.destroy();
    await waitFor(async () => ((await counters()).reads_in_flight === 0 ? true : undefined));
  });

  it("refuses a chunked body when its chunks reach the budget", async () => {
    const chunks = [jobOf(BUDGET / 2).slice(0, -1), " ".repeat(BUDGET), "}"];
    const res = await sys.call("/queue", {
      method: "POST",
      token,
      headers: { "content-type": "application/json" },
      body: new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = chunks.shift();
          if (next === undefined) controller.close();
          else controller.enqueue(new TextEncoder().encode(next));
        },
      }),
      duplex: "half",
    });
    expect(res.status).toBe(503);
    await waitFor(async () => ((await counters()).bytes_in_flight === 0 ? true : undefined));
  });

  it("is released after every kind of answer", async () => {
    for (const [body, status] of [
      [jobOf(3000), 202],
      ["{", 400],
      ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 400],
      ["", 400],
      [JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "x", steps: 9999 }), 400],
    ] as const) {
      expect((await post(body)).status).toBe(status);
    }
    expect((await counters()).bytes_in_flight).toBe(0);
  });
});

describe("bodies as clients send them", () => {
  const BOM = new Uint8Array([0xef, 0xbb, 0xbf]);
  const job = new TextEncoder().encode(JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "a lighthouse" }));

  it.each([
    ["with a Content-Length", false],
    ["chunked, the mark split between chunks", true],
  ])("a body that starts with a UTF-8 byte order mark is read (%s)", async (_how, chunked) => {
    const bytes = new Uint8Array([...BOM, ...job]);
    const pieces = [bytes.subarray(0, 1), bytes.subarray(1, 2), bytes.subarray(2)];
    const res = await sys.call("/queue", {
      method: "POST",
      token,
      headers: { "content-type": "application/json" },
      ...(chunked
        ? {
            body: new ReadableStream<Uint8Array>({
              pull(controller) {
                const next = pieces.shift();
                if (next === undefined) controller.close();
                else controller.enqueue(next);
              },
            }),
            duplex: "half",
          }
        : { body: bytes }),
    });
    expect(res.status).toBe(202);
  });

  it("a body of only a byte order mark is empty", async () => {
    const res = await sys.call("/queue", { method: "POST", token, body: BOM });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("empty_body");
  });
});
