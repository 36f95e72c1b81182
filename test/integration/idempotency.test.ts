// Idempotent submits: replay, mismatch, header form, and a failed admission frees the key.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSystem, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;
let t: string;
beforeAll(async () => {
  sys = await startSystem({ worker: false });
  t = await sys.token("idem-customer");
});
afterAll(async () => {
  await sys?.close();
});

const body = { modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "once only" };

describe("idempotency", () => {
  it("replays the first 202 for the same key and body, with Idempotent-Replayed", async () => {
    const first = await sys.call("/queue", {
      method: "POST",
      token: t,
      body: JSON.stringify({ ...body, idempotency_key: "k-1" }),
    });
    expect(first.status).toBe(202);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const a = (await first.json()) as { id: string };
    // same body with keys in another order is the same request
    const again = await sys.call("/queue", {
      method: "POST",
      token: t,
      body: JSON.stringify({
        idempotency_key: "k-1",
        prompt: "once only",
        task: "t2i",
        model: "schnell",
        family: "flux",
        modality: "image",
      }),
    });
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("location")).toBe(first.headers.get("location"));
    expect(((await again.json()) as { id: string }).id).toBe(a.id);
    const depth = (await (await sys.call("/queue", { token: t })).json()) as { depth: { normal: number } };
    expect(depth.depth.normal).toBe(1);
  });

  it("answers 422 for the same key with another body", async () => {
    await sys.call("/queue", {
      method: "POST",
      token: t,
      body: JSON.stringify({ ...body, idempotency_key: "k-2" }),
    });
    const other = await sys.call("/queue", {
      method: "POST",
      token: t,
      body: JSON.stringify({ ...body, prompt: "different", idempotency_key: "k-2" }),
    });
    expect(other.status).toBe(422);
    expect(((await other.json()) as { error: string }).error).toBe("idempotency_mismatch");
  });

  it("accepts the key in the Idempotency-Key header and scopes keys per customer", async () => {
    const h = { "idempotency-key": "k-3" };
    const one = (await (
      await sys.call("/queue", { method: "POST", token: t, headers: h, body: JSON.stringify(body) })
    ).json()) as { id: string };
    const two = await sys.call("/queue", {
      method: "POST",
      token: t,
      headers: h,
      body: JSON.stringify(body),
    });
    expect(((await two.json()) as { id: string }).id).toBe(one.id);
    const other = await sys.token("someone-else");
    const theirs = (await (
      await sys.call("/queue", { method: "POST", token: other, headers: h, body: JSON.stringify(body) })
    ).json()) as { id: string };
    expect(theirs.id).not.toBe(one.id);
  });

  it("takes the header's key when the body's idempotency_key is null (unset, as generated clients send it)", async () => {
    const h = { "idempotency-key": "k-null" };
    const sent = JSON.stringify({ ...body, prompt: "null key", idempotency_key: null });
    const one = await sys.call("/queue", { method: "POST", token: t, headers: h, body: sent });
    expect(one.status).toBe(202);
    const two = await sys.call("/queue", { method: "POST", token: t, headers: h, body: sent });
    expect(two.status).toBe(202);
    expect(two.headers.get("idempotent-replayed")).toBe("true");
    expect(((await two.json()) as { id: string }).id).toBe(((await one.json()) as { id: string }).id);
  });

  it("frees the key when the admission fails", async () => {
    // the input image does not exist: admission fails after the key was reserved
    const missing = `sha256-${"0".repeat(64)}`;
    const bad = await sys.call("/queue", {
      method: "POST",
      token: t,
      body: JSON.stringify({ ...body, task: "i2i", image: missing, idempotency_key: "k-4" }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { details: { field: string } }).details.field).toBe("image");
    const good = await sys.call("/queue", {
      method: "POST",
      token: t,
      body: JSON.stringify({ ...body, idempotency_key: "k-4" }),
    });
    expect(good.status).toBe(202);
  });

  it("fingerprints with RFC 8785 (numbers by value) and answers 400, not 500, for a lone surrogate", async () => {
    // 1.0 and 1e0 are the number 1: the canonical bytes, hence the fingerprint, are the same
    const spelled = (seed: string): string =>
      `{"modality":"image","family":"flux","model":"schnell","task":"t2i","prompt":"numbers","seed":${seed},"idempotency_key":"k-5"}`;
    const one = await sys.call("/queue", { method: "POST", token: t, body: spelled("7") });
    expect(one.status).toBe(202);
    const two = await sys.call("/queue", { method: "POST", token: t, body: spelled("7.0e0") });
    expect(two.status).toBe(202);
    expect(two.headers.get("idempotent-replayed")).toBe("true");
    // JSON can spell a lone surrogate; canonical JSON cannot carry one
    const lone = `{"modality":"image","family":"flux","model":"schnell","task":"t2i","prompt":"\\ud800","idempotency_key":"k-6"}`;
    const bad = await sys.call("/queue", { method: "POST", token: t, body: lone });
    expect(bad.status).toBe(400);
    const problem = (await bad.json()) as { error: string; detail: string };
    expect(problem.error).toBe("validation_error");
    expect(problem.detail).toContain("lone surrogate");
  });
});
