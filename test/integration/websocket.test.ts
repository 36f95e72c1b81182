// The WebSocket `/ws` (API.md §3, §7): generate → ack → started → progress → frame → complete over a
// real API, worker and simulated backend; several jobs on one connection; auth by header and by first
// message; refusals with the HTTP codes; cancel and subscribe; invalid and oversized messages; and a
// disconnect that frees every listener while its job goes on.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { FLUX_SCHNELL_512, setSimDown, startSystem, waitFor, type TestSystem } from "../helpers/system.js";
import { closedWithin, openWs, upgradeStatus, wsUrl, type WsClient } from "../helpers/ws-client.js";

const dir = mkdtempSync(join(tmpdir(), "rg-ws-"));
const tiersFile = join(dir, "tiers.json");
// `tiny`: two submits a minute, to see the quota refuse over the socket.
writeFileSync(
  tiersFile,
  JSON.stringify({ ...DEFAULT_TIERS, tiny: { ...DEFAULT_TIERS.pro, submits_per_min: 2 } }),
);

let sys: TestSystem;
let url: string;
let t: string;
const clients: WsClient[] = [];

beforeAll(async () => {
  sys = await startSystem({ env: { TIERS_FILE: tiersFile, WS_MAX_MESSAGE_BYTES: "65536" } });
  url = wsUrl(sys.url);
  t = await sys.token("ws-user");
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sys?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(opts: Parameters<typeof openWs>[1] = { token: t }): Promise<WsClient> {
  const c = await openWs(url, opts);
  clients.push(c);
  return c;
}

/** A generate message for flux/schnell at 512 with `request` added to the prompt. */
function generate(id: string, request: Record<string, unknown>) {
  const { modality, family, model, task, format } = FLUX_SCHNELL_512;
  return { type: "generate", id, modality, family, model, task, request: { format, ...request } };
}

/** The messages about client id `id`, in order. */
const about = (c: WsClient, id: string) => c.messages.filter((m) => m.id === id);

describe("generate over the WebSocket", () => {
  it("acks, then streams started, progress, frames and complete with a fetchable output", async () => {
    sys.sim.setConfig({ stepMs: 60 });
    try {
      const c = await connect();
      c.send(generate("client_req_1", { prompt: "a lighthouse at dawn", steps: 12 }));
      const done = await c.next((m) => m.id === "client_req_1" && m.type === "complete");
      const msgs = about(c, "client_req_1");
      const types = msgs.map((m) => m.type);
      expect(types[0]).toBe("ack");
      expect(types.at(-1)).toBe("complete");
      const ack = msgs[0]!;
      expect(ack.job_id).toMatch(/^j_[A-Za-z0-9]{20,}$/);
      expect(ack.status).toBe("queued");
      expect(Number.isInteger(ack.position)).toBe(true);
      expect(ack.created_at).toMatch(/Z$/);
      // every message names the client's id and, from the ack on, the job
      expect(msgs.every((m) => m.job_id === ack.job_id)).toBe(true);
      expect(types.indexOf("started")).toBeGreaterThan(0);
      const progress = msgs.filter((m) => m.type === "progress");
      expect(progress.length).toBeGreaterThan(1);
      expect(types.indexOf("progress")).toBeGreaterThan(types.indexOf("started"));
      const values = progress.map((m) => m.progress as number);
      expect([...values].sort((a, b) => a - b)).toEqual(values);
      const frames = msgs.filter((m) => m.type === "frame");
      expect(frames.length).toBeGreaterThan(0);
      expect(frames[0]!.frame).toMatch(/^data:image\/jpeg;base64,/);
      // the output is the absolute signed URL GET /jobs/{id} gives
      expect(done.output).toMatch(new RegExp(`^${sys.url}/objects/sha256-[0-9a-f]{64}\\?exp=\\d+&sig=`));
      const job = (await (await sys.call(`/jobs/${ack.job_id}?redirect=false`, { token: t })).json()) as {
        output: string;
      };
      expect(done.output).toBe(job.output);
      const out = await fetch(done.output as string);
      expect(out.status).toBe(200);
      expect(out.headers.get("content-type")).toBe("image/png");
      await out.arrayBuffer();
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });

  it("runs several jobs on one connection at once, each message naming its job", async () => {
    sys.sim.setConfig({ stepMs: 40 });
    try {
      const c = await connect();
      const ids = ["a", "b", "c"];
      for (const id of ids) c.send(generate(id, { prompt: `job ${id}`, steps: 10 }));
      await Promise.all(ids.map((id) => c.next((m) => m.id === id && m.type === "complete")));
      const jobIds = ids.map((id) => about(c, id)[0]!.job_id as string);
      expect(new Set(jobIds).size).toBe(3);
      for (const [i, id] of ids.entries()) {
        const msgs = about(c, id);
        expect(msgs[0]!.type).toBe("ack");
        expect(msgs.at(-1)!.type).toBe("complete");
        expect(msgs.every((m) => m.job_id === jobIds[i])).toBe(true);
      }
      // all three were in flight together: every ack came before the first complete
      const firstComplete = c.messages.findIndex((m) => m.type === "complete");
      const lastAck = c.messages.map((m) => m.type).lastIndexOf("ack");
      expect(lastAck).toBeLessThan(firstComplete);
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });

  it("replays an idempotent submit: the same job, acked as replayed", async () => {
    const c = await connect();
    const request = { prompt: "only once", idempotency_key: "ws-idem-1" };
    c.send(generate("first", request));
    const first = await c.next((m) => m.id === "first" && m.type === "ack");
    c.send(generate("second", request));
    const second = await c.next((m) => m.id === "second" && m.type === "ack");
    expect(second.job_id).toBe(first.job_id);
    expect(second.replayed).toBe(true);
    expect(first.replayed).toBeUndefined();
  });
});

describe("refusals", () => {
  it("answers an unknown model and an invalid field with the HTTP codes, and stays open", async () => {
    const c = await connect();
    c.send({ ...generate("bad-model", { prompt: "x" }), model: "nope" });
    const notFound = await c.next((m) => m.id === "bad-model");
    expect(notFound).toMatchObject({ type: "error", code: "not_found", status: 404 });
    c.send(generate("bad-steps", { prompt: "x", steps: 9999 }));
    const invalid = await c.next((m) => m.id === "bad-steps");
    expect(invalid).toMatchObject({ type: "error", code: "validation_error", status: 400 });
    expect(invalid.details.field).toBe("steps");
    c.send(generate("high", { prompt: "x", priority: "high" }));
    expect(await c.next((m) => m.id === "high")).toMatchObject({ type: "ack" });
  });

  it("refuses submits over the tier's quota with rate_limited and retry_after", async () => {
    const c = await connect({ token: await sys.token("ws-tiny", { tier: "tiny" }) });
    for (const id of ["q1", "q2", "q3"]) c.send(generate(id, { prompt: id }));
    const third = await c.next((m) => m.id === "q3");
    expect(third).toMatchObject({ type: "error", code: "rate_limited", status: 429 });
    expect(third.retry_after).toBeGreaterThanOrEqual(1);
    expect((await c.next((m) => m.id === "q1")).type).toBe("ack");
  });

  it("refuses a second job under an id still in flight", async () => {
    sys.sim.setConfig({ stepMs: 50 });
    try {
      const c = await connect();
      c.send(generate("same", { prompt: "first", steps: 20 }));
      await c.next((m) => m.id === "same" && m.type === "ack");
      c.send(generate("same", { prompt: "second" }));
      const dup = await c.next((m) => m.id === "same" && m.type === "error");
      expect(dup).toMatchObject({ code: "conflict", details: { field: "id" } });
      await c.next((m) => m.id === "same" && m.type === "complete");
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });

  it("answers invalid JSON and unknown types with an error and keeps the connection", async () => {
    const c = await connect();
    c.send("{not json");
    expect(await c.next((m) => m.type === "error")).toMatchObject({ code: "invalid_json", status: 400 });
    const from = c.messages.length;
    c.send({ type: "explode", id: "x1" });
    expect(await c.next((m) => m.id === "x1", undefined, from)).toMatchObject({
      type: "error",
      code: "validation_error",
      details: { field: "type" },
    });
    c.send({ type: "ping", id: "still-open" });
    expect(await c.next((m) => m.id === "still-open")).toEqual({ type: "pong", id: "still-open" });
  });

  it("closes on an oversized message (1009) and on a binary one (1003)", async () => {
    const big = await connect();
    big.send(generate("big", { prompt: "x".repeat(70_000) }));
    expect((await closedWithin(big)).code).toBe(1009);
    const bin = await connect();
    bin.ws.send(Buffer.from([1, 2, 3]));
    expect(await closedWithin(bin)).toMatchObject({ code: 1003 });
  });
});

describe("authentication", () => {
  it("takes a first auth message when there is no header", async () => {
    const c = await connect({});
    c.send({ type: "auth", token: t });
    c.send(generate("after-auth", { prompt: "browser" }));
    await c.next((m) => m.id === "after-auth" && m.type === "complete");
  });

  it("answers a bad Authorization header 401 before the upgrade", async () => {
    const refused = await upgradeStatus(url, { authorization: "Bearer not-a-token" });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ error: "unauthorized", status: 401 });
    const accepted = await upgradeStatus(url, {
      authorization: `Bearer ${t}`,
      "x-request-id": "req_wsupgrade01",
    });
    expect(accepted.status).toBe(101);
    // the 101 names the request, as every answer does (the connection's id in the logs)
    expect(accepted.headers).toMatchObject({ "x-request-id": "req_wsupgrade01" });
  });

  it("closes 4401 on a bad token in the first message, and on any other first message", async () => {
    const bad = await connect({});
    bad.send({ type: "auth", token: "nope.nope.nope" });
    expect(await closedWithin(bad)).toMatchObject({ code: 4401 });
    const early = await connect({});
    early.send(generate("too-early", { prompt: "x" }));
    expect(await closedWithin(early)).toMatchObject({ code: 4401 });
  });

  it("never takes a token from the URL, and serves only /ws", async () => {
    const inUrl = await upgradeStatus(`${url}?access_token=${t}`);
    expect(inUrl.status).toBe(400);
    expect(JSON.parse(inUrl.body)).toMatchObject({ details: { field: "access_token" } });
    expect((await upgradeStatus(wsUrl(sys.url, "/jobs"), { authorization: `Bearer ${t}` })).status).toBe(404);
    // a GET without the upgrade is told what /ws is
    const plain = await sys.call("/ws", { token: t });
    expect(plain.status).toBe(400);
    expect(await plain.json()).toMatchObject({ details: { field: "upgrade", constraint: "websocket" } });
  });
});

describe("cancel, subscribe and disconnect", () => {
  it("cancels a job of the connection: its stream ends with error cancelled", async () => {
    sys.sim.setConfig({ stepMs: 100 });
    try {
      const c = await connect();
      c.send(generate("to-cancel", { prompt: "long", steps: 40 }));
      const started = await c.next((m) => m.id === "to-cancel" && m.type === "started");
      c.send({ type: "cancel", id: "cancel-1", job_id: started.job_id });
      const end = await c.next((m) => m.id === "to-cancel" && m.type === "error");
      expect(end).toMatchObject({ code: "cancelled", job_id: started.job_id });
      c.send({ type: "cancel", id: "cancel-2", job_id: started.job_id });
      expect(await c.next((m) => m.id === "cancel-2")).toMatchObject({ code: "conflict", status: 409 });
      c.send({ type: "cancel", id: "cancel-3", job_id: "j_doesnotexist0000000000" });
      expect(await c.next((m) => m.id === "cancel-3")).toMatchObject({ code: "not_found", status: 404 });
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });

  it("sends the queue position while a job waits, as it changes", async () => {
    await setSimDown(sys, true); // nothing starts: the jobs stay queued
    try {
      const c = await connect();
      c.send(generate("w1", { prompt: "first in line" }));
      const first = await c.next((m) => m.id === "w1" && m.type === "ack");
      c.send(generate("w2", { prompt: "second in line" }));
      const second = await c.next((m) => m.id === "w2" && m.type === "ack");
      expect(second.position).toBe(first.position + 1);
      const waiting = await c.next((m) => m.id === "w2" && m.type === "position");
      expect(waiting.position).toBe(second.position);
      c.send({ type: "cancel", job_id: first.job_id });
      const moved = await c.next(
        (m) => m.id === "w2" && m.type === "position" && m.position < second.position,
      );
      expect(moved.position).toBe(second.position - 1);
      c.send({ type: "cancel", job_id: second.job_id });
      await c.next((m) => m.id === "w2" && m.type === "error" && m.code === "cancelled");
    } finally {
      await setSimDown(sys, false);
    }
  });

  it("subscribes to a job of the caller (replayed to its end), never to another customer's", async () => {
    const a = await connect();
    a.send(generate("sub-src", { prompt: "watch me later" }));
    const done = await a.next((m) => m.id === "sub-src" && m.type === "complete");
    const b = await connect();
    b.send({ type: "subscribe", id: "again", job_id: done.job_id });
    const replayed = await b.next((m) => m.id === "again" && m.type === "complete");
    expect(replayed.output).toBe(done.output);
    expect(about(b, "again")[0]!.type).toBe("started");
    const other = await connect({ token: await sys.token("someone-else") });
    other.send({ type: "subscribe", id: "theirs", job_id: done.job_id });
    expect(await other.next((m) => m.id === "theirs")).toMatchObject({ type: "error", code: "not_found" });
  });

  it("frees every hub listener when the client goes away; the job goes on to complete", async () => {
    sys.sim.setConfig({ stepMs: 50 });
    try {
      const c = await connect();
      for (const id of ["d1", "d2"]) c.send(generate(id, { prompt: `leave ${id}`, steps: 40 }));
      const started = await c.next((m) => m.id === "d1" && m.type === "started");
      await c.next((m) => m.id === "d2" && m.type === "ack");
      expect(sys.listeners()).toBeGreaterThanOrEqual(2);
      c.ws.terminate();
      await waitFor(async () => sys.listeners() === 0 && sys.wsStats().jobs_in_flight === 0);
      const job = await waitFor(async () => {
        const j = (await (await sys.call(`/jobs/${started.job_id}?redirect=false`, { token: t })).json()) as {
          status: string;
        };
        return j.status === "complete" ? j : undefined;
      });
      expect(job.status).toBe("complete");
    } finally {
      sys.sim.setConfig({ stepMs: 2 });
    }
  });
});
