// Fuzz test of POST /queue through the real body reader and app (issue 7): generated bodies —
// valid jobs, the same mutated, arbitrary JSON, cut-off and malformed texts, oversized shapes,
// invalid UTF-8 — each answered 202, or a problem document of 400, 404, 409, 413 or 422 (the last
// two for reused idempotency keys); never a 500, never another status. In this process through the
// app's fetch (a web stream body) and, for a smaller sample, over HTTP (the node request path).
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ErrorCode } from "../../src/core/errors.js";
import { STATUS_OF } from "../../src/core/errors.js";
import { bodiesFrom, validQueueBody } from "../helpers/hostile-bodies.js";
import { startSystem, type TestSystem } from "../helpers/system.js";

const ALLOWED = new Set([202, 400, 404, 409, 413, 422]);
const CODES = new Set(Object.keys(STATUS_OF) as ErrorCode[]);
const MiB = 1024 * 1024;

/** The JSON text of a generated body; a value too deep for JSON.stringify becomes a deep `[[[…`. */
function textOf(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "null";
  } catch {
    return "[".repeat(100_000);
  }
}

const validText = validQueueBody.map((b) => JSON.stringify(b));

/** Body bytes: JSON of generated values, and texts no encoder would write. */
const bodyBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 8, arbitrary: bodiesFrom(validQueueBody).map((v) => Buffer.from(textOf(v))) },
  // Cut off anywhere.
  {
    weight: 2,
    arbitrary: fc.tuple(validText, fc.nat()).map(([t, n]) => Buffer.from(t.slice(0, n % (t.length + 1)))),
  },
  // JSON punctuation soup.
  {
    weight: 2,
    arbitrary: fc
      .string({ unit: fc.constantFrom(...'{}[]":,\\ 0-.eE1tfnu\n'), maxLength: 300 })
      .map((s) => Buffer.from(s)),
  },
  // Bytes that are not UTF-8, or a BOM before valid JSON.
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: validText.map((t) => Buffer.from(`\ufeff${t}`)) },
  // Oversized shapes, and a body just over the limit (413).
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        () => Buffer.alloc(10 * MiB - 1, "["),
        () => Buffer.from(`{"lora":[${"0,".repeat(5 * MiB - 8)}0]}`),
        () => Buffer.concat([Buffer.alloc(10 * MiB - 2, " "), Buffer.from("{}")]),
        () => Buffer.alloc(10 * MiB + 1, " "),
        () => Buffer.from(`{"prompt":"${"\\u0041".repeat(MiB)}"}`),
      )
      .map((make) => make()),
  },
);

let sys: TestSystem;
let token: string;

beforeAll(async () => {
  sys = await startSystem({ worker: false });
  token = await sys.token("fuzz");
});
afterAll(async () => {
  await sys?.close();
});

async function judge(res: Response): Promise<void> {
  expect(ALLOWED).toContain(res.status);
  if (res.status >= 400) {
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const problem = (await res.json()) as { error: ErrorCode; status: number };
    expect(CODES).toContain(problem.error);
    expect(problem.status).toBe(res.status);
  } else await res.arrayBuffer();
}

describe("POST /queue fuzz through the body reader and the app", () => {
  it("in this process (web stream bodies): 202 or a 4xx problem document, never a 500", async () => {
    await fc.assert(
      fc.asyncProperty(bodyBytes, async (bytes) => {
        const res = await sys.fetch(
          new Request(`${sys.url}/queue`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: bytes,
          }),
        );
        await judge(res);
      }),
      { numRuns: 300 },
    );
  });

  it("over HTTP (node request bodies, with a length or chunked): the same", async () => {
    await fc.assert(
      fc.asyncProperty(bodyBytes, fc.boolean(), async (bytes, chunked) => {
        const body = chunked
          ? new ReadableStream<Uint8Array>({
              start(controller) {
                for (let i = 0; i < bytes.length; i += 64 * 1024)
                  controller.enqueue(bytes.subarray(i, i + 64 * 1024));
                controller.close();
              },
            })
          : bytes;
        const sent = sys.call("/queue", {
          method: "POST",
          token,
          headers: { "content-type": "application/json" },
          body,
          ...(chunked ? { duplex: "half" } : {}),
        });
        if (bytes.length <= 10 * MiB) return judge(await sent);
        // Over the limit the server answers 413 without reading the rest and closes the connection
        // once it stops draining it: a client still sending may see the close before the answer.
        const res = await sent.catch(() => undefined);
        if (res !== undefined) expect(res.status).toBe(413);
      }),
      { numRuns: 60 },
    );
  });
});
