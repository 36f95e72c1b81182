// Fuzz test of the request schema (issue 7): thousands of generated bodies — valid requests, the
// same mutated, arbitrary JSON, oversized arrays, strings, nesting and member lists, hostile keys —
// through parseQueueRequest and parseSyncRequest. Each is accepted or refused with an AppError of
// status 400 or 404; nothing else is ever thrown, what is accepted stays within the bounds, and no
// more than a bounded number of items of an oversized array or object is ever looked at.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildCatalog, resolveRoute } from "../../src/core/catalog.js";
import { isAppError } from "../../src/core/errors.js";
import { MAX_LORAS } from "../../src/core/request-limits.js";
import {
  PROMPT_MAX_CHARS,
  parseQueueRequest,
  parseSyncRequest,
  type GenerationRequest,
} from "../../src/core/request-schema.js";
import { bodiesFrom, itemReads, validQueueBody, validSyncBody } from "../helpers/hostile-bodies.js";

const catalog = buildCatalog(
  JSON.parse(readFileSync(new URL("../../config/catalog.json", import.meta.url), "utf8")),
);
const ctx = { catalog, minTtlS: 60, maxTtlS: 86_400 };

/**
 * Most items of the oversized arrays and objects one parse may read: what the bounds let through (16
 * LoRAs, 5 events, 256 members) several times over, far below their sizes (up to 100,000).
 */
const MAX_ITEM_READS = 1024;

/**
 * Accepted (the request) or refused (the AppError's status); anything else thrown fails the test,
 * and so does reading more than {@link MAX_ITEM_READS} items of the oversized values.
 */
function outcome(parse: () => GenerationRequest): { accepted: GenerationRequest } | { status: number } {
  itemReads.count = 0;
  try {
    return { accepted: parse() };
  } catch (err) {
    if (!isAppError(err)) throw new Error(`threw a non-AppError: ${String(err)}`, { cause: err });
    return { status: err.status };
  } finally {
    expect(itemReads.count).toBeLessThanOrEqual(MAX_ITEM_READS);
  }
}

function withinBounds(req: GenerationRequest): void {
  expect(req.lora.length).toBeLessThanOrEqual(MAX_LORAS);
  expect([...req.prompt].length).toBeLessThanOrEqual(PROMPT_MAX_CHARS);
  const events = (req as { webhook_events?: readonly string[] }).webhook_events ?? [];
  expect(new Set(events).size).toBe(events.length);
}

describe("request schema fuzz", () => {
  it("POST /queue bodies: accepted within bounds, or refused with 400/404", () => {
    let accepted = 0;
    fc.assert(
      fc.property(bodiesFrom(validQueueBody), (body) => {
        const r = outcome(() => parseQueueRequest(body, ctx));
        if ("accepted" in r) {
          accepted++;
          withinBounds(r.accepted);
        } else expect([400, 404]).toContain(r.status);
      }),
      { numRuns: 3000 },
    );
    // The generator reaches the accepting path too, not only refusals.
    expect(accepted).toBeGreaterThan(100);
  });

  it("sync bodies on every catalogue route, and hostile route parts: accepted, or 400/404", () => {
    const routes = catalog
      .entries()
      .flatMap((m) =>
        m.tasks.map((task) => ({ modality: m.modality, family: m.family, model: m.model, task })),
      );
    const routePart = fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
      { weight: 1, arbitrary: fc.integer({ min: 100, max: 100_000 }).map((n) => "p".repeat(n)) },
      { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "image", "t2v") },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...routes),
        fc.record({ family: routePart, model: routePart, task: routePart }),
        bodiesFrom(validSyncBody),
        (route, parts, body) => {
          const params = {
            ...route,
            ...(parts.family === undefined ? {} : { family: parts.family }),
            ...(parts.model === undefined ? {} : { model: parts.model }),
            ...(parts.task === undefined ? {} : { task: parts.task }),
          };
          const r = outcome(() => parseSyncRequest(body, { ...resolveRoute(catalog, params), catalog }));
          if ("accepted" in r) withinBounds(r.accepted);
          else expect([400, 404]).toContain(r.status);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
