// The sync route names its job in the first bytes of the answer to a client that asks for it
// (`Prefer: early-hints`) — a `103 Early Hints` with X-Job-Id, Location and a monitor Link right
// after admission — and a client that disconnects while waiting cancels its job
// (SYNC_CANCEL_ON_DISCONNECT, default on; off: the job goes on).
import { request, type ClientRequest, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSystem, waitFor, type TestSystem } from "../helpers/system.js";

const PATH = "/image/flux/schnell/t2i?format=512";

let sys: TestSystem;
let bearer: string;

beforeAll(async () => {
  sys = await startSystem();
  bearer = await sys.token("sync-leaver");
});
afterAll(async () => {
  await sys?.close();
});

interface Informational {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
}

/**
 * A sync call with node's http client, which reports 1xx answers as `information` events; it asks
 * for the 103 (`Prefer: early-hints`) unless `prefer` says otherwise.
 */
function syncCall(target: TestSystem, token: string, body: unknown, prefer = "early-hints") {
  const infos: Informational[] = [];
  let onInfo: ((i: Informational) => void) | undefined;
  const firstInfo = new Promise<Informational>((r) => (onInfo = r));
  const url = new URL(target.url + PATH);
  const payload = JSON.stringify(body);
  let req!: ClientRequest;
  const final = new Promise<{ status: number; headers: IncomingHttpHeaders; bytes: number }>(
    (resolve, reject) => {
      req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(payload),
            ...(prefer === "" ? {} : { prefer }),
          },
        },
        (res) => {
          let bytes = 0;
          res.on("data", (d: Buffer) => (bytes += d.length));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }));
          res.on("error", reject);
        },
      );
      req.on("information", (info) => {
        const i = { statusCode: info.statusCode, headers: info.headers };
        infos.push(i);
        onInfo?.(i);
      });
      req.on("error", reject);
      req.end(payload);
    },
  );
  return { req, infos, firstInfo, final };
}

/** A sync call over a raw socket: the whole answer as sent, 1xx included. */
async function rawSync(version: "1.0" | "1.1", headers: string, prompt: string): Promise<string> {
  const { port } = new URL(sys.url);
  const body = JSON.stringify({ prompt });
  const socket = connect(Number(port), "127.0.0.1");
  let text = "";
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => (text += d));
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  socket.write(
    `POST ${PATH} HTTP/${version}\r\nHost: gateway\r\nAuthorization: Bearer ${bearer}\r\n${headers}` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  await closed;
  return text;
}

async function jobOf(target: TestSystem, token: string, id: string) {
  const res = await target.call(`/jobs/${id}?redirect=false`, { token });
  return (await res.json()) as { status: string; error?: { code: string } };
}

/** The job's status once it is terminal. */
function terminal(target: TestSystem, token: string, id: string) {
  return waitFor(async () => {
    const job = await jobOf(target, token, id);
    return ["complete", "error", "cancelled"].includes(job.status) ? job : undefined;
  }, 20_000);
}

describe("sync route: 103 Early Hints", () => {
  it("names the admitted job in a 103 before the final 200, which carries the same id", async () => {
    const call = syncCall(sys, bearer, { prompt: "hinted" });
    const { status, headers, bytes } = await call.final;
    expect(status).toBe(200);
    expect(bytes).toBeGreaterThan(0);
    expect(call.infos).toHaveLength(1);
    const hint = call.infos[0]!;
    expect(hint.statusCode).toBe(103);
    const id = headers["x-job-id"] as string;
    expect(id).toMatch(/^j_[A-Za-z0-9]{20,}$/);
    expect(hint.headers["x-job-id"]).toBe(id);
    expect(hint.headers.location).toBe(`${sys.url}/jobs/${id}`);
    expect(hint.headers.link).toBe(`<${sys.url}/jobs/${id}/events>; rel="monitor"`);
  });

  it("fetch (undici) reads the final answer as before", async () => {
    const res = await sys.call(PATH, {
      method: "POST",
      token: bearer,
      body: JSON.stringify({ prompt: "fetched" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("x-job-id")).toMatch(/^j_/);
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
  });

  it("sends no 103 to an HTTP/1.0 client", async () => {
    const text = await rawSync("1.0", "Prefer: early-hints\r\n", "old client");
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).not.toContain(" 103 ");
  });

  it("sends no 103 to a client that did not ask for it (many take any 1xx for the final answer)", async () => {
    // Python's http.client (so requests and urllib3) and Java's HttpURLConnection return the 103 as
    // the response, with an empty body, and leave the real answer on the connection.
    const text = await rawSync("1.1", "Connection: close\r\nPrefer: wait=30\r\n", "plain client");
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).not.toContain(" 103 ");
    const call = syncCall(sys, bearer, { prompt: "no hints" }, "");
    expect((await call.final).status).toBe(200);
    expect(call.infos).toEqual([]);
  });
});

describe("sync route: a client that disconnects", () => {
  it("cancels its job (SYNC_CANCEL_ON_DISCONNECT defaults to on)", async () => {
    sys.sim.setConfig({ stepMs: 100 });
    try {
      // 40 steps of 100 ms: the client leaves long before the job could end.
      const call = syncCall(sys, bearer, { prompt: "left early", steps: 40 });
      call.final.catch(() => undefined);
      const id = (await call.firstInfo).headers["x-job-id"] as string;
      await waitFor(async () => (await jobOf(sys, bearer, id)).status === "running");
      call.req.destroy();
      const job = await terminal(sys, bearer, id);
      expect(job.status).toBe("cancelled");
      expect(job.error?.code).toBe("cancelled");
      // The wait let go of the job's events.
      await waitFor(async () => sys.listeners() === 0);
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });

  it("leaves its job running with SYNC_CANCEL_ON_DISCONNECT=false", async () => {
    const other = await startSystem({ env: { SYNC_CANCEL_ON_DISCONNECT: "false", SIM_STEP_MS: "50" } });
    try {
      const t = await other.token("sync-leaver");
      const call = syncCall(other, t, { prompt: "left, but wanted", steps: 20 });
      call.final.catch(() => undefined);
      const id = (await call.firstInfo).headers["x-job-id"] as string;
      call.req.destroy();
      expect((await terminal(other, t, id)).status).toBe("complete");
    } finally {
      await other.close();
    }
  });
});
