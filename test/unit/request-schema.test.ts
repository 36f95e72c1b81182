// Generation request validation: spec examples, defaults, and the 400/404 matrix of API.md §3 and §7.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildCatalog, resolveRoute, type ModelEntry, type Task } from "../../src/core/catalog.js";
import { AppError } from "../../src/core/errors.js";
import {
  MAX_DATA_IMAGE_BYTES,
  SERVER_OWNED_FIELDS,
  dataRefBytes,
  imageGenerationSchema,
  outputCount,
  parseImageRef,
  parseQueueRequest,
  parseSyncRequest,
  videoGenerationSchema,
  type GenerationRequest,
  type QueueRequest,
} from "../../src/core/request-schema.js";
import { loadSpec } from "../helpers/spec.js";

// The spec and the catalogue are arbitrary JSON read from disk; tests index into them freely.

type Json = any;

const catalogDoc: Json = JSON.parse(
  readFileSync(new URL("../../config/catalog.json", import.meta.url), "utf8"),
);
const catalog = buildCatalog(catalogDoc);

const spec = loadSpec();
const examplesOf = (path: string): [string, Record<string, unknown>][] =>
  Object.entries(spec.paths[path].post.requestBody.content["application/json"].examples).map(([name, ex]) => [
    name,
    (ex as { value: Record<string, unknown> }).value,
  ]);

const HEX = "0123456789abcdef".repeat(4);
const DIGEST = `sha256-${HEX}`;
const ASSET = "a_AbCdEfGh12345678";
const PNG_1PX =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

function entry(family: string, model: string): ModelEntry {
  const e = catalog.find(family, model);
  if (e === undefined) throw new Error(`${family}/${model} missing from the catalogue`);
  return e;
}

function sync(
  body: unknown,
  family = "flux",
  model = "schnell",
  task: Task = "t2i",
  format?: string,
): GenerationRequest {
  return parseSyncRequest(body, {
    entry: entry(family, model),
    task,
    catalog,
    ...(format !== undefined && { format }),
  });
}

function queue(body: Record<string, unknown>, minTtlS = 60, maxTtlS = 86_400): QueueRequest {
  return parseQueueRequest(
    { modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "a cat", ...body },
    { catalog, minTtlS, maxTtlS },
  );
}

function fails(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error("expected an AppError, the request was accepted");
}

function expect400(fn: () => unknown, field: string, constraint?: string): AppError {
  const e = fails(fn);
  expect({ code: e.code, status: e.status, field: e.details?.["field"] }).toEqual({
    code: "validation_error",
    status: 400,
    field,
  });
  if (constraint !== undefined) expect(e.details?.["constraint"]).toBe(constraint);
  expect(e.message.length).toBeGreaterThan(0);
  return e;
}

function expect404(fn: () => unknown): AppError {
  const e = fails(fn);
  expect({ code: e.code, status: e.status }).toEqual({ code: "not_found", status: 404 });
  return e;
}

describe("the original spec's request examples", () => {
  const syncCases = [
    ...examplesOf("/image/{family}/{model}/{task}"),
    ...examplesOf("/video/{family}/{model}/{task}"),
  ];

  it("has the examples this suite expects", () => {
    expect(syncCases.map(([n]) => n).sort()).toEqual(
      ["edit_inpaint", "i2i_transform", "i2v_basic", "i2v_detailed", "t2i_detailed", "t2i_simple"].sort(),
    );
    expect(examplesOf("/queue").map(([n]) => n)).toEqual(["video", "image_batch", "with_idempotency"]);
  });

  it.each(syncCases)("sync example %s validates on every model offering its task", (name, body) => {
    const task = name.split("_")[0] as Task;
    const models = catalog.entries().filter((e) => e.tasks.includes(task));
    expect(models.length).toBeGreaterThan(0);
    for (const e of models) {
      const req = parseSyncRequest(body, { entry: e, task, catalog });
      expect([req.family, req.model, req.task, req.prompt]).toEqual([
        e.family,
        e.model,
        task,
        body["prompt"],
      ]);
    }
  });

  it.each(examplesOf("/queue"))("queue example %s validates", (_name, body) => {
    const req = parseQueueRequest(body, { catalog, minTtlS: 60, maxTtlS: 86_400 });
    expect([req.modality, req.family, req.model, req.task]).toEqual([
      body["modality"],
      body["family"],
      body["model"],
      body["task"],
    ]);
    if (body["format"] !== undefined) expect(req.format).toBe(body["format"]);
    if (body["webhook"] !== undefined) expect(req.webhook).toBe(body["webhook"]);
    if (body["idempotency_key"] !== undefined) expect(req.idempotency_key).toBe(body["idempotency_key"]);
    if (body["count"] !== undefined) expect(outputCount(req)).toBe(body["count"]);
  });

  it("exports zod schemas that accept the examples' generation fields too", () => {
    for (const [name, body] of syncCases) {
      const schema = name.startsWith("i2v") ? videoGenerationSchema : imageGenerationSchema;
      expect(schema.safeParse(body).success, name).toBe(true);
    }
    expect(imageGenerationSchema.safeParse({ prompt: "x", stpes: 3 }).success).toBe(false);
  });
});

describe("normalised requests", () => {
  it("applies the image defaults and leaves the seed to the server", () => {
    const req = sync({ prompt: "a cat" });
    expect(req).toEqual({
      modality: "image",
      task: "t2i",
      family: "flux",
      model: "schnell",
      format: "1024",
      width: 1024,
      height: 1024,
      prompt: "a cat",
      steps: 4,
      lora: [],
      cfg: 1,
      count: 1,
    });
    expect("seed" in req).toBe(false);
  });

  it("applies strength 0.8 to image-input tasks only", () => {
    expect(sync({ prompt: "x", image: "https://example.com/a.png" }, "flux", "dev", "i2i")).toMatchObject({
      strength: 0.8,
    });
    expect(
      sync({ prompt: "x", strength: 0.3, image: "https://example.com/a.png" }, "flux", "dev", "i2i"),
    ).toMatchObject({
      strength: 0.3,
    });
    expect(sync({ prompt: "x" }, "flux", "dev", "t2i")).not.toHaveProperty("strength");
  });

  it("applies the video defaults: duration 2, lightning false, steps of the standard preset, 720p", () => {
    const req = sync({ prompt: "waves" }, "wan", "default", "t2v");
    expect(req).toMatchObject({
      modality: "video",
      task: "t2v",
      format: "720p",
      width: 1280,
      height: 720,
      duration: 2,
      lightning: false,
      steps: 28,
      lora: [],
    });
    expect(req).not.toHaveProperty("cfg");
    expect(req).not.toHaveProperty("count");
    expect(outputCount(req)).toBe(1);
  });

  it("takes the fast preset's steps for a lightning video and the client's steps when given", () => {
    expect(sync({ prompt: "w", lightning: true }, "wan", "default", "t2v").steps).toBe(8);
    expect(sync({ prompt: "w", lightning: true, steps: 12 }, "wan", "default", "t2v").steps).toBe(12);
    expect(sync({ prompt: "a", steps: 40 }).steps).toBe(40);
  });

  it("resolves formats to pixels", () => {
    expect(sync({ prompt: "x" }, "flux", "dev", "t2i", "portrait-wide")).toMatchObject({
      width: 576,
      height: 1024,
    });
    expect(sync({ prompt: "x" }, "wan", "default", "t2v", "480p-portrait")).toMatchObject({
      width: 480,
      height: 832,
    });
    expect(sync({ prompt: "x" }, "zimage", "turbo", "t2i", "landscape")).toMatchObject({
      width: 1024,
      height: 768,
    });
  });

  it("keeps every accepted field with its value", () => {
    const body = {
      prompt: "p",
      negative_prompt: "blur",
      seed: 4_294_967_295,
      steps: 150,
      cfg: 20,
      guidance: 30,
      count: 4,
      sampler: "res_3s_sde",
      scheduler: "bong_tangent",
      noise_type: "perlin",
      eta: 2,
      clip_skip: 12,
      detail_amount: -5,
      detail_start: 0.2,
      detail_end: 0.8,
      lora: [{ id: "anti_blur", weight: 0.8 }, { id: "hands_v2" }],
    };
    const req = sync(body, "flux", "dev");
    expect(req).toMatchObject({
      ...body,
      lora: [
        { id: "anti_blur", weight: 0.8 },
        { id: "hands_v2", weight: 1 },
      ],
    });
    const video = sync(
      {
        prompt: "v",
        shift: -1,
        motion_strength: 1,
        duration: 10,
        steps: 50,
        lora: [{ id: "wan_lightx2v_high", weight: 0.9 }],
      },
      "wan",
      "default",
      "t2v",
    );
    expect(video).toMatchObject({
      shift: -1,
      motion_strength: 1,
      duration: 10,
      steps: 50,
      lora: [{ id: "wan_lightx2v_high", weight: 0.9 }],
    });
  });

  it("treats null as absent", () => {
    const req = sync(
      { prompt: "x", seed: null, negative_prompt: null, lora: [{ id: "anti_blur", weight: null }] },
      "flux",
      "dev",
    );
    expect(req).not.toHaveProperty("seed");
    expect(req).not.toHaveProperty("negative_prompt");
    expect(req.lora).toEqual([{ id: "anti_blur", weight: 1 }]);
    expect400(() => sync({ prompt: null }), "prompt", "required");
  });

  it("accepts negative LoRA weights (sdxl_sameface_fix)", () => {
    expect(
      sync({ prompt: "x", lora: [{ id: "sdxl_sameface_fix", weight: -0.55 }] }, "sdxl", "base").lora,
    ).toEqual([{ id: "sdxl_sameface_fix", weight: -0.55 }]);
  });

  it("returns canonical names and queue defaults for an aliased /queue body", () => {
    const req = queue({ family: "black-forest-labs", model: "FLUX.1-schnell" });
    expect(req).toMatchObject({ family: "flux", model: "schnell", format: "1024", priority: "normal" });
    for (const k of ["ttl", "webhook", "webhook_events", "idempotency_key", "backend"])
      expect(req).not.toHaveProperty(k);
  });

  it("carries the queue options", () => {
    const req = queue({
      priority: "high",
      ttl: 600,
      backend: "gpu-a",
      webhook: "https://hooks.example.com/x",
      webhook_events: ["error", "started", "complete"],
      idempotency_key: "k".repeat(64),
      format: "landscape-wide",
    });
    expect(req).toMatchObject({
      priority: "high",
      ttl: 600,
      backend: "gpu-a",
      webhook: "https://hooks.example.com/x",
      webhook_events: ["started", "complete", "error"],
      idempotency_key: "k".repeat(64),
      format: "landscape-wide",
      width: 1024,
      height: 576,
    });
    expect(queue({ webhook: "https://h.example.com/" }).webhook_events).toEqual([
      "complete",
      "error",
      "cancelled",
    ]);
  });

  it("lets tests lower the ttl bound", () => {
    expect(queue({ ttl: 1 }, 1).ttl).toBe(1);
    expect400(() => queue({ ttl: 1 }), "ttl", "minimum");
  });
});

describe("image references", () => {
  it.each([
    ["https://example.com/a.png", { kind: "url", url: "https://example.com/a.png" }],
    ["https://cdn.render.weyl.ai/a/xyz123", { kind: "url" }],
    [DIGEST, { kind: "digest", digest: DIGEST }],
    [`blake3-${HEX}`, { kind: "digest", digest: `blake3-${HEX}` }],
    [`http://127.0.0.1:8080/objects/${DIGEST}?exp=1&sig=abc`, { kind: "digest", digest: DIGEST }],
    [`https://gw.example.com/render/objects/${DIGEST}`, { kind: "digest", digest: DIGEST }],
    [`/objects/${DIGEST}`, { kind: "digest", digest: DIGEST, url: `/objects/${DIGEST}` }],
    [`http://localhost:8080/assets/${ASSET}`, { kind: "asset", asset_id: ASSET }],
    [`/assets/${ASSET}`, { kind: "asset", asset_id: ASSET }],
    [PNG_1PX, { kind: "data", media_type: "image/png" }],
    ["data:image/jpg;base64,/9j/4AAQ", { kind: "data", media_type: "image/jpeg", size: 6 }],
    ["data:image/webp;base64,UklGRg", { kind: "data", media_type: "image/webp", size: 4 }],
  ])("classifies %s", (value, expected) => {
    expect(parseImageRef(value)).toMatchObject(expected);
    expect(sync({ prompt: "x", image: value }, "flux", "dev", "i2i").image).toMatchObject(expected);
  });

  it("decodes inline data and measures its size", () => {
    const ref = parseImageRef(PNG_1PX);
    if (ref.kind !== "data") throw new Error("expected a data ref");
    const bytes = dataRefBytes(ref);
    expect(bytes.length).toBe(ref.size);
    expect([...bytes.slice(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
  });

  it("accepts exactly 1 MiB of inline data and refuses one byte more", () => {
    const b64 = (n: number) => Buffer.alloc(n, 7).toString("base64");
    expect(parseImageRef(`data:image/png;base64,${b64(MAX_DATA_IMAGE_BYTES)}`)).toMatchObject({
      size: MAX_DATA_IMAGE_BYTES,
    });
    expect400(
      () => parseImageRef(`data:image/png;base64,${b64(MAX_DATA_IMAGE_BYTES + 1)}`),
      "image",
      "max_bytes",
    );
    expect400(
      () =>
        sync(
          { prompt: "x", image: `data:image/png;base64,${b64(5 * MAX_DATA_IMAGE_BYTES)}` },
          "flux",
          "dev",
          "i2i",
        ),
      "image",
      "max_bytes",
    );
  });

  it.each([
    "http://example.com/a.png",
    "ftp://example.com/a.png",
    "example.com/a.png",
    "not a url",
    "",
    "data:image/gif;base64,R0lGODlh",
    "data:image/png;base64,",
    "data:image/png;base64,!!!!",
    "data:image/png;base64,iVBORw0K Ggo=",
    "data:image/png;base64,A",
    "data:image/png,rawbytes",
    "data:text/plain;base64,aGVsbG8=",
    "sha256-abc",
    `sha256-${HEX.toUpperCase()}`,
    `md5-${HEX}`,
    "/assets/a_short",
    `http://localhost/objects/${DIGEST}extra`,
    "//evil.example.com/x.png",
    `https://${"a".repeat(5000)}.example.com/`,
  ])("refuses %j", (value) => {
    expect400(() => sync({ prompt: "x", image: value }, "flux", "dev", "i2i"), "image");
    expect400(() => sync({ prompt: "x", image: PNG_1PX, mask: value }, "qwen", "edit", "edit"), "mask");
  });

  it("refuses non-string references", () => {
    expect400(() => sync({ prompt: "x", image: 42 }, "flux", "dev", "i2i"), "image", "type");
    expect400(
      () => sync({ prompt: "x", image: { url: "https://e.com/a.png" } }, "flux", "dev", "i2i"),
      "image",
      "type",
    );
  });
});

describe("validation matrix: 400 validation_error with details.field", () => {
  it.each([[[]], ["a string"], [42], [true], [null], [undefined]])("refuses the body %j", (body) => {
    expect400(() => sync(body), "body", "type");
    expect400(() => parseQueueRequest(body, { catalog, minTtlS: 60, maxTtlS: 86_400 }), "body", "type");
  });

  it.each<[string, Record<string, unknown>, string, string]>([
    ["a missing prompt", { prompt: undefined }, "prompt", "required"],
    ["an empty prompt", { prompt: "" }, "prompt", "min_length"],
    ["a prompt of 4001 characters", { prompt: "p".repeat(4001) }, "prompt", "max_length"],
    ["a number as prompt", { prompt: 5 }, "prompt", "type"],
    [
      "a negative prompt of 2001 characters",
      { negative_prompt: "n".repeat(2001) },
      "negative_prompt",
      "max_length",
    ],
    ["a negative seed", { seed: -1 }, "seed", "minimum"],
    ["a seed above 2^32-1", { seed: 4_294_967_296 }, "seed", "maximum"],
    ["a fractional seed", { seed: 1.5 }, "seed", "integer"],
    ["a string seed", { seed: "42" }, "seed", "type"],
    ["zero steps", { steps: 0 }, "steps", "minimum"],
    ["151 image steps", { steps: 151 }, "steps", "maximum"],
    ["fractional steps", { steps: 2.5 }, "steps", "integer"],
    ["cfg above 20", { cfg: 20.5 }, "cfg", "maximum"],
    ["negative cfg", { cfg: -0.1 }, "cfg", "minimum"],
    ["guidance above 30", { guidance: 30.1 }, "guidance", "maximum"],
    ["strength above 1", { strength: 1.1 }, "strength", "maximum"],
    ["count 5", { count: 5 }, "count", "maximum"],
    ["count 0", { count: 0 }, "count", "minimum"],
    ["eta above 2", { eta: 2.1 }, "eta", "maximum"],
    ["clip_skip 13", { clip_skip: 13 }, "clip_skip", "maximum"],
    ["detail_amount below -5", { detail_amount: -5.1 }, "detail_amount", "minimum"],
    ["detail_start above 1", { detail_start: 1.5 }, "detail_start", "maximum"],
    ["detail_start after detail_end", { detail_start: 0.9, detail_end: 0.1 }, "detail_end", "order"],
    ["an unknown sampler", { sampler: "ddim" }, "sampler", "enum"],
    ["an unknown scheduler", { scheduler: "normal" }, "scheduler", "enum"],
    ["an unknown noise type", { noise_type: "pink" }, "noise_type", "enum"],
    ["a typo", { stpes: 4 }, "stpes", "unknown"],
    ["an unknown field", { style: "anime" }, "style", "unknown"],
    ["a video field on an image model", { duration: 2 }, "duration", "unknown"],
    ["lightning on an image model", { lightning: true }, "lightning", "unknown"],
    ["format in a sync body", { format: "512" }, "format", "unknown"],
    ["a queue option in a sync body", { priority: "high" }, "priority", "unknown"],
    ["routing in a sync body", { model: "dev" }, "model", "unknown"],
    ["lora that is not an array", { lora: "anti_blur" }, "lora", "type"],
    ["a lora entry that is not an object", { lora: ["anti_blur"] }, "lora.0", "type"],
    ["a lora entry without id", { lora: [{ weight: 1 }] }, "lora.0.id", "required"],
    ["a string lora weight", { lora: [{ id: "anti_blur", weight: "1" }] }, "lora.0.weight", "type"],
    [
      "a second lora entry with a bad weight",
      { lora: [{ id: "anti_blur" }, { id: "hands_v2", weight: "x" }] },
      "lora.1.weight",
      "type",
    ],
    [
      "an unknown member in a lora entry",
      { lora: [{ id: "anti_blur", scale: 1 }] },
      "lora.0.scale",
      "unknown",
    ],
    ["an unknown LoRA", { lora: [{ id: "https://civitai.com/x.safetensors" }] }, "lora", "unknown"],
    ["a LoRA of another family", { lora: [{ id: "qwen_lightning_4step" }] }, "lora", "family"],
    [
      "the same LoRA twice",
      { lora: [{ id: "anti_blur" }, { id: "anti_blur", weight: 0.5 }] },
      "lora",
      "unique",
    ],
  ])("image: %s", (_name, extra, field, constraint) => {
    expect400(() => sync({ prompt: "a cat", ...extra }, "flux", "dev"), field, constraint);
  });

  it("counts prompt characters as code points", () => {
    expect(sync({ prompt: "😀".repeat(4000) }).prompt).toHaveLength(8000);
    expect400(() => sync({ prompt: "😀".repeat(4001) }), "prompt", "max_length");
  });

  it("suggests the intended field for a typo", () => {
    expect(expect400(() => sync({ prompt: "x", stpes: 4 }), "stpes").message).toMatch(/did you mean steps/);
  });

  it.each<[string, Record<string, unknown>, string, string]>([
    ["51 video steps", { steps: 51 }, "steps", "maximum"],
    ["a duration below 0.5", { duration: 0.4 }, "duration", "minimum"],
    ["a duration above 10", { duration: 10.5 }, "duration", "maximum"],
    ["motion_strength above 1", { motion_strength: 1.5 }, "motion_strength", "maximum"],
    ["a non-boolean lightning", { lightning: "yes" }, "lightning", "type"],
    ["a string shift", { shift: "5" }, "shift", "type"],
    ["count on a video model", { count: 2 }, "count", "unknown"],
    ["guidance on a video model", { guidance: 3 }, "guidance", "unknown"],
    ["a mask on a video model", { mask: PNG_1PX }, "mask", "unknown"],
    ["strength on a video model", { strength: 0.5 }, "strength", "unknown"],
    ["a flux LoRA on wan", { lora: [{ id: "anti_blur" }] }, "lora", "family"],
  ])("video: %s", (_name, extra, field, constraint) => {
    expect400(() => sync({ prompt: "waves", ...extra }, "wan", "default", "t2v"), field, constraint);
  });

  it.each([...SERVER_OWNED_FIELDS])("refuses the server-owned field %s on both routes", (field) => {
    expect400(() => sync({ prompt: "x", [field]: "j_123" }), field, "server_owned");
    expect400(() => queue({ [field]: 1 }), field, "server_owned");
  });

  it("covers the server-owned fields the brief names", () => {
    for (const f of [
      "id",
      "customer_id",
      "status",
      "attempts",
      "position",
      "progress",
      "output",
      "outputs",
      "created_at",
      "started_at",
      "completed_at",
      "gpu_ms",
      "price_micro_usd",
      "backend_id",
      "error",
    ]) {
      expect(SERVER_OWNED_FIELDS.has(f), f).toBe(true);
    }
  });

  it.each<[string, string, Task, Record<string, unknown>, string]>([
    ["i2i without image", "flux/dev", "i2i", {}, "image"],
    ["i2v without image", "wan/default", "i2v", {}, "image"],
    ["edit without image", "qwen/edit", "edit", { mask: PNG_1PX }, "image"],
    ["edit without mask", "qwen/edit", "edit", { image: PNG_1PX }, "mask"],
    ["sdxl edit without mask", "sdxl/base", "edit", { image: DIGEST }, "mask"],
  ])("%s → required", (_name, fm, task, extra, field) => {
    const [family, model] = fm.split("/") as [string, string];
    const e = expect400(() => sync({ prompt: "x", ...extra }, family, model, task), field, "required");
    expect(e.message).toBe(`${field} required for ${task} task`);
  });

  it("answers the spec's own example message for i2v without image", () => {
    const e = expect400(() => sync({ prompt: "she turns" }, "wan", "default", "i2v"), "image", "required");
    expect({ message: e.message, details: e.details }).toEqual({
      message: "image required for i2v task",
      details: { field: "image", constraint: "required" },
    });
  });

  it("refuses a format the model lacks", () => {
    expect400(() => sync({ prompt: "x" }, "zimage", "turbo", "t2i", "portrait-wide"), "format", "enum");
    expect400(() => sync({ prompt: "x" }, "flux", "dev", "t2i", "720p"), "format", "enum");
    expect400(() => sync({ prompt: "x" }, "wan", "default", "t2v", "1024"), "format", "enum");
  });

  it("answers 404 when the sync context's model lacks the task", () => {
    expect404(() => sync({ prompt: "x" }, "zimage", "turbo", "edit"));
  });
});

describe("catalogue limits narrow the ranges", () => {
  const doc = structuredClone(catalogDoc);
  doc.image[2].limits = { steps: { min: 1, max: 8 }, guidance: { min: 3, max: 4 } };
  doc.image[2].presets.standard.steps = 25;
  const narrowed = buildCatalog(doc);
  const e = narrowed.find("flux", "schnell")!;
  const parse = (body: Record<string, unknown>) =>
    parseSyncRequest(body, { entry: e, task: "t2i", catalog: narrowed });

  it("refuses values outside the model's range and names the model", () => {
    const err = expect400(() => parse({ prompt: "x", steps: 9 }), "steps", "maximum");
    expect(err.message).toMatch(/1–8 for flux\/schnell/);
    expect400(() => parse({ prompt: "x", guidance: 2.5 }), "guidance", "minimum");
    expect(parse({ prompt: "x", steps: 8, guidance: 3.5 }).steps).toBe(8);
  });

  it("keeps the default steps inside the narrowed range", () => {
    expect(parse({ prompt: "x" }).steps).toBe(8);
  });

  it("applies the same limits on /queue", () => {
    expect400(
      () =>
        parseQueueRequest(
          { modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "x", steps: 9 },
          { catalog: narrowed, minTtlS: 60, maxTtlS: 86_400 },
        ),
      "steps",
      "maximum",
    );
  });
});

describe("POST /queue matrix", () => {
  it.each(["modality", "family", "model", "task"])("refuses a body without %s", (field) => {
    expect400(() => queue({ [field]: undefined }), field, "required");
    expect400(() => queue({ [field]: 7 }), field, "type");
  });

  it.each<[Record<string, unknown>, string, string]>([
    [{ task: "upscale" }, "task", "enum"],
    [{ modality: "audio" }, "modality", "enum"],
    [{ format: "2048" }, "format", "enum"],
    [{ format: "720p" }, "format", "enum"],
    [{ format: 512 }, "format", "type"],
    [{ priority: "urgent" }, "priority", "enum"],
    [{ webhook: "http://hooks.example.com/x" }, "webhook", "format"],
    [{ webhook: "hooks.example.com/x" }, "webhook", "format"],
    [{ webhook: 5 }, "webhook", "type"],
    [{ webhook: `https://h.example.com/${"x".repeat(2100)}` }, "webhook", "max_length"],
    [{ webhook: "https://h.example.com/", webhook_events: ["done"] }, "webhook_events.0", "enum"],
    [{ webhook: "https://h.example.com/", webhook_events: "complete" }, "webhook_events", "type"],
    [{ webhook_events: ["complete"] }, "webhook_events", "requires_webhook"],
    [{ ttl: 59 }, "ttl", "minimum"],
    [{ ttl: 86_401 }, "ttl", "maximum"],
    [{ ttl: 60.5 }, "ttl", "integer"],
    [{ ttl: "600" }, "ttl", "type"],
    [{ idempotency_key: "k".repeat(65) }, "idempotency_key", "max_length"],
    [{ idempotency_key: "" }, "idempotency_key", "min_length"],
    [{ idempotency_key: "a\nb" }, "idempotency_key", "format"],
    [{ backend: 3 }, "backend", "type"],
    [{ backend: "no spaces please" }, "backend", "format"],
    [{ stpes: 3 }, "stpes", "unknown"],
    [{ callback_url: "https://x.example.com" }, "callback_url", "unknown"],
    [{ duration: 3 }, "duration", "unknown"],
    [{ prompt: "" }, "prompt", "min_length"],
    [{ task: "i2i", model: "dev" }, "image", "required"],
    [{ lora: [{ id: "wan_lightx2v_low" }] }, "lora", "family"],
  ])("refuses %j", (extra, field, constraint) => {
    expect400(() => queue(extra), field, constraint);
  });

  it("refuses image fields on a video job", () => {
    const body = { modality: "video", family: "wan", model: "default", task: "t2v", prompt: "x" };
    const ctx = { catalog, minTtlS: 60, maxTtlS: 86_400 };
    expect(parseQueueRequest(body, ctx).modality).toBe("video");
    expect400(() => parseQueueRequest({ ...body, count: 2 }, ctx), "count", "unknown");
    expect400(() => parseQueueRequest({ ...body, format: "1024" }, ctx), "format", "enum");
  });

  it.each<[Record<string, unknown>, string]>([
    [{ family: "flux", model: "pro" }, "unknown model"],
    [{ family: "midjourney", model: "v6" }, "unknown family"],
    [{ task: "edit" }, "a task flux/schnell lacks"],
    [{ task: "i2v" }, "a video task on an image model"],
    [{ modality: "video" }, "the other modality"],
    [{ family: "black-forest-labs", model: "FLUX.1-pro" }, "an unknown alias"],
  ])("answers 404 for %j (%s)", (extra) => {
    expect404(() => queue(extra));
  });

  it("answers 404 for a model that is not active or preview", () => {
    const doc = structuredClone(catalogDoc);
    doc.image[2].status = "deprecated";
    const cat = buildCatalog(doc);
    expect404(() =>
      parseQueueRequest(
        { modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "x" },
        { catalog: cat, minTtlS: 60, maxTtlS: 86_400 },
      ),
    );
  });

  it("reports server-owned fields before resolving the model", () => {
    expect400(() => queue({ family: "nope", customer_id: "c_1" }), "customer_id", "server_owned");
  });

  it("resolves the model before judging fields that depend on it", () => {
    expect404(() => queue({ family: "nope", stpes: 3 }));
  });
});

describe("sync and queue agree", () => {
  it("normalise the same generation fields to the same request", () => {
    const fields = { prompt: "x", steps: 6, seed: 7, lora: [{ id: "anti_blur" }], image: DIGEST };
    const viaSync = sync(fields, "flux", "dev", "i2i", "512");
    const viaQueue = queue({ ...fields, model: "dev", task: "i2i", format: "512" });
    const { priority: _p, ...generation } = viaQueue;
    expect(generation).toEqual(viaSync);
    const route = resolveRoute(catalog, { modality: "image", family: "flux", model: "dev", task: "i2i" });
    expect(parseSyncRequest(fields, { ...route, catalog, format: "512" })).toEqual(viaSync);
  });
});
