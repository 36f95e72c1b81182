// GET /objects/{digest} with Range (RFC 9110 §14): one range → 206; a range outside the object → 416
// with `Content-Range: bytes */N`; several ranges or one that does not parse → the whole object (200). The
// blob is opened once for a whole answer and twice for a range (size and type first, then the part).
// If-Range (RFC 9110 §13.1.5): the range only when it names the object's strong ETag.
// Route tests with app.request(), no port.
import { createHash } from "node:crypto";
import { Hono } from "hono";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { ApiEnv } from "../../src/api/context.js";
import type { ApiDeps } from "../../src/api/deps.js";
import { createErrorHandler } from "../../src/api/problem.js";
import { objectRoutes, parseRange } from "../../src/api/routes/objects.js";
import type { BlobStore } from "../../src/core/ports.js";
import { signObjectPath } from "../../src/core/url-signing.js";

const KEY = new TextEncoder().encode("object url key for the range tests");
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const BYTES = new Uint8Array([...PNG_MAGIC, ...Array.from({ length: 42 }, (_, i) => i)]); // 50 bytes
const DIGEST = `sha256-${createHash("sha256").update(BYTES).digest("hex")}`;

function memoryBlobs(objects: Map<string, Uint8Array>) {
  const stats = { opens: 0 };
  const blobs: BlobStore = {
    put: () => Promise.reject(new Error("read-only")),
    putStream: () => Promise.reject(new Error("read-only")),
    has: async (d) => objects.has(d),
    touch: async (d) => objects.has(d),
    get: async (d) => objects.get(d),
    async open(d, range) {
      stats.opens += 1;
      const bytes = objects.get(d);
      if (!bytes) return undefined;
      const part = range ? bytes.subarray(range.start, Math.min(range.end, bytes.length - 1) + 1) : bytes;
      // Two chunks, as a file stream would hand them out.
      const chunks = [part.subarray(0, 16), part.subarray(16)].filter((c) => c.byteLength > 0);
      return {
        size: bytes.length,
        body: new ReadableStream<Uint8Array>({
          pull(controller) {
            const next = chunks.shift();
            if (next) controller.enqueue(new Uint8Array(next));
            else controller.close();
          },
        }),
      };
    },
  };
  return { blobs, stats };
}

function setup(objects = new Map([[DIGEST, BYTES]])) {
  const { blobs, stats } = memoryBlobs(objects);
  const deps = {
    blobs,
    clock: () => 1_800_000_000_000,
    config: { urlKey: KEY, outputUrlTtlS: 0 },
  } as unknown as ApiDeps;
  const app = new Hono<ApiEnv>();
  app.onError(createErrorHandler(pino({ level: "silent" })));
  app.route("/", objectRoutes(deps, { isOwner: async () => false, authenticate: async () => undefined }));
  const url = (digest = DIGEST) => signObjectPath(KEY, digest, 0);
  return { app, stats, url };
}

describe("parseRange", () => {
  it.each([
    ["bytes=0-9", { start: 0, end: 9 }],
    ["bytes=10-", { start: 10, end: 49 }],
    ["bytes=-5", { start: 45, end: 49 }],
    ["bytes=-500", { start: 0, end: 49 }],
    ["bytes=40-999", { start: 40, end: 49 }],
    ["bytes=50-", "unsatisfiable"],
    ["bytes=100-200", "unsatisfiable"],
    ["bytes=-0", "unsatisfiable"],
    ["bytes=0-1,4-5", undefined],
    ["bytes=5-2", "unsatisfiable"],
    ["items=0-1", undefined],
    ["bytes=abc", undefined],
    ["bytes=-", undefined],
  ] as const)("%s of 50 bytes → %j", (header, expected) => {
    expect(parseRange(header, 50)).toEqual(expected);
  });
  it("finds nothing to serve in an empty object", () => {
    expect(parseRange("bytes=0-0", 0)).toBe("unsatisfiable");
    expect(parseRange("bytes=-1", 0)).toBe("unsatisfiable");
  });
});

describe("GET /objects/{digest} with Range", () => {
  it("answers 416 with Content-Range: bytes */N for a range outside the object", async () => {
    const { app, url } = setup();
    const res = await app.request(url(), { headers: { range: "bytes=100-200" } });
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe(`bytes */${BYTES.length}`);
    const body = (await res.json()) as { error: string; status: number };
    expect(body.error).toBe("range_not_satisfiable");
    expect(body.status).toBe(416);
  });

  it("ignores a multi-range request and answers 200 with the whole object", async () => {
    const { app, url } = setup();
    const res = await app.request(url(), { headers: { range: "bytes=0-1,4-5" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-range")).toBeNull();
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES);
  });

  it("serves one range with 206 and one Content-Range", async () => {
    const { app, url, stats } = setup();
    const res = await app.request(url(), { headers: { range: "bytes=10-19" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes 10-19/${BYTES.length}`);
    expect(res.headers.get("content-length")).toBe("10");
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES.subarray(10, 20));
    expect(stats.opens).toBe(2);
  });

  it("opens the blob once for the whole object, sniffing the type from its first bytes", async () => {
    const { app, url, stats } = setup();
    const res = await app.request(url());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("content-length")).toBe(String(BYTES.length));
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES);
    expect(stats.opens).toBe(1);
  });

  it("answers HEAD with the headers and no body, opening the blob once", async () => {
    const { app, url, stats } = setup();
    const res = await app.request(url(), { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(BYTES.length));
    expect(await res.text()).toBe("");
    expect(stats.opens).toBe(1);
  });

  it("serves an empty object", async () => {
    const empty = new Uint8Array();
    const digest = `sha256-${createHash("sha256").update(empty).digest("hex")}`;
    const { app, url } = setup(new Map([[digest, empty]]));
    const res = await app.request(url(digest));
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
    const ranged = await app.request(url(digest), { headers: { range: "bytes=0-0" } });
    expect(ranged.status).toBe(416);
    expect(ranged.headers.get("content-range")).toBe("bytes */0");
  });
});

describe("GET /objects/{digest} with If-Range", () => {
  const etag = `"${DIGEST}"`;

  it("honours the range when If-Range is the object's ETag", async () => {
    const { app, url } = setup();
    const res = await app.request(url(), { headers: { range: "bytes=10-19", "if-range": etag } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes 10-19/${BYTES.length}`);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES.subarray(10, 20));
  });

  it.each([
    ["another ETag", `"sha256-${"0".repeat(64)}"`],
    ["the weak form of the ETag", `W/${etag}`],
    ["an HTTP date (objects have no Last-Modified)", "Wed, 21 Oct 2015 07:28:00 GMT"],
    ["an unquoted digest", DIGEST],
    ["an empty value", ""],
  ])("ignores the range and sends the whole object (200) for %s", async (_, ifRange) => {
    const { app, url } = setup();
    for (const range of ["bytes=10-19", "bytes=100-200"]) {
      const res = await app.request(url(), { headers: { range, "if-range": ifRange } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-range")).toBeNull();
      expect(res.headers.get("content-length")).toBe(String(BYTES.length));
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES);
    }
  });

  it("ignores If-Range without Range", async () => {
    const { app, url } = setup();
    const res = await app.request(url(), { headers: { "if-range": `"other"` } });
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES);
  });
});
