// GET /openapi.json (the OpenAPI 3.1 document, built once when the app is made) and GET /docs (the
// API reference: Swagger UI served from the installed swagger-ui-dist package, so it works with no
// internet access). Both public (API.md §1). README "API reference".
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { Hono, type Context } from "hono";
import { AppError } from "../../core/errors.js";
import type { ApiEnv } from "../context.js";
import { buildOpenApiDocument } from "../openapi/document.js";
import { shownValue } from "../request-input.js";
import { ifNoneMatchHits } from "../conditional.js";

const gzipAsync = promisify(gzip);
const require = createRequire(import.meta.url);

/** The folder of the installed swagger-ui-dist package. */
export function swaggerUiDir(): string {
  return dirname(require.resolve("swagger-ui-dist/package.json"));
}

/** The gateway's version, for the document's `info.version`. */
function packageVersion(): string {
  return (require("../../../package.json") as { version: string }).version;
}

/** Our page: the Swagger UI stylesheet and bundle, then docs.js, which starts it on /openapi.json. */
const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>render-gateway API reference</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css">
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/docs.js"></script>
  </body>
</html>
`;

/** Starts Swagger UI (a file, not inline: the page's CSP allows scripts from this origin only). */
const STARTER = `// Swagger UI on this gateway's own document: no CDN, no online validator badge.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
`;

/** The files of `/docs/{file}`: from the package, or ours. */
const FILES: Readonly<
  Record<string, { readonly type: string; readonly dist?: string; readonly text?: string }>
> = {
  "swagger-ui.css": { type: "text/css; charset=utf-8", dist: "swagger-ui.css" },
  "swagger-ui-bundle.js": { type: "text/javascript; charset=utf-8", dist: "swagger-ui-bundle.js" },
  "favicon-32x32.png": { type: "image/png", dist: "favicon-32x32.png" },
  "docs.js": { type: "text/javascript; charset=utf-8", text: STARTER },
};

/** The names `/docs/{file}` serves. */
export const DOCS_FILES: readonly string[] = Object.keys(FILES);

/**
 * The page's Content-Security-Policy: everything from this origin only. Images may also be `data:`
 * URIs, which Swagger UI's stylesheet uses for its icons.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The document and the page change only with a deployment; the package's files with its version. */
const SHORT_CACHE = "public, max-age=300";
const LONG_CACHE = "public, max-age=86400";

/** A file ready to serve: its bytes, their tag, and (made on the first request that takes it) gzip. */
interface Prepared {
  readonly body: Uint8Array;
  readonly type: string;
  readonly etag: string;
  gzip?: Promise<Uint8Array>;
}

function prepare(body: Uint8Array, type: string): Prepared {
  return { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` };
}

/** Whether `Accept-Encoding` takes gzip (listed without `q=0`). */
function acceptsGzip(header: string | undefined): boolean {
  return (header ?? "").split(",").some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    return coding === "gzip" && !params.some((p) => /^\s*q=0(?:\.0*)?\s*$/.test(p));
  });
}

/** Files this small are sent as they are. */
const GZIP_MIN_BYTES = 1024;

async function send(c: Context, file: Prepared, cacheControl: string, extra: Record<string, string> = {}) {
  const headers: Record<string, string> = {
    etag: file.etag,
    "cache-control": cacheControl,
    vary: "accept-encoding",
    ...extra,
  };
  if (ifNoneMatchHits(c.req.header("if-none-match"), file.etag)) return c.body(null, 304, headers);
  headers["content-type"] = file.type;
  if (file.body.byteLength >= GZIP_MIN_BYTES && acceptsGzip(c.req.header("accept-encoding"))) {
    file.gzip ??= gzipAsync(file.body);
    headers["content-encoding"] = "gzip";
    return c.body((await file.gzip) as Uint8Array<ArrayBuffer>, 200, headers);
  }
  return c.body(file.body as Uint8Array<ArrayBuffer>, 200, headers);
}

export interface DocsOptions {
  /** The `ttl` bounds POST /queue checks (its schema in the document). */
  readonly minTtlS: number;
  readonly maxTtlS: number;
  /** The gateway's base URL (PUBLIC_URL), read when the document is first served. */
  readonly publicUrl: () => string;
  /** Where the Swagger UI files are read from (default: the installed swagger-ui-dist). */
  readonly assetsDir?: string;
}

/**
 * The routes. The document is built here, once (a schema the converter cannot take stops the start);
 * its text, with `servers` from PUBLIC_URL, is made on the first request. The package's files are
 * read on their first request.
 */
export function docsRoutes(opts: DocsOptions): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const document = buildOpenApiDocument({
    version: packageVersion(),
    minTtlS: opts.minTtlS,
    maxTtlS: opts.maxTtlS,
    docsFiles: DOCS_FILES,
  });
  const dir = opts.assetsDir ?? swaggerUiDir();
  const encoder = new TextEncoder();
  const page = prepare(encoder.encode(PAGE), "text/html; charset=utf-8");
  let served: Prepared | undefined;
  const files = new Map<string, Promise<Prepared>>();

  app.get("/openapi.json", (c) => {
    served ??= prepare(
      encoder.encode(JSON.stringify({ ...document, servers: [{ url: opts.publicUrl() }] })),
      "application/json",
    );
    return send(c, served, SHORT_CACHE, { "access-control-allow-origin": "*" });
  });

  app.get("/docs", (c) =>
    send(c, page, SHORT_CACHE, {
      "content-security-policy": DOCS_CSP,
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
    }),
  );

  app.get("/docs/:file", async (c) => {
    const name = c.req.param("file");
    const spec = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
    if (spec === undefined) throw new AppError("not_found", `no file ${shownValue(name)} in /docs`);
    let file = files.get(name);
    if (file === undefined) {
      file =
        spec.text !== undefined
          ? Promise.resolve(prepare(encoder.encode(spec.text), spec.type))
          : readFile(join(dir, spec.dist!)).then((bytes) => prepare(bytes, spec.type));
      files.set(name, file);
      // A failed read is tried again by the next request.
      void file.catch(() => files.delete(name));
    }
    return send(c, await file, LONG_CACHE);
  });

  return app;
}
