// GET /objects/{digest}: content-addressed bytes for a valid signed URL, or for the bearer of a
// customer who produced or uploaded the object (or an admin); everyone else gets 404.
import { Hono, type Context } from "hono";
import { AppError } from "../../core/errors.js";
import { DIGEST_RE } from "../../core/ports.js";
import { verifyObjectSignature } from "../../core/url-signing.js";
import { sniffContentType } from "../../core/media-type.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";

function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "invalid" | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "invalid";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return "invalid";
  return { start, end };
}

export function objectRoutes(
  deps: ApiDeps,
  access: {
    isOwner(digest: string, customerId: string): Promise<boolean>;
    authenticate(c: Context<ApiEnv>): Promise<{ customerId: string; admin: boolean } | undefined>;
  },
) {
  const app = new Hono<ApiEnv>();

  app.get("/objects/:digest", async (c) => {
    const digest = c.req.param("digest");
    const notFound = () => new AppError("not_found", `object ${digest} not found`);
    if (!DIGEST_RE.test(digest)) throw notFound();
    const signed = verifyObjectSignature(
      deps.config.urlKey,
      digest,
      c.req.query("exp"),
      c.req.query("sig"),
      Math.floor(deps.clock() / 1000),
    );
    if (!signed) {
      const who = c.req.header("authorization") ? await access.authenticate(c) : undefined;
      if (!who || (!who.admin && !(await access.isOwner(digest, who.customerId)))) throw notFound();
    }
    const etag = `"${digest}"`;
    c.header("etag", etag);
    c.header("cache-control", "private, max-age=31536000, immutable");
    c.header("accept-ranges", "bytes");
    if (
      c.req
        .header("if-none-match")
        ?.split(",")
        .some((t) => t.trim() === etag)
    )
      return c.body(null, 304);

    const whole = await deps.blobs.open(digest);
    if (!whole) throw notFound();
    const first = whole.body.getReader();
    const head = await first.read();
    await first.cancel();
    c.header("content-type", sniffContentType(head.value ?? new Uint8Array()));

    const range = parseRange(c.req.header("range"), whole.size);
    if (range === "invalid") {
      c.header("content-range", `bytes */${whole.size}`);
      throw new AppError("validation_error", "unsatisfiable range", {
        details: { field: "range" },
        headers: { "content-range": `bytes */${whole.size}` },
      });
    }
    if (range) {
      const part = await deps.blobs.open(digest, range);
      if (!part) throw notFound();
      c.header("content-range", `bytes ${range.start}-${range.end}/${whole.size}`);
      c.header("content-length", String(range.end - range.start + 1));
      return c.body(part.body, 206);
    }
    const full = await deps.blobs.open(digest);
    if (!full) throw notFound();
    c.header("content-length", String(full.size));
    return c.body(full.body, 200);
  });

  return app;
}
