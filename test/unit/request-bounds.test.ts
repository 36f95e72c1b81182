// Every array, map and string of a generation request is bounded before any per-item work (issue 7,
// finding 1): the schema refuses an oversized value without touching its items, names the field and
// the constraint, and never echoes a hostile key or value whole.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildCatalog, resolveRoute } from "../../src/core/catalog.js";
import { AppError } from "../../src/core/errors.js";
import { JSON_BODY_LIMITS, MAX_LORAS } from "../../src/core/request-limits.js";
import { parseQueueRequest, parseSyncRequest } from "../../src/core/request-schema.js";
import { callInWorker } from "../helpers/in-worker.js";

const catalog = buildCatalog(
  JSON.parse(readFileSync(new URL("../../config/catalog.json", import.meta.url), "utf8")),
);
const ROUTE = { modality: "image", family: "flux", model: "schnell", task: "t2i" };
const ctx = { catalog, minTtlS: 60, maxTtlS: 86_400 };
const queue = (body: Record<string, unknown>) =>
  parseQueueRequest({ ...ROUTE, prompt: "a cat", ...body }, ctx);
const sync = (body: unknown) => parseSyncRequest(body, { ...resolveRoute(catalog, ROUTE), catalog });

function fails(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error("expected an AppError, the request was accepted");
}

/** An array of `n` items that counts how many of them were read. */
function countedArray(n: number, item: unknown): { array: unknown[]; reads: () => number } {
  let reads = 0;
  const array = new Proxy(new Array<unknown>(n).fill(item), {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return { array, reads: () => reads };
}

describe("arrays: counted before any item is looked at", () => {
  it("lora: 100,000 items are refused (max_items) without reading one", () => {
    const { array, reads } = countedArray(100_000, 0);
    for (const parse of [() => queue({ lora: array }), () => sync({ prompt: "x", lora: array })]) {
      const err = fails(parse);
      expect(err.details).toEqual({ field: "lora", constraint: "max_items" });
      expect(err.message).toContain(String(MAX_LORAS));
    }
    expect(reads()).toBe(0);
  });

  it(`lora: ${MAX_LORAS} items pass the count, one more does not`, () => {
    const ids = ["anti_blur", "hands_v2"];
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ id: ids[i % 2], weight: 1 }));
    // Within the count, the items are judged one by one (here: listed twice).
    expect(fails(() => queue({ lora: many(MAX_LORAS) })).details).toMatchObject({ constraint: "unique" });
    expect(fails(() => queue({ lora: many(MAX_LORAS + 1) })).details).toMatchObject({
      constraint: "max_items",
    });
  });

  it("a lora item with thousands of members is refused (max_members) without walking them", () => {
    const item: Record<string, number> = { id: 0 };
    for (let i = 0; i < 5000; i++) item[`k${i}`] = i;
    expect(fails(() => queue({ lora: [item] })).details).toEqual({
      field: "lora.0",
      constraint: "max_members",
    });
  });

  it("webhook_events: 100,000 items are refused (max_items) without reading one; an event twice is refused", () => {
    const { array, reads } = countedArray(100_000, "complete");
    const webhook = "https://hooks.example.com/x";
    expect(fails(() => queue({ webhook, webhook_events: array })).details).toEqual({
      field: "webhook_events",
      constraint: "max_items",
    });
    expect(reads()).toBe(0);
    expect(
      fails(() => queue({ webhook, webhook_events: ["complete", "error", "complete"] })).details,
    ).toEqual({
      field: "webhook_events",
      constraint: "unique",
    });
    expect(
      queue({ webhook, webhook_events: ["started", "progress", "complete", "error", "cancelled"] }),
    ).toMatchObject({
      webhook_events: ["started", "progress", "complete", "error", "cancelled"],
    });
  });
});

describe("the body's members: counted before any value is looked at", () => {
  it(`more than ${JSON_BODY_LIMITS.maxMembers} members are refused (max_members) without reading a value`, () => {
    let reads = 0;
    const body: Record<string, unknown> = {};
    for (let i = 0; i < 10_000; i++) {
      Object.defineProperty(body, `f${i}`, {
        enumerable: true,
        get: () => {
          reads++;
          return 0;
        },
      });
    }
    expect(fails(() => parseQueueRequest(body, ctx)).details).toEqual({
      field: "body",
      constraint: "max_members",
    });
    expect(fails(() => sync(body)).details).toEqual({ field: "body", constraint: "max_members" });
    expect(reads).toBe(0);
  });

  it("a hostile key is named cut short, and its typo hint stays cheap", () => {
    const long = "prompt".repeat(200_000);
    for (const key of [long, `${"x".repeat(70)}`, "constructor", "__proto__", "toString", "promtp"]) {
      const body = JSON.parse(`{${JSON.stringify(key)}: 1, "prompt": "x"}`) as Record<string, unknown>;
      const err = fails(() => sync(body));
      expect(err.details?.["constraint"]).toBe("unknown");
      expect(String(err.details?.["field"]).length).toBeLessThanOrEqual(65);
      expect(err.message.length).toBeLessThan(200);
    }
    expect(fails(() => sync({ prompt: "x", promtp: 1 })).message).toContain("did you mean prompt?");
  });
});

describe("strings: each bounded, checked before the work that depends on its length", () => {
  it.each([
    ["modality", "image".repeat(30)],
    ["family", "f".repeat(129)],
    ["model", "m".repeat(129)],
    ["task", "t".repeat(129)],
  ])("routing field %s longer than 128 characters: max_length", (field, value) => {
    expect(fails(() => queue({ [field]: value })).details).toEqual({ field, constraint: "max_length" });
    expect(() => resolveRoute(catalog, { ...ROUTE, [field]: value })).toThrow(/at most 128/);
  });

  it.each([
    ["format", "f".repeat(33)],
    ["backend", "b".repeat(65)],
    ["idempotency_key", "k".repeat(100_000)],
    ["webhook", `https://example.com/${"p".repeat(3000)}`],
  ])("%s beyond its length: max_length", (field, value) => {
    expect(fails(() => queue({ [field]: value })).details).toEqual({ field, constraint: "max_length" });
  });

  it("a data: image whose padding runs on is refused at once (/=+$/ backtracked quadratically)", async () => {
    const value = `data:image/png;base64,${"=".repeat(300_000)}x`;
    // In a worker: were the parse to backtrack again, the test would end with its timeout.
    expect(await callInWorker("src/core/request-schema.ts", "parseImageRef", [value, "image"])).toEqual({
      threw: { code: "validation_error", details: { field: "image", constraint: "format" } },
    });
  });

  it("keeps accepting every valid padding of a data: image", () => {
    for (const [b64, size] of [
      ["iVBORw0K", 6],
      ["iVBORw0=", 5],
      ["iVBORw==", 4],
      ["iVBO", 3],
    ] as const) {
      expect(sync({ prompt: "x", image: `data:image/png;base64,${b64}` }).image).toMatchObject({
        kind: "data",
        size,
      });
    }
    for (const bad of ["iVBORw===", "iVBOR", "=", "iVB=ORw0"]) {
      expect(fails(() => sync({ prompt: "x", image: `data:image/png;base64,${bad}` })).details).toMatchObject(
        {
          constraint: "format",
        },
      );
    }
  });
});
