// The gateway takes input images in itself: a URL is fetched by the API through the outbound client
// (a real local https server, allowed by WEBHOOK_ALLOW_PRIVATE), every image is checked by its bytes
// and decoded, the job holds only a digest, and the GPU backend gets bytes, never the customer's URL.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server } from "node:https";
import { request as httpRequest } from "node:http";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { dataUri, digestOf, pngBomb, solidJpeg, solidPng } from "../helpers/images.js";
import { startSystem, waitFor, type TestSystem } from "../helpers/system.js";

const TLS_DIR = join(import.meta.dirname, "fixtures", "tls");
const CA_FILE = join(TLS_DIR, "images-test.crt");

let good: Buffer;
let bomb: Buffer;
const served: Record<string, { type: string; body: Buffer } | "redirect" | "hang" | "held"> = {};
/** Answers waiting for {@link releaseHeld}: "/held.png" sends its headers, its body only then. */
const heldAnswers: (() => void)[] = [];
const releaseHeld = () => {
  for (const finish of heldAnswers.splice(0)) finish();
};

/** The customer's image host: a real https server on loopback, counting the requests per path. */
let images: Server;
let imagesPort = 0;
const hits: string[] = [];
function serveImage(req: IncomingMessage, res: ServerResponse) {
  const path = req.url ?? "";
  hits.push(path);
  const entry = served[path];
  if (entry === undefined) res.writeHead(404).end("not here");
  else if (entry === "redirect") res.writeHead(302, { location: "/good.png" }).end();
  else if (entry === "hang") res.writeHead(200, { "content-type": "image/png" }).write(good.subarray(0, 10));
  else if (entry === "held") {
    res.writeHead(200, { "content-type": "image/png" }).write(good.subarray(0, 10));
    heldAnswers.push(() => res.end(good.subarray(10)));
  } else res.writeHead(200, { "content-type": entry.type }).end(entry.body);
}

/** What the GPU backend was sent: a recording proxy in front of the simulator. */
const inferBodies: string[] = [];
let simTarget = "";
const proxy = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (req.method === "POST") inferBodies.push(body.toString());
    const up = httpRequest(
      `${simTarget}${req.url ?? "/"}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    up.end(body);
  });
});

let strict: TestSystem;
let open: TestSystem;
let alice: string;
let openAlice: string;

beforeAll(async () => {
  good = await solidPng("#3a6", 16);
  bomb = pngBomb(30_000, 30_000);
  const truncated = good.subarray(0, good.length - 30);
  Object.assign(served, {
    "/good.png": { type: "image/png", body: good },
    "/page.png": { type: "image/png", body: Buffer.from("<html><body>not an image</body></html>") },
    "/bomb.png": { type: "image/png", body: bomb },
    "/truncated.png": { type: "image/png", body: truncated },
    "/big.png": { type: "image/png", body: Buffer.concat([good, Buffer.alloc(2 * 1024 * 1024)]) },
    "/moved.png": "redirect",
    "/hang.png": "hang",
    "/held.png": "held",
  });
  images = createHttpsServer(
    { cert: readFileSync(CA_FILE, "utf8"), key: readFileSync(join(TLS_DIR, "images-test.key"), "utf8") },
    serveImage,
  );
  await new Promise<void>((r) => images.listen(0, "127.0.0.1", r));
  imagesPort = (images.address() as AddressInfo).port;
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

  [strict, open] = await Promise.all([
    startSystem({ worker: false, env: { OUTBOUND_ALLOWED_PORTS: `443,${imagesPort}` } }),
    startSystem({
      env: {
        WEBHOOK_ALLOW_PRIVATE: "true",
        OUTBOUND_ALLOWED_PORTS: String(imagesPort),
        OUTBOUND_CA_FILE: CA_FILE,
        INPUT_IMAGE_MAX_BYTES: String(1024 * 1024),
        INPUT_FETCH_TIMEOUT_MS: "1000",
      },
      backends: (simUrl) => {
        simTarget = simUrl;
        return [
          {
            id: "recorded",
            url: proxyUrl,
            protocol: "kserve-v2",
            engine: "nunchaku",
            capacity: 2,
            models: ["flux/schnell"],
            streaming: false,
            timeout_ms: 30_000,
            timeouts: {},
          },
        ];
      },
    }),
  ]);
  [alice, openAlice] = await Promise.all([strict.token("alice"), open.token("alice")]);
});

afterAll(async () => {
  await Promise.all([strict?.close(), open?.close()]);
  images?.closeAllConnections();
  proxy.closeAllConnections();
  await Promise.all([new Promise((r) => images?.close(r)), new Promise((r) => proxy.close(r))]);
});

const i2i = { modality: "image", family: "flux", model: "schnell", task: "i2i", format: "512", prompt: "p" };

async function queue(s: TestSystem, token: string, body: Record<string, unknown>) {
  const res = await s.call("/queue", { method: "POST", token, body: JSON.stringify(body) });
  const json = (await res.json()) as {
    id?: string;
    error?: string;
    message?: string;
    details?: { field?: string; constraint?: string };
  };
  return { ...json, status: res.status };
}

const url = (path: string) => `https://127.0.0.1:${imagesPort}${path}`;

describe("an image URL fetched by the gateway", () => {
  it("stores the fetched bytes, keeps only the digest, and sends the backend bytes, never the URL", async () => {
    const answer = await queue(open, openAlice, { ...i2i, image: url("/good.png") });
    expect(answer.status).toBe(202);
    expect(hits).toContain("/good.png");
    const job = await waitFor(async () => {
      const res = await open.call(`/jobs/${answer.id}?redirect=false`, { token: openAlice });
      const j = (await res.json()) as { status: string; request: { image: string } };
      return j.status === "complete" || j.status === "error" ? j : undefined;
    });
    expect(job.status).toBe("complete");
    expect(job.request.image).toBe(digestOf(good));
    const blobs = createFsBlobStore({ root: join(open.dataDir, "cas") });
    expect(await blobs.has(digestOf(good))).toBe(true);

    const sent = inferBodies.find((b) => b.includes(answer.id!));
    expect(sent).toBeDefined();
    expect(sent).not.toContain(`127.0.0.1:${imagesPort}`);
    const request = JSON.parse(
      (JSON.parse(sent!) as { inputs: { name: string; data: string[] }[] }).inputs.find(
        (i) => i.name === "request",
      )!.data[0]!,
    ) as { image: string };
    expect(request.image).toBe(dataUri("image/png", good));
  });

  it.each([
    ["/page.png", "media_type"],
    ["/bomb.png", "max_pixels"],
    ["/truncated.png", "decode"],
    ["/big.png", "max_bytes"],
    ["/missing.png", "fetch"],
    ["/hang.png", "fetch"],
  ])("refuses %s with 400 validation_error (%s)", async (path, constraint) => {
    const answer = await queue(open, openAlice, { ...i2i, image: url(path) });
    expect(answer.status).toBe(400);
    expect(answer.error).toBe("validation_error");
    expect(answer.details).toEqual({ field: "image", constraint });
    expect(answer.message).not.toContain("127.0.0.1");
  });

  it("does not follow a redirect", async () => {
    const before = hits.length;
    const answer = await queue(open, openAlice, { ...i2i, image: url("/moved.png") });
    expect([answer.status, answer.details]).toEqual([400, { field: "image", constraint: "fetch" }]);
    expect(hits.slice(before)).toEqual(["/moved.png"]);
  });

  it("names the mask when the mask is the bad one", async () => {
    const edit = { modality: "image", family: "qwen", model: "edit", task: "edit", prompt: "p" };
    const answer = await queue(open, openAlice, { ...edit, image: url("/good.png"), mask: url("/page.png") });
    expect([answer.status, answer.details]).toEqual([400, { field: "mask", constraint: "media_type" }]);
  });
});

describe("image URLs refused before anything is fetched", () => {
  it.each([
    ["a loopback address", () => url("/good.png")],
    ["localhost", () => `https://localhost:${imagesPort}/good.png`],
    ["a single-label name", () => `https://images:${imagesPort}/good.png`],
    ["a cluster-internal name", () => `https://images.default.svc.cluster.local:${imagesPort}/good.png`],
  ])("refuses %s (public_https) without connecting", async (_what, target) => {
    const before = hits.length;
    const answer = await queue(strict, alice, { ...i2i, image: target() });
    expect([answer.status, answer.details]).toEqual([400, { field: "image", constraint: "public_https" }]);
    expect(hits.length).toBe(before);
  });

  it("refuses a port outside OUTBOUND_ALLOWED_PORTS", async () => {
    const answer = await queue(strict, alice, { ...i2i, image: "https://images.example.com:6379/a.png" });
    expect([answer.status, answer.details]).toEqual([400, { field: "image", constraint: "port" }]);
  });

  it("refuses a bad mask URL before fetching the image", async () => {
    const edit = { modality: "image", family: "qwen", model: "edit", task: "edit", prompt: "p" };
    const before = hits.length;
    const answer = await queue(open, openAlice, {
      ...edit,
      image: url("/good.png"),
      mask: "https://images.example.com:6379/m.png",
    });
    expect([answer.status, answer.details]).toEqual([400, { field: "mask", constraint: "port" }]);
    expect(hits.length).toBe(before);
  });
});

describe("the input-image budget of a process", () => {
  it("answers 503 unavailable while fetches hold it, and takes images again once they are in", async () => {
    // One fetch may bring 1 MiB: it holds that much of the 1.5 MiB budget until its bytes are in.
    const sys = await startSystem({
      worker: false,
      env: {
        WEBHOOK_ALLOW_PRIVATE: "true",
        OUTBOUND_ALLOWED_PORTS: String(imagesPort),
        OUTBOUND_CA_FILE: CA_FILE,
        INPUT_IMAGE_MAX_BYTES: String(1024 * 1024),
        INPUT_IMAGE_BUDGET_BYTES: String(1536 * 1024),
      },
    });
    try {
      const token = await sys.token("alice");
      const first = queue(sys, token, { ...i2i, image: url("/held.png") });
      await waitFor(async () => heldAnswers.length > 0);
      const res = await sys.call("/queue", {
        method: "POST",
        token,
        body: JSON.stringify({ ...i2i, image: url("/good.png") }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(((await res.json()) as { error: string }).error).toBe("unavailable");
      // An inline image needs the budget too: 750 KB of noise does not fit beside the held 1 MiB.
      const noise = await sharp(randomBytes(500 * 500 * 3), { raw: { width: 500, height: 500, channels: 3 } })
        .png()
        .toBuffer();
      const inline = await queue(sys, token, { ...i2i, image: dataUri("image/png", noise) });
      expect([inline.status, inline.error]).toEqual([503, "unavailable"]);
      releaseHeld();
      expect((await first).status).toBe(202);
      // The fetch is in (and the admission over): the budget is free again.
      expect((await queue(sys, token, { ...i2i, image: url("/good.png") })).status).toBe(202);
      expect((await queue(sys, token, { ...i2i, image: dataUri("image/png", noise) })).status).toBe(202);
    } finally {
      releaseHeld();
      await sys.close();
    }
  });
});

describe("inline data: images are decoded too", () => {
  it.each([
    [
      "HTML labelled image/png",
      () => dataUri("image/png", Buffer.from("<html><script>x</script></html>")),
      "media_type",
    ],
    ["a 30000×30000 PNG (a decompression bomb)", () => dataUri("image/png", bomb), "max_pixels"],
    ["a truncated PNG", () => dataUri("image/png", good.subarray(0, good.length - 30)), "decode"],
  ])("refuses %s with 400, storing nothing", async (_what, value, constraint) => {
    const image = value();
    const answer = await queue(strict, alice, { ...i2i, image });
    expect([answer.status, answer.error, answer.details]).toEqual([
      400,
      "validation_error",
      { field: "image", constraint },
    ]);
    const bytes = Buffer.from(image.slice(image.indexOf(",") + 1), "base64");
    const blobs = createFsBlobStore({ root: join(strict.dataDir, "cas") });
    expect(await blobs.has(digestOf(bytes))).toBe(false);
  });

  it("refuses a JPEG declared as PNG, and takes it declared as JPEG", async () => {
    const jpeg = await solidJpeg("#a60");
    const wrong = await queue(strict, alice, { ...i2i, image: dataUri("image/png", jpeg) });
    expect([wrong.status, wrong.details]).toEqual([400, { field: "image", constraint: "media_type" }]);
    const right = await queue(strict, alice, { ...i2i, image: dataUri("image/jpeg", jpeg) });
    expect(right.status).toBe(202);
  });

  it("refuses the bomb on the sync route too, before the backend sees it", async () => {
    const res = await open.call("/image/flux/schnell/i2i", {
      method: "POST",
      token: openAlice,
      body: JSON.stringify({ prompt: "p", image: dataUri("image/png", bomb) }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { details: unknown }).details).toEqual({
      field: "image",
      constraint: "max_pixels",
    });
    expect(inferBodies.some((b) => b.length > 400_000)).toBe(false);
  });
});
