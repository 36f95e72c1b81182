// GET / (the playground page) and GET /playground/{file} (its stylesheet and script): static files
// read once at start, public (the API calls the page makes carry the token the user pastes), served
// with a strict Content-Security-Policy. README "Playground".
import { createHash } from "node:crypto";
import { Hono } from "hono";
import { AppError } from "../../core/errors.js";
import type { ApiEnv } from "../context.js";
import { ifNoneMatchHits } from "../conditional.js";
import { shownValue } from "../request-input.js";

/** The page's file: what `GET /` answers. */
export const PLAYGROUND_INDEX = "index.html";

/** Media types by file extension; a file of another kind is refused when the routes are built. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** A file name the routes serve: one path segment, no dot first, a known extension. */
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface PlaygroundOptions {
  /** The files by name (`index.html` and its assets), as read at start. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /**
   * The origin of the gateway's absolute URLs (PUBLIC_URL), read per answer (the API learns its own
   * address once it listens): output URLs point there, so images and videos may load from it too.
   */
  readonly publicOrigin: () => string | undefined;
}

interface Prepared {
  readonly body: Uint8Array;
  readonly contentType: string;
  readonly etag: string;
}

function contentTypeOf(name: string): string | undefined {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? undefined : CONTENT_TYPES[name.slice(dot)];
}

/**
 * The page's Content-Security-Policy: scripts, styles and API calls from this origin only; images
 * and media also from `data:`/`blob:` (previews are `data:` URIs) and from the output URLs' origin.
 */
export function playgroundCsp(mediaOrigin: string | undefined): string {
  const media = ["'self'", "data:", "blob:", ...(mediaOrigin ? [mediaOrigin] : [])].join(" ");
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src ${media}`,
    `media-src ${media}`,
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** An http(s) origin, or undefined for anything else (an unset or unparsable URL). */
function originOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The playground's routes.
 * @throws Error when `index.html` is missing or a file has a name or kind the routes do not serve
 *   (a packaging mistake: the process should not start with it).
 */
export function playgroundRoutes(opts: PlaygroundOptions) {
  const prepared = new Map<string, Prepared>();
  for (const [name, body] of opts.files) {
    const contentType = contentTypeOf(name);
    if (!NAME_RE.test(name) || contentType === undefined) {
      throw new Error(`playground file ${JSON.stringify(name)}: not a name or kind that is served`);
    }
    const hash = createHash("sha256").update(body).digest("base64url").slice(0, 22);
    prepared.set(name, { body, contentType, etag: `"${hash}"` });
  }
  if (!prepared.has(PLAYGROUND_INDEX)) throw new Error(`playground: ${PLAYGROUND_INDEX} is missing`);

  const app = new Hono<ApiEnv>();
  const serve = (file: Prepared, ifNoneMatch: string | undefined): Response => {
    const headers: Record<string, string> = {
      "content-type": file.contentType,
      // Revalidated on every load (a 304 while unchanged), so an upgrade shows at once.
      "cache-control": "no-cache",
      etag: file.etag,
      "content-security-policy": playgroundCsp(originOf(opts.publicOrigin())),
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
      "cross-origin-opener-policy": "same-origin",
    };
    if (ifNoneMatchHits(ifNoneMatch, file.etag)) return new Response(null, { status: 304, headers });
    return new Response(file.body, { status: 200, headers });
  };

  app.on(["GET", "HEAD"], "/", (c) => serve(prepared.get(PLAYGROUND_INDEX)!, c.req.header("if-none-match")));
  app.on(["GET", "HEAD"], "/playground/:name", (c) => {
    const name = c.req.param("name");
    const file = name === PLAYGROUND_INDEX ? undefined : prepared.get(name);
    if (!file) throw new AppError("not_found", `no playground file ${shownValue(name)}`);
    return serve(file, c.req.header("if-none-match"));
  });
  return app;
}
