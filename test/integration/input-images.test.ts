// What `image`/`mask` may point at: URLs (fetched by the gateway) must be public; stored objects must be
// the caller's (or come with a signed URL), and someone else's object looks exactly like a missing
// one; a sync request refused for capacity stores nothing.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signObjectPath } from "../../src/core/url-signing.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { startSystem, type TestSystem } from "../helpers/system.js";
import { inlinePng } from "../helpers/images.js";
import { createKeys } from "../../src/queues/keys.js";

// No worker reports backends: /queue accepts (the job waits for one), the sync route has no capacity.
let sys: TestSystem;
let alice: string;
let bob: string;
let admin: string;

beforeAll(async () => {
  sys = await startSystem({ worker: false });
  [alice, bob, admin] = await Promise.all([
    sys.token("alice"),
    sys.token("bob"),
    sys.token("root", { admin: true }),
  ]);
});
afterAll(async () => {
  await sys?.close();
});

const i2i = { modality: "image", family: "flux", model: "schnell", task: "i2i", prompt: "p" };
const edit = { modality: "image", family: "qwen", model: "edit", task: "edit", prompt: "p" };

async function queue(s: TestSystem, token: string, body: Record<string, unknown>) {
  const res = await s.call("/queue", { method: "POST", token, body: JSON.stringify(body) });
  const json = (await res.json()) as {
    error?: string;
    message?: string;
    details?: Record<string, unknown>;
  };
  // `status` is the HTTP status (a 202 body has a `status` member of its own).
  return { ...json, status: res.status };
}

describe("image URLs refused by their address", () => {
  it.each([
    ["image", i2i, "https://127.0.0.1/a.png"],
    ["image", i2i, "https://169.254.169.254/latest/meta-data/"],
    ["image", i2i, "https://[::ffff:127.0.0.1]/a.png"],
    ["image", i2i, "https://2130706433/a.png"],
    ["image", i2i, "https://localhost./a.png"],
    ["image", i2i, "https://metadata.google.internal/a.png"],
    ["mask", { ...edit, image: "https://example.com/photo.jpg" }, "https://10.0.0.8/m.png"],
  ])("refuses a private %s URL (%#) with 400 validation_error", async (field, body, url) => {
    const answer = await queue(sys, alice, { ...body, [field]: url });
    expect(answer.status).toBe(400);
    expect(answer.error).toBe("validation_error");
    expect(answer.details?.field).toBe(field);
  });

  // Accepted URLs are fetched by the gateway itself: input-image-fetch.test.ts serves them from a local
  // https server (allowed by WEBHOOK_ALLOW_PRIVATE); no test here may reach a public host.

  it("refuses a private image URL on the sync route too", async () => {
    const res = await sys.call("/image/flux/schnell/i2i", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ prompt: "p", image: "https://[::1]/a.png" }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { details: { field: string } }).details.field).toBe("image");
  });
});

describe("stored objects as inputs", () => {
  it("lets the owner and admins use a digest, and reports anyone else's exactly like a missing one", async () => {
    const { data, digest } = await inlinePng("#a00");
    expect((await queue(sys, alice, { ...i2i, image: data })).status).toBe(202);

    expect((await queue(sys, alice, { ...i2i, image: digest })).status).toBe(202);
    expect((await queue(sys, admin, { ...i2i, image: digest })).status).toBe(202);

    const theirs = await queue(sys, bob, { ...i2i, image: digest });
    const missingDigest = `sha256-${"1".repeat(64)}`;
    const missing = await queue(sys, bob, { ...i2i, image: missingDigest });
    expect(theirs.status).toBe(400);
    expect(missing.status).toBe(400);
    expect(theirs.details).toEqual(missing.details);
    expect(theirs.message!.replace(digest, "<digest>")).toBe(
      missing.message!.replace(missingDigest, "<digest>"),
    );
    expect(theirs.message).toContain("no stored object");

    // the same for a mask, and for an unsigned gateway object URL
    const mask = await queue(sys, bob, { ...edit, image: (await inlinePng("#0a0")).data, mask: digest });
    expect([mask.status, mask.details?.field]).toEqual([400, "mask"]);
    const unsigned = await queue(sys, bob, { ...i2i, image: `${sys.url}/objects/${digest}` });
    expect(unsigned.status).toBe(400);
  });

  it("accepts anyone's object given as a signed URL whose signature verifies", async () => {
    const { data, digest } = await inlinePng("#0a0");
    expect((await queue(sys, alice, { ...i2i, image: data })).status).toBe(202);
    const path = signObjectPath(sys.keys.objectUrl, digest, Math.floor(Date.now() / 1000) + 3600);
    expect((await queue(sys, bob, { ...i2i, image: `${sys.url}${path}` })).status).toBe(202);
    expect((await queue(sys, bob, { ...i2i, image: path })).status).toBe(202);

    const tampered = `${sys.url}${path.replace(/sig=[^&]+/, `sig=${"A".repeat(43)}`)}`;
    expect((await queue(sys, bob, { ...i2i, image: tampered })).status).toBe(400);
    const expired = signObjectPath(sys.keys.objectUrl, digest, Math.floor(Date.now() / 1000) - 10);
    expect((await queue(sys, bob, { ...i2i, image: `${sys.url}${expired}` })).status).toBe(400);
  });
});

describe("a sync request refused for capacity", () => {
  it("stores no inline image and grants nothing", async () => {
    const { data, digest } = await inlinePng("#00a");
    const res = await sys.call("/image/flux/schnell/i2i", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ prompt: "no capacity", image: data }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe("capacity_exhausted");
    const blobs = createFsBlobStore({ root: join(sys.dataDir, "cas") });
    expect(await blobs.has(digest)).toBe(false);
    expect(await sys.redis.client.exists(createKeys(sys.redis.prefix).objectOwners(digest))).toBe(0);
    expect((await sys.call(`/objects/${digest}`, { token: alice })).status).toBe(404);
  });
});
