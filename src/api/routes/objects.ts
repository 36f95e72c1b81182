// GET /objects/{digest}: content-addressed bytes for a valid signed URL, or for the bearer of a
// customer who produced or uploaded the object (or an admin); everyone else gets 404.
import { Hono, type Context } from "hono";
import { AppError } from "../../core/errors.js";
import { DIGEST_RE } from "../../core/ports.js";
import { verifyObjectSignature } from "../../core/url-signing.js";
import { sniffContentType } from "../../core/media-type.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { shownValue } from "../request-input.js";
import { ifNoneMatchHits } from "../conditional.js";

/**
 * The byte range a `Range` header asks for (RFC 9110 §14), against an object of `size` bytes:
 * - `undefined`: serve the whole object — no header, another unit, a value that does not parse, or
 *   several ranges (`bytes=0-1,4-5`: a server may ignore Range, and one 200 is simpler than multipart);
 * - `"unsatisfiable"`: a single range that selects no byte, or an inverted one (`bytes=5-2`) (416);
 * - the inclusive range, its end clamped to the object.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    // Suffix range: the last N bytes.
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? undefined : Number(m[2]);
  if (last !== undefined && last < start) return "unsatisfiable"; // invalid: RFC 9110 says 416
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(last ?? size - 1, size - 1) };
}

/**
 * Whether a `Range` may be honoured under `If-Range` (RFC 9110 §13.1.5): with no `If-Range`, yes;
 * with an entity-tag, only when it equals `etag` by strong comparison (a weak tag `W/"…"` never
 * does); with a date (or anything else), no: objects carry no `Last-Modified` to compare a date
 * with, so the client gets the whole object (200) and starts over.
 */
export function ifRangeAllows(header: string | undefined, etag: string): boolean {
  return header === undefined || header.trim() === etag;
}

/** The first chunk, then the rest of `reader` (the first chunk was read to sniff the media type). */
function prepend(head: Uint8Array | undefined, reader: ReadableStreamDefaultReader<Uint8Array>) {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (head !== undefined && head.byteLength > 0) controller.enqueue(head);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

export function objectRoutes(
  deps: ApiDeps,
  access: {
    isOwner(digest: string, customerId: string): Promise<boolean>;
    authenticate(c: Context<ApiEnv>): Promise<{ customerId: string; admin: boolean } | undefined>;
  },
) {
  const app = new Hono<ApiEnv>();

  // HEAD is named beside GET (Hono runs the GET handler for it either way) so that the `Allow` of a
  // 405 here lists it.
  app.on(["GET", "HEAD"], "/objects/:digest", async (c) => {
    const digest = c.req.param("digest");
    const notFound = () => new AppError("not_found", `object ${shownValue(digest)} not found`);
    if (!DIGEST_RE.test(digest)) throw notFound();
    const signed = verifyObjectSignature(
      deps.config.urlKey,
      digest,
      c.req.query("exp"),
      c.req.query("sig"),
      Math.floor(deps.clock() / 1000),
      deps.config.outputUrlTtlS,
    );
    if (!signed) {
      const who = c.req.header("authorization") ? await access.authenticate(c) : undefined;
      if (!who || (!who.admin && !(await access.isOwner(digest, who.customerId)))) throw notFound();
    }
    const etag = `"${digest}"`;
    c.header("etag", etag);
    c.header("cache-control", "private, max-age=31536000, immutable");
    c.header("accept-ranges", "bytes");
    if (ifNoneMatchHits(c.req.header("if-none-match"), etag)) return c.body(null, 304);

    // One open serves a whole-object answer (and HEAD); a range needs a second, ranged open, because
    // the size (to check the range) and the first bytes (to sniff the type) come from the first one.
    const whole = await deps.blobs.open(digest);
    if (!whole) throw notFound();
    const reader = whole.body.getReader();
    let head: Uint8Array | undefined;
    try {
      head = (await reader.read()).value;
    } catch (err) {
      await reader.cancel().catch(() => undefined);
      throw err;
    }
    c.header("content-type", sniffContentType(head ?? new Uint8Array()));

    const range = ifRangeAllows(c.req.header("if-range"), etag)
      ? parseRange(c.req.header("range"), whole.size)
      : undefined;
    if (range === "unsatisfiable") {
      await reader.cancel();
      throw new AppError("range_not_satisfiable", `the range is outside the object (${whole.size} bytes)`, {
        details: { field: "range", size: whole.size },
        headers: { "content-range": `bytes */${whole.size}` },
      });
    }
    if (c.req.method === "HEAD" || range !== undefined) await reader.cancel();
    if (c.req.method === "HEAD") {
      c.header("content-length", String(whole.size));
      return c.body(null, 200);
    }
    if (range) {
      const part = await deps.blobs.open(digest, range);
      if (!part) throw notFound();
      c.header("content-range", `bytes ${range.start}-${range.end}/${whole.size}`);
      c.header("content-length", String(range.end - range.start + 1));
      return c.body(part.body, 206);
    }
    c.header("content-length", String(whole.size));
    return c.body(prepend(head, reader), 200);
  });

  return app;
}
