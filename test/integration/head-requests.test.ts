// HEAD is GET without a body (RFC 9110 §9.3.2), authentication included: a HEAD on an authenticated
// route without a token is 401; with one it answers the status GET would, with no body.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { createHash } from "node:crypto";
import { queueJob, startSystem, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;
let t: string;
let jobId: string;
let digest: string;

beforeAll(async () => {
  // No worker: jobs stay queued, so GET /jobs/{id} answers 200 (not the 303 of a complete job).
  sys = await startSystem({ worker: false });
  t = await sys.token("head-customer");
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#00f" } })
    .png()
    .toBuffer();
  digest = `sha256-${createHash("sha256").update(png).digest("hex")}`;
  jobId = await queueJob(sys, t, {
    modality: "image",
    family: "flux",
    model: "schnell",
    task: "i2i",
    prompt: "head",
    image: `data:image/png;base64,${png.toString("base64")}`,
  });
});
afterAll(async () => {
  await sys?.close();
});

const authenticated = () => ["/queue", `/jobs/${jobId}`, `/jobs/${jobId}/events`, "/models", "/models/loras"];

describe("HEAD", () => {
  it("asks for a token on every authenticated route (401, never 500, never skipped)", async () => {
    for (const path of authenticated()) {
      const res = await sys.call(path, { method: "HEAD" });
      expect(res.status, `HEAD ${path}`).toBe(401);
      expect(res.headers.get("www-authenticate"), `HEAD ${path}`).toMatch(/^Bearer/);
      expect(await res.text()).toBe("");
    }
  });

  it("refuses a bad token with 401", async () => {
    const res = await sys.call(`/jobs/${jobId}`, { method: "HEAD", token: "garbage" });
    expect(res.status).toBe(401);
  });

  it("answers with a token as GET does, without a body", async () => {
    for (const path of authenticated()) {
      const head = await sys.call(path, { method: "HEAD", token: t });
      const text = await head.text();
      const get = await sys.call(path.endsWith("/events") ? `/jobs/${jobId}` : path, { token: t });
      await get.body?.cancel();
      expect(head.status, `HEAD ${path}`).toBe(get.status);
      expect(head.status, `HEAD ${path}`).toBe(200);
      expect(text, `HEAD ${path}`).toBe("");
      expect(head.headers.get("x-request-id"), `HEAD ${path}`).toMatch(/^req_/);
    }
    const events = await sys.call(`/jobs/${jobId}/events`, { method: "HEAD", token: t });
    expect(events.headers.get("content-type")).toContain("text/event-stream");
    // a HEAD of the event stream holds no listener open
    expect(sys.listeners()).toBe(0);
  });

  it("reports another customer's job as missing (404), as GET does", async () => {
    const other = await sys.token("someone-else");
    expect((await sys.call(`/jobs/${jobId}`, { method: "HEAD", token: other })).status).toBe(404);
  });

  it("serves object headers to the owner and 404 to anyone else", async () => {
    const mine = await sys.call(`/objects/${digest}`, { method: "HEAD", token: t });
    expect(mine.status).toBe(200);
    expect(mine.headers.get("content-type")).toBe("image/png");
    expect(Number(mine.headers.get("content-length"))).toBeGreaterThan(0);
    expect(await mine.text()).toBe("");
    expect((await sys.call(`/objects/${digest}`, { method: "HEAD" })).status).toBe(404);
  });

  it("keeps the open routes open and answers 405 where only POST exists", async () => {
    expect((await sys.call("/health", { method: "HEAD" })).status).toBe(200);
    expect((await sys.call("/ready", { method: "HEAD" })).status).toBe(200);
    const post = await sys.call("/image/flux/schnell/t2i", { method: "HEAD", token: t });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("POST");
  });
});
