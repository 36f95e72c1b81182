// Wire compatibility with the original spec (docs/reference/render.openapi.json, API.md §7): every
// request example of the sync image, sync video and /queue operations is sent exactly as written, and
// the answer is checked against the spec's documented success status, headers and response schemas
// (validated with the spec's own JSON schemas, $refs resolved). The examples have no path, so each goes
// to a catalogue model that offers the example's task. The i2i/i2v/edit examples reference
// https://example.com images, which the gateway fetches itself (it never hands a customer URL to a
// backend): the examples are sent as written except that their image host is a local https server
// (the same paths), allowed through WEBHOOK_ALLOW_PRIVATE, since no test may reach a public host. One
// extra case sends an inline `data:` image instead.
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  PROJECT_ROOT,
  call,
  mp4VideoSampleEntries,
  pngDimensions,
  token,
  until,
  waitForModel,
  type Gateway,
} from "../helpers/processes.js";

// ---------------------------------------------------------------------------------------------------
// The original spec and a validator for the JSON-schema subset it uses

type Schema = Record<string, unknown>;
const spec = JSON.parse(readFileSync(join(PROJECT_ROOT, "docs/reference/render.openapi.json"), "utf8")) as {
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: {
          content: Record<string, { examples: Record<string, { value: Record<string, unknown> }> }>;
        };
        responses: Record<string, unknown>;
      }
    >
  >;
  components: { schemas: Record<string, Schema>; responses: Record<string, Schema> };
};

function deref<T>(node: unknown): T {
  let n = node as Record<string, unknown>;
  while (typeof n.$ref === "string") {
    const parts = n.$ref.replace(/^#\//, "").split("/");
    n = parts.reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, spec as never);
  }
  return n as T;
}

const RFC3339_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Problems of `value` against `schema` (empty = valid). Also flags `null` anywhere (API.md: omitted, never null). */
function validate(value: unknown, schemaIn: unknown, path = "$"): string[] {
  const s = deref<Schema>(schemaIn);
  const out: string[] = [];
  if (value === null) return [`${path}: null (optional fields must be omitted)`];
  if (Array.isArray(s.oneOf)) {
    const ok = (s.oneOf as unknown[]).filter((alt) => validate(value, alt, path).length === 0).length;
    if (ok !== 1) out.push(`${path}: matches ${ok} of oneOf`);
    return out;
  }
  const type = s.type as string | undefined;
  const is: Record<string, (v: unknown) => boolean> = {
    string: (v) => typeof v === "string",
    integer: (v) => Number.isInteger(v),
    number: (v) => typeof v === "number" && Number.isFinite(v),
    boolean: (v) => typeof v === "boolean",
    object: (v) => typeof v === "object" && v !== null && !Array.isArray(v),
    array: (v) => Array.isArray(v),
  };
  if (type && !is[type]!(value)) return [`${path}: expected ${type}, got ${JSON.stringify(value)}`];
  if ("const" in s && value !== s.const) out.push(`${path}: expected ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.includes(value))
    out.push(`${path}: ${JSON.stringify(value)} not in enum`);
  if (typeof value === "string") {
    if (typeof s.pattern === "string" && !new RegExp(s.pattern).test(value))
      out.push(`${path}: !~ ${s.pattern}`);
    if (typeof s.minLength === "number" && value.length < s.minLength) out.push(`${path}: too short`);
    if (typeof s.maxLength === "number" && value.length > s.maxLength) out.push(`${path}: too long`);
    if (s.format === "uri" && !/^https?:\/\/[^/]+/.test(value))
      out.push(`${path}: not an absolute URI: ${value}`);
    if (s.format === "date-time" && !RFC3339_MS.test(value))
      out.push(`${path}: not RFC 3339 UTC ms: ${value}`);
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) out.push(`${path}: < ${s.minimum}`);
    if (typeof s.maximum === "number" && value > s.maximum) out.push(`${path}: > ${s.maximum}`);
  }
  if (Array.isArray(value) && s.items)
    value.forEach((v, i) => out.push(...validate(v, s.items, `${path}[${i}]`)));
  if (is.object!(value)) {
    const obj = value as Record<string, unknown>;
    for (const r of (s.required as string[] | undefined) ?? [])
      if (!(r in obj)) out.push(`${path}.${r}: required`);
    const props = (s.properties as Record<string, unknown> | undefined) ?? {};
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) out.push(...validate(v, props[k], `${path}.${k}`));
      else if (typeof s.additionalProperties === "object")
        out.push(...validate(v, s.additionalProperties, `${path}.${k}`));
      else if (v === null) out.push(`${path}.${k}: null`);
    }
  }
  return out;
}

function expectSchema(value: unknown, schema: unknown, what: string) {
  expect(validate(value, schema), `${what}: ${JSON.stringify(value).slice(0, 2000)}`).toEqual([]);
}

const examples = (path: string) =>
  Object.entries(spec.paths[path]!.post!.requestBody!.content["application/json"]!.examples).map(
    ([name, ex]) => [name, ex.value] as const,
  );
const schemas = spec.components.schemas;
const responses = spec.components.responses;

// ---------------------------------------------------------------------------------------------------

let h: E2eHarness;
let gw: Gateway;
let bearer: string;
let images: Server;
let imagesBase = "";

const TLS_DIR = join(PROJECT_ROOT, "test/integration/fixtures/tls");

/** The example with its image/mask URLs moved to the local image server (same paths). */
function withLocalImages(example: Record<string, unknown>): Record<string, unknown> {
  const out = { ...example };
  for (const field of ["image", "mask"]) {
    const v = out[field];
    if (typeof v === "string" && v.startsWith("https://")) out[field] = `${imagesBase}${new URL(v).pathname}`;
  }
  return out;
}

beforeAll(async () => {
  const photo = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#468" } })
    .jpeg()
    .toBuffer();
  images = createHttpsServer(
    {
      cert: readFileSync(join(TLS_DIR, "images-test.crt"), "utf8"),
      key: readFileSync(join(TLS_DIR, "images-test.key"), "utf8"),
    },
    (_req, res) => res.writeHead(200, { "content-type": "image/jpeg" }).end(photo),
  );
  await new Promise<void>((r) => images.listen(0, "127.0.0.1", r));
  const port = (images.address() as AddressInfo).port;
  imagesBase = `https://127.0.0.1:${port}`;
  h = new E2eHarness();
  gw = await h.start(undefined, {
    env: {
      WEBHOOK_ALLOW_PRIVATE: "true",
      OUTBOUND_ALLOWED_PORTS: `443,${port}`, // 443: the /queue example's webhook
      OUTBOUND_CA_FILE: join(TLS_DIR, "images-test.crt"),
    },
  });
  bearer = await token("compat", { tier: "pro" });
  await waitForModel(gw.url, bearer, "wan/default");
});
afterAll(async () => {
  await h?.cleanup();
  images?.closeAllConnections();
  await new Promise((r) => images?.close(r));
});

/** A catalogue model offering the example's task (examples carry no path). */
function routeFor(modality: "image" | "video", example: Record<string, unknown>): string {
  if (modality === "video") return "/video/wan/default/i2v"; // both video examples animate an image
  if (example.mask !== undefined) return "/image/qwen/edit/edit";
  if (example.image !== undefined) return "/image/flux/schnell/i2i";
  return example.guidance !== undefined ? "/image/flux/dev/t2i" : "/image/flux/schnell/t2i";
}

/** Sync-answer headers of SyncImageGenerated / SyncVideoGenerated. */
function checkSyncHeaders(res: Response, example: Record<string, unknown>) {
  const h = (n: string) => res.headers.get(n);
  expect(h("x-weyl-request-id")).toMatch(/^req_[a-zA-Z0-9]+$/);
  expect(h("x-weyl-request-id")).toBe(h("x-request-id"));
  expect(h("x-weyl-seed")).toMatch(/^\d+$/);
  if (typeof example.seed === "number") expect(h("x-weyl-seed")).toBe(String(example.seed));
  expect(h("x-weyl-duration-ms")).toMatch(/^\d+$/);
  expect(h("content-location")).toMatch(new RegExp(`^${gw.url}/objects/sha256-[0-9a-f]{64}\\?exp=\\d+&sig=`));
}

async function readAll(res: Response) {
  const bytes = new Uint8Array(await res.arrayBuffer());
  const hint = res.status === 200 ? "" : Buffer.from(bytes.subarray(0, 1000)).toString();
  return { bytes, hint };
}

describe("POST /image/{family}/{model}/{task}: the spec's request examples", () => {
  it.each(examples("/image/{family}/{model}/{task}"))("%s", async (_name, example) => {
    const res = await call(gw.url, routeFor("image", example), {
      method: "POST",
      token: bearer,
      body: withLocalImages(example),
    });
    const { bytes, hint } = await readAll(res);
    expect(res.status, hint).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(pngDimensions(bytes)).toEqual({ width: 1024, height: 1024 });
    checkSyncHeaders(res, example);
    // Content-Location serves the same bytes, without a token.
    const again = await fetch(res.headers.get("content-location")!);
    expect(Buffer.from(await again.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
  });

  it("i2i with an inline data: image (our substitute for the URL, exercising the CAS path)", async () => {
    const src = await call(gw.url, "/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: bearer,
      body: { prompt: "src" },
    });
    await src.arrayBuffer(); // an unread body would hold its connection open
    const png = await fetch(src.headers.get("content-location")!);
    const image = `data:image/png;base64,${Buffer.from(await png.arrayBuffer()).toString("base64")}`;
    const res = await call(gw.url, "/image/flux/schnell/i2i", {
      method: "POST",
      token: bearer,
      body: { prompt: "convert to anime style, studio ghibli", image, strength: 0.7 },
    });
    const { bytes, hint } = await readAll(res);
    expect(res.status, hint).toBe(200);
    expect(pngDimensions(bytes)).toEqual({ width: 1024, height: 1024 });
  });
});

describe("POST /video/{family}/{model}/{task}: the spec's request examples", () => {
  it.each(examples("/video/{family}/{model}/{task}"))(
    "%s",
    async (_name, example) => {
      const res = await call(gw.url, routeFor("video", example), {
        method: "POST",
        token: bearer,
        body: withLocalImages(example),
      });
      const { bytes, hint } = await readAll(res);
      expect(res.status, hint).toBe(200);
      expect(res.headers.get("content-type")).toBe("video/mp4");
      expect(mp4VideoSampleEntries(bytes).entries).toEqual([{ format: "avc1", width: 1280, height: 720 }]);
      checkSyncHeaders(res, example);
    },
    60_000,
  );
});

describe("POST /queue: the spec's request examples", () => {
  const jobCreated = schemas.JobCreated!;
  const job = schemas.Job!;

  it.each(examples("/queue"))(
    "%s",
    async (name, example) => {
      const body = withLocalImages(example);
      const res = await call(gw.url, "/queue", { method: "POST", token: bearer, body });
      const created = (await res.json()) as Record<string, unknown>;
      expect(res.status, JSON.stringify(created)).toBe(202);
      expectSchema(created, jobCreated, "JobCreated");
      expect(created.status).toBe("queued");
      expect(RFC3339_MS.test(String(created.created_at))).toBe(true);
      const id = String(created.id);
      // AsyncJobAccepted headers
      expect(res.headers.get("location")).toBe(`${gw.url}/jobs/${id}`);
      expect(res.headers.get("link")).toBe(`<${gw.url}/jobs/${id}/events>; rel="monitor"`);
      expect(created.events_url).toBe(`${gw.url}/jobs/${id}/events`);
      expect(res.headers.get("x-weyl-request-id")).toBe(res.headers.get("x-request-id"));

      // The job: schema while it runs and once finished; then the 303 of a complete job.
      const first = (await (
        await call(gw.url, `/jobs/${id}?redirect=false`, { token: bearer })
      ).json()) as Record<string, unknown>;
      expectSchema(first, job, "Job (early)");
      const done = await until(
        `job ${id} finishes`,
        async () => {
          const r = await call(gw.url, `/jobs/${id}?redirect=false`, { token: bearer });
          const b = (await r.json()) as Record<string, unknown>;
          return ["complete", "error", "cancelled"].includes(String(b.status)) ? b : undefined;
        },
        60_000,
        200,
      );
      expectSchema(done, job, "Job (finished)");
      expect(done.status, JSON.stringify(done)).toBe("complete");
      expect(done.modality).toBe(example.modality);
      expect(done.family).toBe(example.family);
      expect(done.model).toBe(example.model);
      expect(done.task).toBe(example.task);
      if (example.format !== undefined) expect(done.format).toBe(example.format);
      const count = typeof example.count === "number" ? example.count : 1;
      expect(done.outputs).toHaveLength(count);
      expect(new Set(done.outputs as string[]).size).toBe(count);
      expect((done.outputs as string[])[0]).toBe(done.output);
      expect(typeof done.seed).toBe("number");

      const redirect = await call(gw.url, `/jobs/${id}`, { token: bearer });
      expect(redirect.status).toBe(303);
      expect(redirect.headers.get("location")).toBe(done.output);
      for (const url of done.outputs as string[]) {
        const media = await fetch(url);
        expect(media.status).toBe(200);
        expect(media.headers.get("content-type")).toBe(
          example.modality === "video" ? "video/mp4" : "image/png",
        );
        await media.arrayBuffer();
      }

      if (name === "with_idempotency") {
        // Same customer, key and body: the first answer again, same id, marked as a replay.
        const replay = await call(gw.url, "/queue", { method: "POST", token: bearer, body });
        expect(replay.status).toBe(202);
        expect(replay.headers.get("idempotent-replayed")).toBe("true");
        expect(((await replay.json()) as { id: string }).id).toBe(id);
      }
    },
    90_000,
  );
});

describe("the original's read routes", () => {
  it("GET /models, /models/aliases and /models/loras match the spec's schemas", async () => {
    const models = await call(gw.url, "/models", { token: bearer });
    expect(models.status).toBe(200);
    const body = (await models.json()) as { image: { family: string; model: string; backends: string[] }[] };
    expectSchema(body, schemas.ModelsResponse, "ModelsResponse");
    // With no BACKENDS_FILE every engine of the catalogue is provided by the simulator (API.md §7).
    const sdxl = body.image.find((m) => m.family === "sdxl" && m.model === "base")!;
    expect([...sdxl.backends].sort()).toEqual(["tensorrt", "torch"]);

    const aliases = await call(gw.url, "/models/aliases", { token: bearer });
    const a = (await aliases.json()) as Record<string, unknown>;
    expectSchema(a, schemas.AliasesResponse, "AliasesResponse");
    expect(a["black-forest-labs/FLUX.1-schnell"]).toEqual({ family: "flux", model: "schnell" });

    const loras = await call(gw.url, "/models/loras", { token: bearer });
    const l = (await loras.json()) as { loras: unknown[] };
    const lorasSchema = deref<{ content: Record<string, { schema: unknown }> }>(
      spec.paths["/models/loras"]!.get!.responses["200"],
    ).content["application/json"]!.schema;
    expectSchema(l, lorasSchema, "loras");
    expect(l.loras).toHaveLength(9);
  });

  it("error bodies keep the original Error schema fields", async () => {
    const res = await call(gw.url, "/video/wan/default/i2v", {
      method: "POST",
      token: bearer,
      body: { prompt: "p" },
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, unknown>;
    expectSchema(body, schemas.Error, "Error");
    const example = deref<{ content: Record<string, { example: unknown }> }>(responses.ValidationError)
      .content["application/json"]!.example;
    expect(body).toMatchObject(example as Record<string, unknown>);
  });
});
