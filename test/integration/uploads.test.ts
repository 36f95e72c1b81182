// Uploads (API.md §3; docs/decisions.md "Uploads"): POST /uploads → presigned PUT of exactly the
// declared bytes of the declared image type → an asset only its uploader (or an admin) may use as an
// image or read through GET /assets/{id}; bad URLs, sizes and types refused with the documented codes.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeys } from "../../src/queues/keys.js";
import { startSystem, waitFor, type TestSystem } from "../helpers/system.js";
import { digestOf, solidJpeg, solidPng } from "../helpers/images.js";

// No worker reports backends: /queue accepts (the job waits for one).
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

interface Problem {
  error?: string;
  message?: string;
  details?: Record<string, unknown>;
}

interface Upload {
  upload_url: string;
  asset_url: string;
  expires_at: string;
}

async function createUpload(s: TestSystem, token: string, body: Record<string, unknown>) {
  const res = await s.call("/uploads", { method: "POST", token, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Upload & Problem };
}

async function upload(s: TestSystem, token: string, contentType: string, bytes: number): Promise<Upload> {
  const res = await createUpload(s, token, { content_type: contentType, bytes });
  expect(res.status).toBe(200);
  return res.body;
}

/** A PUT with fetch (a Content-Length of the body's size). */
async function put(url: string, body: Uint8Array, contentType?: string) {
  const res = await fetch(url, {
    method: "PUT",
    body,
    headers: contentType === undefined ? {} : { "content-type": contentType },
  });
  return { status: res.status, body: (await res.json()) as { digest?: string; url?: string } & Problem };
}

/**
 * A chunked PUT (no Content-Length) with node:http: sends `first`, calls `between` (if any), then the
 * rest of the chunks. Resolves with the answer even when the server answers before the body ends.
 */
function chunkedPut(
  url: string,
  chunks: readonly Uint8Array[],
  between?: () => Promise<void>,
): Promise<{ status: number; body: Problem & { digest?: string } }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(url, { method: "PUT", headers: { "transfer-encoding": "chunked" } }, (res) => {
      answered = true;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Problem }));
      res.on("error", reject);
    });
    // The server may close the connection after an early answer: a write error then is expected.
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    void (async () => {
      const [first, ...rest] = chunks;
      if (first) req.write(first);
      if (between) await between();
      for (const chunk of rest) req.write(chunk);
      req.end();
    })().catch(reject);
  });
}

async function queue(s: TestSystem, token: string, body: Record<string, unknown>) {
  const res = await s.call("/queue", { method: "POST", token, body: JSON.stringify(body) });
  return { ...((await res.json()) as Problem & { id?: string }), status: res.status };
}

const assetIdOf = (u: Upload) => u.asset_url.split("/").at(-1)!;

describe("the happy path", () => {
  it("uploads a PNG, uses its asset URL as an image and a mask, and redirects GET /assets to the object", async () => {
    const png = await solidPng("#123456", 16);
    const u = await upload(sys, alice, "image/png", png.byteLength);
    expect(u.upload_url).toMatch(
      new RegExp(`^${sys.url}/uploads/a_[A-Za-z0-9]{16,}\\?exp=\\d+&sig=[\\w-]{43}$`),
    );
    expect(u.asset_url).toMatch(new RegExp(`^${sys.url}/assets/a_[A-Za-z0-9]{16,}$`));
    const life = Date.parse(u.expires_at) - Date.now();
    expect(life).toBeGreaterThan(3_500_000);
    expect(life).toBeLessThanOrEqual(3_602_000);

    // before the PUT: not usable, and GET /assets says so
    const early = await queue(sys, alice, { ...i2i, image: u.asset_url });
    expect([early.status, early.details?.field, early.details?.constraint]).toEqual([
      400,
      "image",
      "uploaded",
    ]);
    expect((await sys.call(`/assets/${assetIdOf(u)}`, { token: alice })).status).toBe(409);

    const done = await put(u.upload_url, png, "image/png");
    expect(done.status).toBe(201);
    expect(done.body.digest).toBe(digestOf(png));
    expect(done.body.url).toMatch(new RegExp(`^${sys.url}/objects/${done.body.digest}\\?exp=\\d+&sig=`));
    const object = await fetch(done.body.url!);
    expect(Buffer.from(await object.arrayBuffer()).equals(png)).toBe(true);

    // usable: absolute and bare asset URLs, as image and as mask, and the digest by its uploader
    const job = await queue(sys, alice, { ...i2i, image: u.asset_url });
    expect(job.status).toBe(202);
    const shown = (await (await sys.call(`/jobs/${job.id}`, { token: alice })).json()) as {
      request: { image: string };
    };
    expect(shown.request.image).toBe(digestOf(png));
    expect((await queue(sys, alice, { ...i2i, image: `/assets/${assetIdOf(u)}` })).status).toBe(202);
    expect((await queue(sys, alice, { ...edit, image: u.asset_url, mask: u.asset_url })).status).toBe(202);
    expect((await queue(sys, alice, { ...i2i, image: done.body.digest })).status).toBe(202);

    const redirect = await sys.call(`/assets/${assetIdOf(u)}`, { token: alice });
    expect(redirect.status).toBe(302);
    const location = redirect.headers.get("location")!;
    expect(location).toMatch(new RegExp(`^${sys.url}/objects/${done.body.digest}\\?exp=\\d+&sig=`));
    expect(Buffer.from(await (await fetch(location)).arrayBuffer()).equals(png)).toBe(true);

    // a second PUT of a done asset conflicts, with the same bytes or not
    expect((await put(u.upload_url, png, "image/png")).status).toBe(409);
  });
});

describe("each image type", () => {
  it("accepts JPEG and WebP bytes declared as such", async () => {
    const jpeg = await solidJpeg("#0a0", 16);
    const webp = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#a0a" } })
      .webp()
      .toBuffer();
    for (const [type, bytes] of [
      ["image/jpeg", jpeg],
      ["image/webp", webp],
    ] as const) {
      const u = await upload(sys, alice, type, bytes.byteLength);
      const done = await put(u.upload_url, bytes, type);
      expect([type, done.status, done.body.digest]).toEqual([type, 201, digestOf(bytes)]);
    }
  });
});

describe("a large upload", () => {
  it("takes a PNG larger than the 10 MiB JSON body limit, streamed and decoded", async () => {
    const side = 2048;
    const noise = randomBytes(side * side * 3);
    const png = await sharp(noise, { raw: { width: side, height: side, channels: 3 } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    expect(png.byteLength).toBeGreaterThan(10 * 1024 * 1024);
    const u = await upload(sys, alice, "image/png", png.byteLength);
    const done = await put(u.upload_url, png, "image/png");
    expect([done.status, done.body.digest]).toEqual([201, digestOf(png)]);
    expect((await queue(sys, alice, { ...i2i, image: u.asset_url })).status).toBe(202);
  });
});

describe("someone else's asset", () => {
  it("is used and read as if it did not exist; an admin may do both", async () => {
    const png = await solidPng("#654321", 12);
    const u = await upload(sys, alice, "image/png", png.byteLength);
    expect((await put(u.upload_url, png)).status).toBe(201);

    const theirs = await queue(sys, bob, { ...i2i, image: u.asset_url });
    const unknownId = `a_${"Z".repeat(22)}`;
    const unknown = await queue(sys, bob, { ...i2i, image: `${sys.url}/assets/${unknownId}` });
    expect(theirs.status).toBe(400);
    expect(theirs.details).toEqual(unknown.details);
    expect(theirs.details).toEqual({ field: "image", constraint: "exists" });
    expect(theirs.message!.replace(assetIdOf(u), "<id>")).toBe(unknown.message!.replace(unknownId, "<id>"));
    const mask = await queue(sys, bob, { ...edit, image: `/assets/${unknownId}`, mask: u.asset_url });
    expect(mask.status).toBe(400);

    const read = await sys.call(`/assets/${assetIdOf(u)}`, { token: bob });
    const readUnknown = await sys.call(`/assets/${unknownId}`, { token: bob });
    expect([read.status, readUnknown.status]).toEqual([404, 404]);
    // before its PUT, another customer's asset is not found either (not 409)
    const pending = await upload(sys, alice, "image/png", 100);
    expect((await sys.call(`/assets/${assetIdOf(pending)}`, { token: bob })).status).toBe(404);
    const pendingUse = await queue(sys, bob, { ...i2i, image: pending.asset_url });
    expect(pendingUse.details).toEqual({ field: "image", constraint: "exists" });

    expect((await sys.call(`/assets/${assetIdOf(u)}`, { token: admin })).status).toBe(302);
    expect((await queue(sys, admin, { ...i2i, image: u.asset_url })).status).toBe(202);
    // no token at all: 401
    expect((await sys.call(`/assets/${assetIdOf(u)}`)).status).toBe(401);
  });
});

describe("PUT bodies that are not what was declared", () => {
  it("refuses fewer bytes (400) and more (413), by Content-Length and while streaming, then accepts the right ones", async () => {
    const png = await solidPng("#0f0f0f", 20);
    const u = await upload(sys, alice, "image/png", png.byteLength);
    const fewer = await put(u.upload_url, png.subarray(0, png.byteLength - 1));
    expect([fewer.status, fewer.body.error, fewer.body.details?.constraint]).toEqual([
      400,
      "validation_error",
      "size",
    ]);
    const more = await put(u.upload_url, Buffer.concat([png, Buffer.from([0])]));
    expect([more.status, more.body.error]).toEqual([413, "request_too_large"]);

    // no Content-Length: counted as the bytes arrive
    const half = Math.floor(png.byteLength / 2);
    const streamedFewer = await chunkedPut(u.upload_url, [png.subarray(0, half), png.subarray(half, -3)]);
    expect([streamedFewer.status, streamedFewer.body.details?.constraint]).toEqual([400, "size"]);
    const streamedMore = await chunkedPut(u.upload_url, [png, Buffer.alloc(64 * 1024)]);
    expect([streamedMore.status, streamedMore.body.error]).toEqual([413, "request_too_large"]);

    // every refusal gave the claim back: the right bytes are still accepted
    const ok = await chunkedPut(u.upload_url, [png.subarray(0, 5), png.subarray(5)]);
    expect([ok.status, ok.body.digest]).toEqual([201, digestOf(png)]);
  });

  it("refuses JPEG bytes declared PNG (415), a Content-Type naming another type (415) and a corrupt image (400)", async () => {
    const jpeg = await solidJpeg("#00f", 16);
    const u = await upload(sys, alice, "image/png", jpeg.byteLength);
    const wrong = await put(u.upload_url, jpeg);
    expect([wrong.status, wrong.body.error]).toEqual([415, "unsupported_media_type"]);
    expect(wrong.body.message).toContain("image/jpeg");
    const streamed = await chunkedPut(u.upload_url, [jpeg.subarray(0, 3), jpeg.subarray(3)]);
    expect(streamed.status).toBe(415);

    const png = await solidPng("#f00", 16);
    const v = await upload(sys, alice, "image/png", png.byteLength);
    const header = await put(v.upload_url, png, "image/jpeg");
    expect([header.status, header.body.details]).toEqual([
      415,
      { field: "content_type", constraint: "media_type" },
    ]);
    expect(header.body.message).toContain("Content-Type is image/jpeg");
    // a PNG signature followed by garbage: the decode refuses it
    const corrupt = Buffer.concat([png.subarray(0, 16), Buffer.alloc(png.byteLength - 16, 7)]);
    const bad = await put(v.upload_url, corrupt, "image/png");
    expect([bad.status, bad.body.details?.field, bad.body.details?.constraint]).toEqual([
      400,
      "body",
      "decode",
    ]);
    expect((await put(v.upload_url, png, "image/png")).status).toBe(201);
  });
});

describe("upload URLs that do not authorise a PUT", () => {
  it("answers 403 for a tampered signature, expiry or asset id, and for a missing signature", async () => {
    const png = await solidPng("#abcdef", 8);
    const u = await upload(sys, alice, "image/png", png.byteLength);
    const url = new URL(u.upload_url);
    const sig = url.searchParams.get("sig")!;
    const exp = url.searchParams.get("exp")!;
    const variants = [
      u.upload_url.replace(`sig=${sig}`, `sig=${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`),
      u.upload_url.replace(`exp=${exp}`, `exp=${Number(exp) + 1}`),
      u.upload_url.replace(/\?.*$/, ""),
      u.upload_url.replace(assetIdOf(u), `a_${"Q".repeat(22)}`),
      u.upload_url.replace(assetIdOf(u), "nope"),
    ];
    for (const bad of variants) {
      const res = await put(bad, png);
      expect([res.status, res.body.error], bad).toEqual([403, "forbidden"]);
    }
    // the real one still works
    expect((await put(u.upload_url, png)).status).toBe(201);
  });

  it("answers 403 once the URL has expired (UPLOAD_URL_TTL_S=1)", async () => {
    const short = await startSystem({ worker: false, env: { UPLOAD_URL_TTL_S: "1" } });
    try {
      const png = await solidPng("#fedcba", 8);
      const u = await upload(short, await short.token("alice"), "image/png", png.byteLength);
      const expiresAt = Date.parse(u.expires_at);
      expect(expiresAt - Date.now()).toBeLessThanOrEqual(2_000);
      await waitFor(async () => Date.now() > expiresAt);
      const res = await put(u.upload_url, png);
      expect([res.status, res.body.error]).toEqual([403, "forbidden"]);
      expect(res.body.message).toContain("expired");
    } finally {
      await short.close();
    }
  });
});

describe("concurrent PUTs of one asset", () => {
  it("lets one stream and answers the other 409", async () => {
    const png = await solidPng("#777777", 24);
    const u = await upload(sys, alice, "image/png", png.byteLength);
    const key = createKeys(sys.redis.prefix).asset(assetIdOf(u));
    let second: Awaited<ReturnType<typeof put>> | undefined;
    const first = chunkedPut(u.upload_url, [png.subarray(0, 100), png.subarray(100)], async () => {
      await waitFor(async () => (await sys.redis.client.hget(key, "state")) === "uploading");
      second = await put(u.upload_url, png);
    });
    expect((await first).status).toBe(201);
    expect([second?.status, second?.body.error]).toEqual([409, "conflict"]);
    expect(await sys.redis.client.hget(key, "state")).toBe("done");
  });
});

describe("a PUT cut off by its client", () => {
  it("leaves nothing in the CAS and gives the asset back for the next PUT", async () => {
    const png = await solidPng("#313131", 24);
    const u = await upload(sys, alice, "image/png", png.byteLength);
    const key = createKeys(sys.redis.prefix).asset(assetIdOf(u));
    const req = httpRequest(u.upload_url, { method: "PUT", headers: { "transfer-encoding": "chunked" } });
    const closed = new Promise<void>((resolve) => req.on("close", resolve));
    req.on("error", () => undefined);
    req.write(png.subarray(0, 100));
    await waitFor(async () => (await sys.redis.client.hget(key, "state")) === "uploading");
    req.destroy();
    await closed;
    await waitFor(async () => (await sys.redis.client.hget(key, "state")) === "pending");
    const cas = join(sys.dataDir, "cas");
    const temps = () =>
      existsSync(cas) ? readdirSync(cas, { recursive: true }).filter((f) => String(f).includes(".tmp-")) : [];
    await waitFor(async () => temps().length === 0);
    expect((await put(u.upload_url, png)).status).toBe(201);
  });
});

describe("POST /uploads", () => {
  it.each([
    [{ content_type: "image/gif", bytes: 10 }, "content_type", "enum"],
    [{ bytes: 10 }, "content_type", "required"],
    [{ content_type: "image/png" }, "bytes", "required"],
    [{ content_type: "image/png", bytes: 0 }, "bytes", "range"],
    [{ content_type: "image/png", bytes: 52_428_801 }, "bytes", "range"],
    [{ content_type: "image/png", bytes: 1.5 }, "bytes", "integer"],
    [{ content_type: "image/png", bytes: "10" }, "bytes", "integer"],
    [{ content_type: "image/png", bytes: 10, owner: "x" }, "owner", "unknown"],
    [["image/png", 10], "body", "type"],
  ])("refuses %j with 400 (%s, %s)", async (body, field, constraint) => {
    const res = await sys.call("/uploads", { method: "POST", token: alice, body: JSON.stringify(body) });
    const problem = (await res.json()) as Problem;
    expect([res.status, problem.error, problem.details]).toEqual([
      400,
      "validation_error",
      { field, constraint },
    ]);
  });

  it("counts against the caller's reads per second (RateLimit headers)", async () => {
    const res = await sys.call("/uploads", {
      method: "POST",
      token: alice,
      body: JSON.stringify({ content_type: "image/png", bytes: 10 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-policy")).toMatch(/^"reads";q=\d+;w=1$/);
  });

  it("accepts the largest size, needs a token, and allows only POST", async () => {
    expect((await createUpload(sys, alice, { content_type: "image/webp", bytes: 52_428_800 })).status).toBe(
      200,
    );
    const anonymous = await sys.call("/uploads", {
      method: "POST",
      body: JSON.stringify({ content_type: "image/png", bytes: 1 }),
    });
    expect(anonymous.status).toBe(401);
    const get = await sys.call("/uploads", { token: alice });
    expect([get.status, get.headers.get("allow")]).toEqual([405, "POST"]);
  });
});
