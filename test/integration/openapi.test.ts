// GET /openapi.json and /docs on a running gateway: the document covers every route the app registers
// (and names no route it lacks, but those other work is adding), real answers — success and problem
// documents — match the document's responses, the document is public and cached, and the reference
// page and every file it references are served locally with their content types.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { solidPng } from "../helpers/images.js";
import {
  compareRoutes,
  documentValidator,
  pointer,
  templateOf,
  type DocumentValidator,
} from "../helpers/openapi.js";
import { FLUX_SCHNELL_512, queueJob, startSystem, waitFor, type TestSystem } from "../helpers/system.js";

type Json = any;

/**
 * Operations served by the admin face, an app of its own that the API forwards `/admin…` to (so they
 * are not among the API app's routes; test/integration/admin-*.test.ts call them).
 */
const ADMIN_FACE = [
  "GET /admin/login",
  "GET /admin/logout",
  "GET /admin/queues",
  "POST /admin/login",
  "POST /admin/logout",
];
/** Bull Board's own pages, files and JSON under its mount point: its UI, not the gateway's API. */
const isBoardInternal = (operation: string) => / \/admin\/queues\/./.test(operation);

let sys: TestSystem;
let doc: Json;
let schemas: DocumentValidator;
let customer: string;

beforeAll(async () => {
  // with the pipeline: the audit log's answers (receipts, checkpoints) are real ones
  sys = await startSystem({ pipeline: true, env: { AUDIT_CHECKPOINT_MS: "50", AUDIT_SEGMENT_SIZE: "4" } });
  const res = await fetch(`${sys.url}/openapi.json`);
  expect(res.status).toBe(200);
  doc = await res.json();
  schemas = documentValidator(doc);
  customer = await sys.token("openapi-customer");
});
afterAll(async () => {
  await sys?.close();
});

/**
 * Checks an answer against the document: the operation of its method and path lists its status,
 * and a JSON body (JSON or problem+json) is valid against that response's schema for its type.
 * Returns the parsed body, when JSON.
 */
async function conforms(method: string, path: string, res: Response): Promise<Json> {
  const template = templateOf(doc, new URL(path, sys.url).pathname);
  const op = template === undefined ? undefined : doc.paths[template][method.toLowerCase()];
  expect(op, `${method} ${path} is documented`).toBeDefined();
  const status = String(res.status);
  const response = op.responses[status];
  expect(response, `${method} ${path} → ${status} is documented`).toBeDefined();
  expect(res.headers.get("x-request-id")).toMatch(/^req_[A-Za-z0-9]+$/);
  const type = res.headers.get("content-type")?.split(";")[0]?.trim();
  if (type === undefined || res.status === 204 || res.status === 304 || method === "HEAD") {
    await res.body?.cancel();
    return undefined;
  }
  const types = Object.keys(response.content ?? {}).map((t) => t.split(";")[0]);
  expect(types, `${method} ${path} → ${status} as ${type}`).toContain(type);
  if (!/json$/.test(type)) {
    await res.body?.cancel();
    return undefined;
  }
  const body = await res.json();
  const media = Object.keys(response.content).find((t) => t.split(";")[0] === type)!;
  const at = pointer(
    "paths",
    template!,
    method.toLowerCase(),
    "responses",
    status,
    "content",
    media,
    "schema",
  );
  const { valid, errors } = schemas.validate(at, body);
  expect(errors, `${method} ${path} → ${status}: ${JSON.stringify(body).slice(0, 300)}`).toEqual([]);
  expect(valid).toBe(true);
  return body;
}

async function call(method: string, path: string, init: RequestInit & { token?: string } = {}) {
  return conforms(method, path, await sys.call(path, { ...init, method }));
}

describe("route coverage", () => {
  it("documents every route the app registers", () => {
    const routes = sys.routes();
    expect(routes.length).toBeGreaterThan(20);
    const { undocumented } = compareRoutes(routes, doc);
    expect(undocumented.filter((op) => !isBoardInternal(op))).toEqual([]);
  });

  it("serves every documented operation but those other work is adding", () => {
    // (The WebSocket's upgrade is answered by the HTTP server's `upgrade` listener; a plain GET /ws
    // is a route of the app, answered 400.)
    expect(compareRoutes(sys.routes(), doc).unserved).toEqual([...ADMIN_FACE].sort());
  });
});

describe("GET /openapi.json", () => {
  it("is public, names PUBLIC_URL as its server, and is cached", async () => {
    const res = await sys.call("/openapi.json");
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toMatch(/^public, max-age=\d+$/);
    const etag = res.headers.get("etag");
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const body = (await res.json()) as Json;
    expect(body.openapi).toBe("3.1.0");
    expect(body.servers).toEqual([{ url: sys.url }]);
    const again = await sys.call("/openapi.json", { headers: { "if-none-match": etag! } });
    expect(again.status).toBe(304);
    expect(again.headers.get("etag")).toBe(etag);
  });

  it("is sent gzipped to a client that takes gzip, and as it is to one that does not", async () => {
    const zipped = await sys.call("/openapi.json", { headers: { "accept-encoding": "gzip" } });
    expect(zipped.headers.get("content-encoding")).toBe("gzip");
    expect(((await zipped.json()) as Json).openapi).toBe("3.1.0");
    const plain = await sys.call("/openapi.json", { headers: { "accept-encoding": "identity" } });
    expect(plain.headers.get("content-encoding")).toBeNull();
    expect(((await plain.json()) as Json).openapi).toBe("3.1.0");
  });
});

describe("GET /docs", () => {
  it("serves the page with a self-only CSP, and every file it references with its content type", async () => {
    const res = await sys.call("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:|unsafe-inline|unsafe-eval/);
    const html = await res.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.sort()).toEqual([
      "/docs/docs.js",
      "/docs/favicon-32x32.png",
      "/docs/swagger-ui-bundle.js",
      "/docs/swagger-ui.css",
    ]);
    const expected: Record<string, RegExp> = {
      ".js": /^text\/javascript; charset=utf-8$/,
      ".css": /^text\/css; charset=utf-8$/,
      ".png": /^image\/png$/,
    };
    for (const ref of refs) {
      const file = await sys.call(ref);
      expect(file.status, ref).toBe(200);
      expect(file.headers.get("content-type"), ref).toMatch(expected[ref.slice(ref.lastIndexOf("."))]!);
      expect((await file.arrayBuffer()).byteLength, ref).toBeGreaterThan(100);
    }
    // The starter points Swagger UI at the document, on this origin.
    const starter = await (await sys.call("/docs/docs.js")).text();
    expect(starter).toContain('url: "/openapi.json"');
    expect(starter).toContain("validatorUrl: null");
  });

  it("answers 404 for a file it does not serve, and never reads outside the package", async () => {
    for (const name of ["index.html", "package.json", "..%2Fpackage.json", "swagger-ui.js.map"]) {
      await expect(call("GET", `/docs/${name}`)).resolves.toMatchObject({ error: "not_found" });
    }
  });
});

describe("real answers match the document", () => {
  it("probes, the document and the page", async () => {
    await expect(call("GET", "/health")).resolves.toEqual({ status: "ok" });
    await call("HEAD", "/health");
    await expect(call("GET", "/ready")).resolves.toMatchObject({ status: "ready" });
    const admin = await sys.token("ops", { admin: true });
    await expect(call("GET", "/ready", { token: admin })).resolves.toHaveProperty("backends");
    await call("GET", "/openapi.json");
    await call("GET", "/docs");
    await call("GET", "/docs/swagger-ui.css");
  });

  it("a job's life: queue, job, events, results, cancel, webhooks log", async () => {
    const id = await queueJob(sys, customer, { ...FLUX_SCHNELL_512, prompt: "conformance" });
    await call("GET", "/queue", { token: customer });
    await call("GET", `/jobs/${id}`, { token: customer });
    const events = await sys.call(`/jobs/${id}/events`, { token: customer });
    await conforms("GET", `/jobs/${id}/events`, events);
    const done = await waitFor(async () => {
      const res = await sys.call(`/jobs/${id}?redirect=false`, { token: customer });
      const job = (await res.json()) as { status: string; output: string };
      return job.status === "complete" ? job : undefined;
    });
    await call("GET", `/jobs/${id}`, { token: customer, headers: { accept: "application/json" } });
    await call("GET", `/jobs/${id}`, { token: customer });
    await call("GET", new URL(done.output).pathname + new URL(done.output).search);
    await call("GET", new URL(done.output).pathname, { token: customer, headers: { range: "bytes=0-9" } });
    await call("HEAD", new URL(done.output).pathname, { token: customer });
    await expect(call("DELETE", `/jobs/${id}`, { token: customer })).resolves.toMatchObject({
      error: "conflict",
    });
    await expect(call("GET", `/jobs/${id}/webhooks`, { token: customer })).resolves.toMatchObject({
      job_id: id,
    });
  });

  it("the sync routes: bytes, and JSON outputs for count > 1", async () => {
    const body = JSON.stringify({ prompt: "sync conformance" });
    await call("POST", "/image/flux/schnell/t2i?format=512", { token: customer, body });
    const two = JSON.stringify({ prompt: "two of them", count: 2 });
    await expect(
      call("POST", "/image/flux/schnell/t2i?format=512", { token: customer, body: two }),
    ).resolves.toMatchObject({
      outputs: [expect.any(String), expect.any(String)],
    });
  });

  it("catalogue, usage and webhook secrets", async () => {
    await call("GET", "/models", { token: customer });
    await call("GET", "/models/aliases", { token: customer });
    await call("GET", "/models/loras", { token: customer });
    await call("GET", "/usage?group_by=model", { token: customer });
    await call("GET", "/webhooks/secret", { token: customer });
    await call("POST", "/webhooks/secret/rotate", { token: customer });
  });

  it("the audit log: receipt, checkpoint, consistency proof, segments, keys", async () => {
    const id = await queueJob(sys, customer, { ...FLUX_SCHNELL_512, prompt: "audited" });
    const receipt = await waitFor(async () => {
      const res = await sys.call(`/jobs/${id}/receipt`, { token: customer });
      return res.status === 200 ? conforms("GET", `/jobs/${id}/receipt`, res) : undefined;
    });
    expect(receipt.record.job_id).toBe(id);
    const checkpoint = await call("GET", "/audit/checkpoint");
    await call("GET", `/audit/consistency?from=1&to=${checkpoint.tree_size}`);
    const admin = await sys.token("ops", { admin: true });
    await call("GET", "/audit/segments?limit=1", { token: admin });
    await expect(call("GET", "/.well-known/render-gateway/keys")).resolves.toHaveProperty("keys");
  });

  it("an upload: URL, PUT, asset", async () => {
    const png = await solidPng("#3366cc");
    const made = await call("POST", "/uploads", {
      token: customer,
      body: JSON.stringify({ content_type: "image/png", bytes: png.byteLength }),
    });
    const put = new URL(made.upload_url);
    const stored = await conforms(
      "PUT",
      put.pathname + put.search,
      await fetch(made.upload_url, { method: "PUT", body: png, headers: { "content-type": "image/png" } }),
    );
    expect(stored.digest).toMatch(/^sha256-/);
    await call("GET", new URL(made.asset_url).pathname, { token: customer });
  });

  it("problem documents", async () => {
    const cases: [string, string, RequestInit & { token?: string }, string][] = [
      ["GET", "/queue", {}, "unauthorized"],
      [
        "POST",
        "/queue",
        { token: customer, body: JSON.stringify({ ...FLUX_SCHNELL_512 }) },
        "validation_error",
      ],
      ["POST", "/queue", { token: customer, body: "{" }, "invalid_json"],
      [
        "POST",
        "/queue",
        { token: customer, body: JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "p", model: "nope" }) },
        "not_found",
      ],
      [
        "POST",
        "/queue",
        { token: customer, body: "x", headers: { "content-type": "text/plain" } },
        "unsupported_media_type",
      ],
      ["GET", "/jobs/j_AAAAAAAAAAAAAAAAAAAAAA", { token: customer }, "not_found"],
      ["GET", "/usage?group_by=week", { token: customer }, "validation_error"],
      [
        "POST",
        "/image/flux/schnell/t2i",
        { token: customer, body: JSON.stringify({ prompt: "p", steps: 0 }) },
        "validation_error",
      ],
      ["GET", "/assets/a_AAAAAAAAAAAAAAAAAAAA", { token: customer }, "not_found"],
      ["GET", "/jobs/j_AAAAAAAAAAAAAAAAAAAAAA/receipt", { token: customer }, "not_found"],
      ["GET", "/audit/consistency?from=2&to=1", {}, "validation_error"],
      ["GET", "/audit/segments", { token: customer }, "forbidden"],
      ["GET", "/audit/segments", {}, "unauthorized"],
    ];
    for (const [method, path, init, code] of cases) {
      await expect(call(method, path, init), `${method} ${path}`).resolves.toMatchObject({ error: code });
    }
  });

  it("a method the path does not have: the shared 405 response", async () => {
    const res = await sys.call("/queue", { method: "PUT", token: customer });
    expect(res.status).toBe(405);
    const at = pointer(
      "components",
      "responses",
      "MethodNotAllowed",
      "content",
      "application/problem+json",
      "schema",
    );
    const { valid, errors } = schemas.validate(at, await res.json());
    expect(errors).toEqual([]);
    expect(valid).toBe(true);
  });
});
