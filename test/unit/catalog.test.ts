// The model catalogue: the default CATALOG_FILE, its schema, alias lookups, /models and route resolution.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  CatalogError,
  buildCatalog,
  defaultEngine,
  paramRange,
  parseCatalog,
  resolveRoute,
  type Catalog,
  type RouteParams,
} from "../../src/core/catalog.js";
import { AppError } from "../../src/core/errors.js";
import {
  IMAGE_FORMATS,
  VIDEO_FORMATS,
  defaultFormat,
  formatIds,
  formatSize,
} from "../../src/core/formats.js";
import { loadSpec } from "../helpers/spec.js";

// The spec and the catalogue are arbitrary JSON read from disk; tests index into them freely.

type Json = any;

const catalogDoc = JSON.parse(
  readFileSync(new URL("../../config/catalog.json", import.meta.url), "utf8"),
) as {
  image: Record<string, unknown>[];
  video: Record<string, unknown>[];
  loras: Record<string, unknown>[];
};

const spec = loadSpec();
const okJson = (path: string): Json =>
  spec.paths[path].get.responses["200"].content["application/json"].example;
const catalog = buildCatalog(catalogDoc);

function clone<T>(v: T): T {
  return structuredClone(v);
}

function expectAppError(fn: () => unknown, code: string, status: number, field?: string): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    const e = err as AppError;
    expect({ code: e.code, status: e.status }).toEqual({ code, status });
    if (field !== undefined) expect(e.details?.["field"]).toBe(field);
    return e;
  }
  throw new Error("expected an AppError, nothing was thrown");
}

function expectCatalogError(doc: unknown, pathAndText: RegExp): void {
  try {
    parseCatalog(doc, "CATALOG_FILE");
  } catch (err) {
    expect(err).toBeInstanceOf(CatalogError);
    expect((err as Error).message).toMatch(/^CATALOG_FILE: invalid catalogue/);
    expect((err as CatalogError).issues.join("\n")).toMatch(pathAndText);
    return;
  }
  throw new Error("expected the catalogue to be rejected");
}

describe("formats", () => {
  it("knows the documented pixel sizes and defaults", () => {
    expect(defaultFormat("image")).toBe("1024");
    expect(defaultFormat("video")).toBe("720p");
    expect(formatSize("image", "portrait-wide")).toEqual({ width: 576, height: 1024 });
    expect(formatSize("image", "landscape")).toEqual({ width: 1024, height: 768 });
    expect(formatSize("video", "480p")).toEqual({ width: 832, height: 480 });
    expect(formatSize("video", "720p-portrait")).toEqual({ width: 720, height: 1280 });
    expect(formatSize("video", "square")).toEqual({ width: 640, height: 640 });
    expect(formatSize("video", "1024")).toBeUndefined();
    expect(formatSize("image", "toString")).toBeUndefined();
  });

  it("lists the same ids as the original spec's format enums, in its order", () => {
    expect(formatIds("image")).toEqual(spec.components.schemas.ImageFormatId.enum);
    expect(formatIds("video")).toEqual(spec.components.schemas.VideoFormatId.enum);
    expect(Object.keys(IMAGE_FORMATS).sort()).toEqual([...formatIds("image")].sort());
    expect(Object.keys(VIDEO_FORMATS).sort()).toEqual([...formatIds("video")].sort());
  });
});

describe("default catalogue", () => {
  it("is the original /models example plus sdxl base and lcm, every model active", () => {
    const names = catalog.entries().map((e) => `${e.modality}:${e.family}/${e.model}`);
    expect(names).toEqual([
      "image:flux/dev2",
      "image:flux/dev",
      "image:flux/schnell",
      "image:zimage/turbo",
      "image:qwen/edit",
      "image:sdxl/base",
      "image:sdxl/lcm",
      "video:wan/default",
    ]);
    for (const e of catalog.entries()) expect(e.status).toBe("active");
  });

  it("keeps every field of the original example (status and wan's t2v aside)", () => {
    const example = okJson("/models");
    for (const modality of ["image", "video"] as const) {
      for (const original of example[modality]) {
        const entry = catalogDoc[modality].find(
          (m) => m["family"] === original.family && m["model"] === original.model,
        );
        expect(entry, `${original.family}/${original.model}`).toBeDefined();
        const expected = { ...original, status: "active" };
        if (original.family === "wan") expected.tasks = ["t2v", "i2v"];
        const { limits: _limits, ...rest } = entry!;
        expect(rest).toEqual(expected);
      }
    }
  });

  it("gives sdxl base and lcm the tasks of the spec text and the family engines", () => {
    expect(catalog.find("sdxl", "base")?.tasks).toEqual(["t2i", "i2i", "edit"]);
    expect(catalog.find("sdxl", "lcm")?.tasks).toEqual(["t2i", "i2i"]);
    expect(catalog.find("wan", "default")?.tasks).toEqual(["t2v", "i2v"]);
    const engines = Object.fromEntries(catalog.entries().map((e) => [e.family, defaultEngine(e)]));
    expect(engines).toEqual({
      flux: "nunchaku",
      zimage: "nunchaku",
      qwen: "nunchaku",
      sdxl: "tensorrt",
      wan: "torch",
    });
  });

  it("ships the original nine LoRAs verbatim", () => {
    const original = okJson("/models/loras").loras;
    expect(catalog.loras()).toEqual(original);
    expect(catalog.lora("sdxl_sameface_fix")?.recommended_weight).toEqual([-0.55]);
    expect(catalog.loras().map((l) => l.id)).toEqual([
      "anti_blur",
      "amateur_snapshot",
      "hands_v2",
      "qwen_lightning_4step",
      "qwen_lightning_8step",
      "wan_lightx2v_high",
      "wan_lightx2v_low",
      "sdxl_sameface_fix",
      "sdxl_dmd2_4step",
    ]);
  });

  it("declares limits that do not narrow the global ranges (the spec text gives no hard per-model range)", () => {
    for (const e of catalog.entries()) {
      expect(e.limits, `${e.family}/${e.model}`).toBeDefined();
      expect(paramRange(e, "steps")).toEqual(
        e.modality === "image" ? { min: 1, max: 150, integer: true } : { min: 1, max: 50, integer: true },
      );
    }
  });

  it("is frozen", () => {
    const e = catalog.find("flux", "schnell")!;
    expect(Object.isFrozen(e) && Object.isFrozen(e.tasks) && Object.isFrozen(catalog.loras())).toBe(true);
  });
});

describe("aliases", () => {
  it("GET /models/aliases contains the original map plus the sdxl ids", () => {
    const aliases = catalog.aliases();
    expect(aliases).toMatchObject(okJson("/models/aliases"));
    expect(aliases["stabilityai/stable-diffusion-xl-base-1.0"]).toEqual({ family: "sdxl", model: "base" });
    expect(Object.keys(aliases)).toHaveLength(8);
  });

  it("resolves a Hugging Face id, ignoring case", () => {
    expect(catalog.resolveAlias("black-forest-labs/FLUX.1-schnell")).toEqual({
      family: "flux",
      model: "schnell",
    });
    expect(catalog.resolveAlias("BLACK-FOREST-LABS/flux.1-schnell")).toEqual({
      family: "flux",
      model: "schnell",
    });
    expect(catalog.resolveAlias("black-forest-labs/FLUX.1-pro")).toBeUndefined();
    expect(catalog.resolveAlias("flux/schnell")).toBeUndefined();
  });

  it("finds a model by the alias split at its first slash (the path form)", () => {
    expect(catalog.find("black-forest-labs", "FLUX.1-schnell")).toBe(catalog.find("flux", "schnell"));
    expect(catalog.find("Wan-AI", "Wan2.1-I2V-14B-480P")?.model).toBe("default");
    expect(catalog.find("Comfy-Org", "z_image_turbo")?.family).toBe("zimage");
    expect(catalog.find("black-forest-labs", "nope")).toBeUndefined();
    expect(catalog.find("flux", "SCHNELL")).toBeUndefined();
  });

  it("routes /image/black-forest-labs/FLUX.1-schnell/t2i to flux/schnell", () => {
    const r = resolveRoute(catalog, {
      modality: "image",
      family: "black-forest-labs",
      model: "FLUX.1-schnell",
      task: "t2i",
    });
    expect([r.entry.family, r.entry.model, r.task, r.modality]).toEqual(["flux", "schnell", "t2i", "image"]);
  });
});

describe("GET /models", () => {
  const capability = spec.components.schemas.ModelCapability;

  it("lists every model with the spec's required ModelCapability fields and valid enum values", () => {
    const body = catalog.modelsResponse();
    expect(Object.keys(body).sort()).toEqual([...spec.components.schemas.ModelsResponse.required].sort());
    expect(body.image).toHaveLength(7);
    expect(body.video).toHaveLength(1);
    for (const m of [...body.image, ...body.video]) {
      for (const field of capability.required)
        expect(m, `${m.family}/${m.model}.${field}`).toHaveProperty(field);
      for (const [k, v] of Object.entries(m)) {
        expect(v, k).not.toBeNull();
        expect(Object.keys(capability.properties)).toContain(k);
      }
      expect(capability.properties.status.enum).toContain(m.status);
      for (const t of m.tasks) expect(spec.components.schemas.TaskId.enum).toContain(t);
      for (const b of m.backends) expect(spec.components.schemas.BackendId.enum).toContain(b);
      expect(m).not.toHaveProperty("limits");
    }
  });

  it("lists only provided engines, and the default only when it is provided", () => {
    const body = catalog.modelsResponse((e) =>
      e.family === "flux" ? ["torch"] : ["nunchaku", "torch", "tensorrt"],
    );
    const schnell = body.image.find((m) => m.model === "schnell")!;
    expect(schnell.backends).toEqual(["torch"]);
    expect(schnell).not.toHaveProperty("default_backend");
    const wan = body.video[0]!;
    expect(wan.backends).toEqual(["torch", "nunchaku"]);
    expect(wan.default_backend).toBe("torch");
  });

  it("still lists models that are not routable, with their status, and omits absent optional fields", () => {
    const doc = clone(catalogDoc);
    doc.image[0]!["status"] = "coming_soon";
    delete doc.image[0]!["notes"];
    delete doc.image[0]!["presets"];
    delete doc.image[0]!["default_backend"];
    const body = buildCatalog(doc).modelsResponse();
    const dev2 = body.image[0]!;
    expect(dev2.status).toBe("coming_soon");
    expect(Object.keys(dev2)).toEqual([
      "family",
      "model",
      "modality",
      "tasks",
      "formats",
      "backends",
      "status",
      "aliases",
    ]);
    expect(JSON.stringify(body)).not.toContain("null");
  });

  it("returns copies: changing the body does not change the catalogue", () => {
    const body = catalog.modelsResponse();
    body.image[0]!.tasks.push("edit");
    expect(catalog.modelsResponse().image[0]!.tasks).toEqual(["t2i", "i2i"]);
  });
});

describe("resolveRoute", () => {
  const route = (over: Partial<RouteParams>, cat: Catalog = catalog) =>
    resolveRoute(cat, { modality: "image", family: "flux", model: "schnell", task: "t2i", ...over });

  it("accepts every task of every active model", () => {
    for (const e of catalog.entries()) {
      for (const task of e.tasks) {
        expect(
          resolveRoute(catalog, { modality: e.modality, family: e.family, model: e.model, task }).entry,
        ).toBe(e);
      }
    }
  });

  it.each<[Partial<RouteParams>, string]>([
    [{ task: "txt2img" }, "task"],
    [{ task: "T2I" }, "task"],
    [{ task: "" }, "task"],
    [{ modality: "audio" }, "modality"],
    [{ modality: "Image" }, "modality"],
  ])("answers 400 for %j", (over, field) => {
    expectAppError(() => route(over), "validation_error", 400, field);
  });

  it.each<[Partial<RouteParams>, string]>([
    [{ family: "flux", model: "pro" }, "unknown model"],
    [{ family: "ltx", model: "default" }, "unknown family"],
    [{ task: "edit" }, "a valid task the model lacks"],
    [{ task: "t2v" }, "a video task on an image model"],
    [{ modality: "video" }, "the other modality"],
    [{ modality: "image", family: "wan", model: "default", task: "i2v" }, "a video model under /image"],
    [{ family: "black-forest-labs", model: "FLUX.1-pro" }, "an unknown alias"],
  ])("answers 404 for %j (%s)", (over) => {
    expectAppError(() => route(over), "not_found", 404);
  });

  it("answers 404 for coming_soon and deprecated models, accepts preview ones", () => {
    for (const [status, ok] of [
      ["coming_soon", false],
      ["deprecated", false],
      ["preview", true],
      ["active", true],
    ] as const) {
      const doc = clone(catalogDoc);
      doc.image[2]!["status"] = status;
      const cat = buildCatalog(doc);
      if (ok) expect(route({}, cat).entry.status).toBe(status);
      else expect(expectAppError(() => route({}, cat), "not_found", 404).message).toMatch(status);
    }
  });

  it("checks the modality and task before looking the model up", () => {
    expectAppError(() => route({ family: "nope", task: "x2y" }), "validation_error", 400, "task");
    expectAppError(() => route({ family: "nope", modality: "audio" }), "validation_error", 400, "modality");
  });
});

describe("catalogue schema", () => {
  it("accepts the default catalogue and a minimal one", () => {
    expect(() => parseCatalog(catalogDoc)).not.toThrow();
    const minimal = {
      video: [
        {
          family: "ltx",
          model: "default",
          modality: "video",
          tasks: ["t2v"],
          formats: ["720p"],
          backends: ["torch"],
          status: "preview",
        },
      ],
    };
    const cat = buildCatalog(minimal);
    expect(cat.find("ltx", "default")?.aliases).toEqual([]);
    expect(cat.loras()).toEqual([]);
    expect(defaultEngine(cat.find("ltx", "default")!)).toBe("torch");
  });

  const mutate = (f: (d: typeof catalogDoc) => void) => {
    const d = clone(catalogDoc);
    f(d);
    return d;
  };

  it.each<[string, (d: typeof catalogDoc) => void, RegExp]>([
    [
      "a default backend the model lacks",
      (d) => (d.image[3]!["default_backend"] = "torch"),
      /image\.3\.default_backend: /,
    ],
    ["an unknown engine", (d) => (d.image[0]!["backends"] = ["nunchaku", "vllm"]), /image\.0\.backends\.1: /],
    ["a model under the other modality", (d) => (d.video[0]!["modality"] = "image"), /video\.0\.modality: /],
    [
      "a video task on an image model",
      (d) => (d.image[0]!["tasks"] = ["t2i", "i2v"]),
      /image\.0\.tasks\.1: /,
    ],
    ["an unknown format", (d) => (d.image[0]!["formats"] = ["1024", "2048"]), /image\.0\.formats\.1: .*2048/],
    [
      "a video format on an image model",
      (d) => (d.image[0]!["formats"] = ["720p"]),
      /image\.0\.formats\.0: /,
    ],
    ["an unknown status", (d) => (d.image[0]!["status"] = "beta"), /image\.0\.status: /],
    [
      "a typo in a member name",
      (d) => (d.image[0]!["defualt_backend"] = "torch"),
      /image\.0: .*defualt_backend/,
    ],
    [
      "a duplicate model",
      (d) => d.image.push(clone(d.image[0]!)),
      /image\.7\.model: duplicate model flux\/dev2/,
    ],
    [
      "an alias used twice (case-insensitively)",
      (d) => (d.image[1]!["aliases"] = ["BLACK-FOREST-LABS/flux.2-dev"]),
      /image\.1\.aliases\.0: .*flux\/dev2/,
    ],
    [
      "an alias that is not an HF id",
      (d) => (d.image[1]!["aliases"] = ["flux-dev"]),
      /image\.1\.aliases\.0: /,
    ],
    [
      "limits that widen a range",
      (d) => (d.image[2]!["limits"] = { steps: { max: 500 } }),
      /image\.2\.limits\.steps\.max: /,
    ],
    [
      "limits with min above max",
      (d) => (d.image[2]!["limits"] = { steps: { min: 9, max: 4 } }),
      /image\.2\.limits\.steps: /,
    ],
    [
      "limits on a parameter of the other modality",
      (d) => (d.image[2]!["limits"] = { duration: { max: 4 } }),
      /image\.2\.limits\.duration: /,
    ],
    [
      "a preset with an unknown sampler",
      (d) => ((d.video[0]!["presets"] as Json).fast.sampler = "ddim"),
      /video\.0\.presets\.fast\.sampler: /,
    ],
    ["a duplicate LoRA", (d) => d.loras.push(clone(d.loras[0]!)), /loras\.9\.id: duplicate/],
    ["a LoRA without families", (d) => (d.loras[0]!["families"] = []), /loras\.0\.families: /],
    ["an unknown top-level member", (d) => ((d as Json).models = []), /\(root\): .*models/],
  ])("rejects %s, naming the path", (_name, f, expected) => {
    expectCatalogError(mutate(f), expected);
  });

  it("rejects a catalogue without models and non-objects", () => {
    expectCatalogError({ loras: [] }, /no model/);
    expectCatalogError([], /\(root\)/);
    expect(() => buildCatalog("nope", "x.json")).toThrow(/^x\.json: invalid catalogue/);
  });

  it("narrows ranges with limits", () => {
    const doc = clone(catalogDoc);
    doc.image[2]!["limits"] = { steps: { max: 8 }, cfg: { min: 1, max: 2 } };
    const e = buildCatalog(doc).find("flux", "schnell")!;
    expect(paramRange(e, "steps")).toEqual({ min: 1, max: 8, integer: true });
    expect(paramRange(e, "cfg")).toEqual({ min: 1, max: 2, integer: false });
    expect(paramRange(e, "guidance")).toEqual({ min: 0, max: 30, integer: false });
    expect(paramRange(e, "duration")).toBeUndefined();
  });
});
