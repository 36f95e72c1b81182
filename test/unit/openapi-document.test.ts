// The OpenAPI 3.1 document (GET /openapi.json) as built: a valid 3.1 document whose schemas are strict
// JSON Schema 2020-12, generated from the zod schemas the routes validate with (what the parsers take
// validates against it; what they refuse for a type, range or unknown field does not), with the
// original spec's operationIds and tags, and every problem code on the statuses it belongs to.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { buildCatalog, type Task } from "../../src/core/catalog.js";
import { STATUS_OF, type ErrorCode } from "../../src/core/errors.js";
import { parseQueueRequest, parseSyncRequest } from "../../src/core/request-schema.js";
import { parseUploadRequest } from "../../src/core/upload-url.js";
import { buildOpenApiDocument } from "../../src/api/openapi/document.js";
import { DOCS_FILES } from "../../src/api/routes/docs.js";
import { compareRoutes, documentValidator, pointer } from "../helpers/openapi.js";
import { loadSpec } from "../helpers/spec.js";

type Json = any;

const doc: Json = buildOpenApiDocument({
  version: "0.0.0-test",
  minTtlS: 60,
  maxTtlS: 86_400,
  docsFiles: DOCS_FILES,
});
const schemas = documentValidator(doc);
const spec = loadSpec();
const catalog = buildCatalog(
  JSON.parse(readFileSync(new URL("../../config/catalog.json", import.meta.url), "utf8")),
);
const HTTP_METHODS = ["get", "put", "post", "delete", "head", "patch", "options", "trace"];

/** Every operation of the document with its path and method. */
const operations: { path: string; method: string; op: Json }[] = Object.entries(doc.paths).flatMap(
  ([path, item]: [string, Json]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, op]) => ({ path, method, op })),
);

const component = (name: string) => pointer("components", "schemas", name);
const valid = (name: string, data: unknown) => schemas.validate(component(name), data);

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const validator = new Validator();
    const result = await validator.validate({ ...doc, servers: [{ url: "http://127.0.0.1:8080" }] });
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("refuses a broken document (the validator can fail)", async () => {
    const broken = structuredClone(doc);
    broken.paths["/queue"].post.responses = "none";
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it("has component schemas that compile as strict JSON Schema 2020-12", () => {
    for (const name of Object.keys(doc.components.schemas))
      expect(() => schemas.compile(component(name))).not.toThrow();
  });

  it("has examples that are valid against their own schemas", () => {
    let checked = 0;
    for (const { path, method, op } of operations) {
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
        if ((media as Json).example === undefined) continue;
        const at = pointer("paths", path, method, "requestBody", "content", type, "schema");
        expect(schemas.validate(at, (media as Json).example), `${method} ${path}`).toMatchObject({
          valid: true,
        });
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(4);
  });

  it("keeps the original spec's operationIds and tags for the routes it has (API.md §7)", () => {
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, original] of Object.entries(item as Json)) {
        if (!HTTP_METHODS.includes(method)) continue;
        const ours = doc.paths[path]?.[method];
        expect(ours, `${method} ${path}`).toBeDefined();
        expect(ours.operationId).toBe((original as Json).operationId);
        expect(ours.tags).toEqual((original as Json).tags);
      }
    }
  });

  it("uses the same security schemes for JWTs and API keys, and no token for the public routes", () => {
    expect(doc.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    for (const path of ["/health", "/ready", "/openapi.json", "/docs", "/docs/{file}"]) {
      expect(doc.paths[path].get.security, path).toEqual([]);
    }
  });
});

describe("problem codes", () => {
  const codes = Object.keys(STATUS_OF) as ErrorCode[];

  it("are all in the Problem schema's `error` enum", () => {
    expect(doc.components.schemas.Problem.properties.error.enum).toEqual(codes);
  });

  it("appear on the statuses they belong to, and each on some operation (405 as a shared response)", () => {
    const seen = new Set<string>();
    for (const { path, method, op } of operations) {
      for (const [status, response] of Object.entries(op.responses)) {
        const problem = (response as Json).content?.["application/problem+json"];
        if (problem === undefined) continue;
        const [base, narrowed] = problem.schema.allOf;
        expect(base).toEqual({ $ref: "#/components/schemas/Problem" });
        expect(narrowed.properties.status.const, `${method} ${path} ${status}`).toBe(Number(status));
        for (const code of narrowed.properties.error.enum as ErrorCode[]) {
          expect(STATUS_OF[code], `${code} under ${status} of ${method} ${path}`).toBe(Number(status));
          seen.add(code);
        }
      }
    }
    // the shared responses: a method a path lacks, and what the server answers before any route
    expect(codes.filter((c) => !seen.has(c)).sort()).toEqual([
      "headers_too_large",
      "method_not_allowed",
      "request_timeout",
    ]);
    for (const [name, code] of [
      ["HeadersTooLarge", "headers_too_large"],
      ["RequestTimeout", "request_timeout"],
    ] as const) {
      expect(
        doc.components.responses[name].content["application/problem+json"].schema.allOf[1],
      ).toMatchObject({
        properties: { error: { enum: [code] } },
      });
    }
    expect(
      doc.components.responses.MethodNotAllowed.content["application/problem+json"].schema.allOf[1],
    ).toMatchObject({
      properties: { error: { enum: ["method_not_allowed"] } },
    });
  });

  it("include a 401 problem on every operation that takes a token, and none on the public ones", () => {
    for (const { path, method, op } of operations) {
      const open = Array.isArray(op.security) && op.security.length === 0;
      const unauthorized = op.responses["401"]?.content?.["application/problem+json"];
      expect(unauthorized !== undefined, `${method} ${path}`).toBe(!open);
    }
  });
});

describe("requests the routes validate, against the document's schemas", () => {
  const examples = (path: string): [string, Json][] =>
    Object.entries(spec.paths[path].post.requestBody.content["application/json"].examples).map(([n, e]) => [
      n,
      (e as Json).value,
    ]);
  const sync = (body: Json, family: string, model: string, task: Task) =>
    parseSyncRequest(body, { entry: catalog.find(family, model)!, task, catalog });
  const queue = (body: Json) => parseQueueRequest(body, { catalog, minTtlS: 60, maxTtlS: 86_400 });
  const base = { modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "a cat" };

  const acceptedSync: [string, Json, string, string, Task][] = [
    ...examples("/image/{family}/{model}/{task}").map(
      ([n, b]) => [n, b, "qwen", "edit", n.split("_")[0] as Task] as [string, Json, string, string, Task],
    ),
    ...examples("/video/{family}/{model}/{task}").map(
      ([n, b]) => [n, b, "wan", "default", "i2v"] as [string, Json, string, string, Task],
    ),
    [
      "every image field",
      {
        prompt: "p",
        negative_prompt: "",
        seed: 4294967295,
        steps: 1,
        cfg: 0,
        guidance: 30,
        strength: 1,
        count: 4,
        sampler: "res_2m",
        scheduler: "karras",
        noise_type: "perlin",
        eta: 2,
        clip_skip: 12,
        detail_amount: -5,
        detail_start: 0,
        detail_end: 1,
        lora: [{ id: "anti_blur", weight: -1 }],
      },
      "flux",
      "dev",
      "t2i",
    ],
    [
      "a 4000-code-point prompt of astral characters",
      { prompt: "😀".repeat(4000) },
      "flux",
      "schnell",
      "t2i",
    ],
  ];

  it.each(acceptedSync)(
    "sync body %s: the parser takes it and so does the document",
    (_n, body, family, model, task) => {
      const modality = sync(body, family, model, task).modality;
      const name = modality === "image" ? "ImageGenerateRequest" : "VideoGenerateRequest";
      expect(valid(name, body)).toMatchObject({ valid: true });
    },
  );

  const acceptedQueue: [string, Json][] = [
    ...examples("/queue"),
    [
      "queue options",
      {
        ...base,
        format: "512",
        backend: "nunchaku",
        priority: "low",
        webhook: "https://hooks.example.com/r",
        webhook_events: ["started", "complete"],
        ttl: 60,
        idempotency_key: "k-1",
      },
    ],
    ["a Hugging Face alias", { ...base, family: "black-forest-labs", model: "FLUX.1-schnell" }],
  ];

  it.each(acceptedQueue)("queue body %s: the parser takes it and so does the document", (_n, body) => {
    queue(body);
    expect(valid("AsyncJobRequest", body)).toMatchObject({ valid: true });
  });

  const refused: [string, Json][] = [
    ["an empty prompt", { ...base, prompt: "" }],
    ["a prompt of 4001 code points", { ...base, prompt: "😀".repeat(4001) }],
    ["steps out of range", { ...base, steps: 0 }],
    ["a fractional count", { ...base, count: 1.5 }],
    ["an unknown field", { ...base, colour: "red" }],
    ["a video field on an image job", { ...base, duration: 2 }],
    ["an unknown sampler", { ...base, sampler: "ddim" }],
    ["an unknown lora member", { ...base, lora: [{ id: "anti_blur", strength: 1 }] }],
    ["an unknown priority", { ...base, priority: "urgent" }],
    ["a ttl below the bound", { ...base, ttl: 59 }],
    ["an idempotency key of 65 characters", { ...base, idempotency_key: "k".repeat(65) }],
    [
      "a repeated webhook event",
      { ...base, webhook: "https://h.example.com", webhook_events: ["error", "error"] },
    ],
    ["a task of the other modality", { ...base, task: "t2v" }],
    ["no prompt", { modality: "image", family: "flux", model: "schnell", task: "t2i" }],
  ];

  it.each(refused)("queue body with %s: refused by the parser and by the document", (_n, body) => {
    expect(() => queue(body)).toThrow();
    expect(valid("AsyncJobRequest", body)).toMatchObject({ valid: false });
  });

  it("takes the upload bodies the parser takes, and refuses the ones it refuses", () => {
    for (const body of [
      { content_type: "image/png", bytes: 1 },
      { content_type: "image/webp", bytes: 50 * 1024 * 1024 },
    ]) {
      parseUploadRequest(body);
      expect(valid("CreateUploadRequest", body)).toMatchObject({ valid: true });
    }
    for (const body of [
      { content_type: "image/gif", bytes: 10 },
      { content_type: "image/png", bytes: 0 },
      { content_type: "image/png", bytes: 50 * 1024 * 1024 + 1 },
      { content_type: "image/png", bytes: 10, name: "x.png" },
      { bytes: 10 },
    ]) {
      expect(() => parseUploadRequest(body)).toThrow();
      expect(valid("CreateUploadRequest", body)).toMatchObject({ valid: false });
    }
  });
});

describe("the route comparison", () => {
  it("names a route the document lacks and a documented route no app serves", () => {
    const routes = [
      { method: "ALL", path: "/*" },
      { method: "GET", path: "/health" },
      { method: "GET", path: "/jobs/:id" },
      { method: "GET", path: "/secret/:key" },
    ];
    const small = {
      paths: { "/health": { get: {} }, "/jobs/{id}": { get: {}, parameters: [] }, "/gone": { post: {} } },
    };
    expect(compareRoutes(routes, small)).toEqual({
      undocumented: ["GET /secret/{key}"],
      unserved: ["POST /gone"],
    });
  });
});
