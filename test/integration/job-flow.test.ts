// The job flow through a whole in-process gateway: submit, SSE, 303, bytes, sync, ownership.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import sharp from "sharp";
import { pngDimensions } from "../helpers/processes.js";
import { readSse, startSystem, waitFor, type TestSystem } from "../helpers/system.js";
import { createKeys } from "../../src/queues/keys.js";

let sys: TestSystem;
let alice: string;
let bob: string;

beforeAll(async () => {
  sys = await startSystem();
  alice = await sys.token("alice");
  bob = await sys.token("bob");
});
afterAll(async () => {
  await sys?.close();
});

const fox = {
  modality: "image",
  family: "flux",
  model: "schnell",
  task: "t2i",
  prompt: "a red fox in the snow",
};

describe("async job flow", () => {
  it("queues, streams events in order, redirects to a PNG of the requested size", async () => {
    const res = await sys.call("/queue", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ ...fox, format: "portrait" }),
    });
    expect(res.status).toBe(202);
    const created = (await res.json()) as Record<string, unknown>;
    expect(created.id).toMatch(/^j_[A-Za-z0-9]{20,}$/);
    expect(created.status).toBe("queued");
    expect(typeof created.position).toBe("number");
    expect(created.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(res.headers.get("location")).toBe(`${sys.url}/jobs/${String(created.id)}`);
    expect(res.headers.get("link")).toBe(`<${sys.url}/jobs/${String(created.id)}/events>; rel="monitor"`);
    expect(res.headers.get("x-request-id")).toMatch(/^req_[A-Za-z0-9]{20,}$/);
    expect(res.headers.get("x-weyl-request-id")).toBe(res.headers.get("x-request-id"));

    const sse = await sys.call(`/jobs/${String(created.id)}/events`, { token: alice });
    expect(sse.status).toBe(200);
    expect(sse.headers.get("content-type")).toContain("text/event-stream");
    const events = await readSse(sse, (e) => e.event === "complete" || e.event === "error");
    const names = events
      .map((e) => e.event)
      .filter((n) => n !== "position" && n !== "progress" && n !== "preview");
    expect(names).toEqual(["started", "complete"]);
    const ids = events.map((e) => Number.parseFloat(e.id!));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const complete = JSON.parse(events.at(-1)!.data) as { output: string; gpu_ms: number };
    expect(complete.output).toMatch(new RegExp(`^${sys.url}/objects/sha256-[0-9a-f]{64}\\?exp=\\d+&sig=`));

    const job = await sys.call(`/jobs/${String(created.id)}`, { token: alice });
    expect(job.status).toBe(303);
    const location = job.headers.get("location")!;
    const body = (await job.json()) as Record<string, unknown>;
    expect(body.status).toBe("complete");
    expect(body.output).toBe(location);
    expect(body.progress).toBe(1);
    expect(body.attempts).toBe(1);
    expect(typeof body.gpu_ms).toBe("number");
    expect(body).not.toHaveProperty("position");

    const img = await fetch(location);
    expect(img.status).toBe(200);
    expect(img.headers.get("content-type")).toBe("image/png");
    expect(pngDimensions(new Uint8Array(await img.arrayBuffer()))).toEqual({ width: 768, height: 1024 });

    const json = await sys.call(`/jobs/${String(created.id)}?redirect=false`, { token: alice });
    expect(json.status).toBe(200);
    const plain = await sys.call(`/jobs/${String(created.id)}`, {
      token: alice,
      headers: { accept: "application/json" },
    });
    expect(plain.status).toBe(200);
  });

  it("runs each job on the backend exactly once", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await sys.call("/queue", {
        method: "POST",
        token: alice,
        body: JSON.stringify({ ...fox, prompt: `fox ${i}` }),
      });
      ids.push(((await res.json()) as { id: string }).id);
    }
    for (const id of ids) {
      await waitFor(async () => {
        const r = await sys.call(`/jobs/${id}?redirect=false`, { token: alice });
        return ((await r.json()) as { status: string }).status === "complete";
      });
    }
    const stats = sys.sim.stats();
    for (const id of ids) expect(stats.calls_by_id[id]).toBe(1);
  });

  it("reports another customer's job exactly like a missing one", async () => {
    const res = await sys.call("/queue", { method: "POST", token: alice, body: JSON.stringify(fox) });
    const { id } = (await res.json()) as { id: string };
    const theirs = await sys.call(`/jobs/${id}`, { token: bob });
    const missing = await sys.call(`/jobs/j_0000000000000000000000`, { token: bob });
    expect(theirs.status).toBe(404);
    expect(missing.status).toBe(404);
    const a = (await theirs.json()) as Record<string, unknown>;
    const b = (await missing.json()) as Record<string, unknown>;
    expect(a.error).toBe("not_found");
    expect(b.error).toBe("not_found");
    expect((await sys.call(`/jobs/${id}/events`, { token: bob })).status).toBe(404);
    expect((await sys.call(`/jobs/${id}`, { method: "DELETE", token: bob })).status).toBe(404);
  });
});

describe("input images", () => {
  it("moves an inline data: image into the CAS, hands its bytes to the backend, and lets its sender read it", async () => {
    const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: "#0a0" } })
      .png()
      .toBuffer();
    const digest = `sha256-${createHash("sha256").update(png).digest("hex")}`;
    const res = await sys.call("/queue", {
      method: "POST",
      token: alice,
      body: JSON.stringify({
        ...fox,
        task: "i2i",
        format: "512",
        image: `data:image/png;base64,${png.toString("base64")}`,
      }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const job = await waitFor(async () => {
      const j = (await (await sys.call(`/jobs/${id}?redirect=false`, { token: alice })).json()) as Record<
        string,
        any
      >;
      return j.status === "complete" || j.status === "error" ? j : undefined;
    });
    expect(job.status).toBe("complete");
    // the queued job holds the digest, never the inline bytes
    expect(job.request.image).toBe(digest);
    const mine = await sys.call(`/objects/${digest}`, { token: alice });
    expect(mine.status).toBe(200);
    expect(Buffer.from(await mine.arrayBuffer()).equals(png)).toBe(true);
    expect((await sys.call(`/objects/${digest}`, { token: bob })).status).toBe(404);
    expect((await sys.call(`/objects/${digest}`)).status).toBe(404);
  });

  it("serves byte ranges and 304 for a matching ETag", async () => {
    const res = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ prompt: "ranges" }),
    });
    const url = res.headers.get("content-location")!;
    const whole = Buffer.from(await res.arrayBuffer());
    const part = await fetch(url, { headers: { range: "bytes=10-19" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 10-19/${whole.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(whole.subarray(10, 20))).toBe(true);
    const again = await fetch(url);
    await again.arrayBuffer(); // an unread body would hold its connection open
    const etag = again.headers.get("etag")!;
    expect(etag).toMatch(/^"sha256-[0-9a-f]{64}"$/);
    expect((await fetch(url, { headers: { "if-none-match": etag } })).status).toBe(304);
    const tampered = url.replace(/sig=[^&]+/, "sig=AAAA");
    expect((await fetch(tampered)).status).toBe(404);
  });
});

describe("sync route", () => {
  it("answers 200 with the image bytes and the documented headers", async () => {
    const res = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ prompt: "a lighthouse", seed: 42 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("x-seed")).toBe("42");
    expect(res.headers.get("x-weyl-seed")).toBe("42");
    expect(Number(res.headers.get("x-duration-ms"))).toBeGreaterThan(0);
    expect(res.headers.get("x-weyl-duration-ms")).toBe(res.headers.get("x-duration-ms"));
    expect(res.headers.get("x-job-id")).toMatch(/^j_/);
    expect(res.headers.get("content-location")).toMatch(new RegExp(`^${sys.url}/objects/sha256-`));
    expect(pngDimensions(new Uint8Array(await res.arrayBuffer()))).toEqual({ width: 512, height: 512 });
  });

  it("resolves Hugging Face aliases in the path", async () => {
    const res = await sys.call("/image/black-forest-labs/FLUX.1-schnell/t2i?format=512", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ prompt: "alias" }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer(); // an unread body would hold its connection open
    const job = await sys.call(`/jobs/${res.headers.get("x-job-id")!}?redirect=false`, { token: alice });
    const body = (await job.json()) as { family: string; model: string };
    expect([body.family, body.model]).toEqual(["flux", "schnell"]);
  });

  it("answers WebP when the client prefers it", async () => {
    const res = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: alice,
      headers: { accept: "image/webp" },
      body: JSON.stringify({ prompt: "webp please" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/webp");
    await res.arrayBuffer();
  });

  it("answers JSON outputs for count > 1", async () => {
    const res = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ prompt: "two", count: 2 }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: string[] };
    expect(body.outputs).toHaveLength(2);
    expect(new Set(body.outputs).size).toBe(2);
  });
});

describe("deployment limits", () => {
  it("refuses a catalogue model that no configured backend serves", async () => {
    const only = await startSystem({
      backends: (url) => [
        {
          id: "flux-only",
          url,
          protocol: "kserve-v2",
          engine: "nunchaku",
          capacity: 2,
          models: ["flux/schnell"],
          streaming: false,
          timeout_ms: 60_000,
          timeouts: {},
        },
      ],
    });
    try {
      const t = await only.token("c");
      const res = await only.call("/queue", {
        method: "POST",
        token: t,
        body: JSON.stringify({
          modality: "video",
          family: "wan",
          model: "default",
          task: "t2v",
          prompt: "nobody runs me",
        }),
      });
      expect(res.status).toBe(404);
      const ok = await only.call("/queue", {
        method: "POST",
        token: t,
        body: JSON.stringify({ ...fox, format: "512" }),
      });
      expect(ok.status).toBe(202);
    } finally {
      await only.close();
    }
  });
});

describe("what the backend gets", () => {
  it("stores only generation fields in the request handed to the model (no queue options)", async () => {
    const res = await sys.call("/queue", {
      method: "POST",
      token: alice,
      body: JSON.stringify({
        ...fox,
        priority: "high",
        ttl: 3600,
        backend: "nunchaku",
        webhook: "https://hooks.example.com/x",
        idempotency_key: "secret-key",
      }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const stored = JSON.parse(
      (await sys.redis.client.hget(createKeys(sys.redis.prefix).job(id), "req"))!,
    ) as Record<string, unknown>;
    for (const field of [
      "priority",
      "ttl",
      "backend",
      "webhook",
      "webhook_events",
      "idempotency_key",
      "modality",
      "family",
      "model",
      "task",
      "format",
    ]) {
      expect(stored).not.toHaveProperty(field);
    }
    expect(stored).toMatchObject({ prompt: fox.prompt, width: 1024, height: 1024 });
  });
});

describe("backend choice", () => {
  it("runs a model on its catalogue default engine when backends of several engines serve it", async () => {
    const res = await sys.call("/queue", {
      method: "POST",
      token: alice,
      body: JSON.stringify({
        modality: "image",
        family: "sdxl",
        model: "base",
        task: "t2i",
        format: "512",
        prompt: "default engine",
      }),
    });
    const { id } = (await res.json()) as { id: string };
    const job = await waitFor(async () => {
      const j = (await (await sys.call(`/jobs/${id}?redirect=false`, { token: alice })).json()) as Record<
        string,
        any
      >;
      return j.status === "complete" ? j : undefined;
    });
    // sdxl: tensorrt is the catalogue's default, torch serves it too
    expect(job.backend).toBe("sim-tensorrt");
  });
});
