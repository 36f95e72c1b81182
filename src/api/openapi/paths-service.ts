// Operations of running the gateway: probes, metrics, this reference itself, the admin face and the
// playground (API.md §1, §3 "Other routes").
import { type JsonSchema } from "./json-schema.js";
import { header, jsonResponse, operation, parameter, response } from "./operation.js";

const html = { "text/html": { schema: { type: "string" } } };
const form = (fields: Record<string, JsonSchema>) => ({
  required: true,
  content: {
    "application/x-www-form-urlencoded": {
      schema: { type: "object", properties: fields, required: Object.keys(fields) },
    },
  },
});

function probes(): Record<string, Record<string, JsonSchema>> {
  const health = (method: "get" | "head") =>
    operation({
      operationId: method === "get" ? "health" : "headHealth",
      tags: ["service"],
      summary: "the process is up",
      access: "public",
      responses: { "200": jsonResponse("Up.", "Health") },
      problems: [],
    });
  const ready = (method: "get" | "head") =>
    operation({
      operationId: method === "get" ? "ready" : "headReady",
      tags: ["service"],
      summary: "ready for traffic",
      description:
        "200 when Redis answers and the process is not shutting down, else 503. Admins (a token with " +
        "the admin scope) also see backends, capacity, workers, tenants and the pipeline's backlog.",
      access: "public",
      responses: {
        "200": jsonResponse("Ready.", "Ready"),
        "503": jsonResponse("Not ready.", "Ready", { "Retry-After": header("RetryAfter") }),
      },
      problems: [],
    });
  return {
    "/health": { get: health("get"), head: health("head") },
    "/ready": { get: ready("get"), head: ready("head") },
  };
}

function metrics(method: "get" | "head"): JsonSchema {
  return operation({
    operationId: method === "get" ? "metrics" : "headMetrics",
    tags: ["service"],
    summary: "Prometheus metrics",
    description:
      "The fleet's metrics in the Prometheus text format. Open unless `METRICS_TOKEN` is set; then " +
      "only that bearer token gets them.",
    access: "metrics",
    responses: {
      "200": response("The metrics.", { "text/plain; version=0.0.4": { schema: { type: "string" } } }),
    },
    problems: [],
  });
}

/** The operations; `docsFiles`: the files `/docs` loads (docs page module). */
export function servicePaths(docsFiles: readonly string[]): Record<string, Record<string, JsonSchema>> {
  const cached = { "Cache-Control": header("PublicCacheControl"), ETag: header("ETag") };
  return {
    ...probes(),
    "/metrics": { get: metrics("get"), head: metrics("head") },
    "/openapi.json": {
      get: operation({
        operationId: "getOpenApi",
        tags: ["docs"],
        summary: "this document (OpenAPI 3.1)",
        access: "public",
        responses: {
          "200": response("The document.", { "application/json": { schema: { type: "object" } } }, cached),
          "304": response("Not modified.", undefined, cached),
        },
        problems: [],
      }),
    },
    "/docs": {
      get: operation({
        operationId: "getDocs",
        tags: ["docs"],
        summary: "the API reference (Swagger UI)",
        description: "Served from the installed swagger-ui-dist package: works with no internet access.",
        access: "public",
        responses: {
          "200": response("The page.", html, cached),
          "304": response("Not modified.", undefined, cached),
        },
        problems: [],
      }),
    },
    "/docs/{file}": {
      get: operation({
        operationId: "getDocsAsset",
        tags: ["docs"],
        summary: "a file of the API reference page",
        access: "public",
        parameters: [parameter("file", "path", { type: "string", enum: [...docsFiles] })],
        responses: {
          "200": response(
            "The file.",
            {
              "text/css": { schema: { type: "string" } },
              "text/javascript": { schema: { type: "string" } },
              "image/png": { schema: { type: "string", contentMediaType: "image/png" } },
            },
            cached,
          ),
          "304": response("Not modified.", undefined, cached),
        },
        problems: ["not_found"],
      }),
    },
    "/admin/queues": {
      get: operation({
        operationId: "adminQueues",
        tags: ["admin"],
        summary: "Bull Board (operators)",
        description:
          "The queues' dashboard, read-only, for an admin credential: a token with the admin scope, or " +
          "the session cookie that POST /admin/login sets. A browser without one is sent to the login form.",
        access: "admin",
        responses: { "200": response("The board.", html) },
        problems: ["forbidden"],
      }),
    },
    "/admin/login": {
      get: operation({
        operationId: "adminLoginForm",
        tags: ["admin"],
        summary: "the admin login form",
        access: "public",
        responses: { "200": response("The form.", html) },
        problems: [],
      }),
      post: operation({
        operationId: "adminLogin",
        tags: ["admin"],
        summary: "log in to the admin face",
        description:
          "Takes an admin token (JWT with the admin scope or an admin API key) from a same-origin form " +
          "and keeps it in an HttpOnly, SameSite=Strict cookie scoped to /admin; 303 to the board.",
        access: "public",
        requestBody: form({ token: { type: "string" } }),
        responses: {
          "303": response("Logged in: to /admin/queues.", undefined, { "Set-Cookie": header("SetCookie") }),
          "401": response("Not a valid token (the form again).", html),
        },
        problems: ["forbidden", "request_too_large", "unsupported_media_type"],
      }),
    },
    "/admin/logout": {
      get: operation({
        operationId: "adminLogoutForm",
        tags: ["admin"],
        summary: "the admin logout form",
        access: "public",
        responses: { "200": response("The form.", html) },
        problems: [],
      }),
      post: operation({
        operationId: "adminLogout",
        tags: ["admin"],
        summary: "log out of the admin face",
        description: "Clears the session cookie (a same-origin form); 303 to the login form.",
        access: "public",
        responses: { "303": response("Logged out.", undefined, { "Set-Cookie": header("SetCookie") }) },
        problems: ["forbidden", "request_too_large", "unsupported_media_type"],
      }),
    },
    "/": { get: playgroundPage("get"), head: playgroundPage("head") },
    "/playground/{name}": { get: playgroundFile("get"), head: playgroundFile("head") },
  };
}

/** `/` and its files: public, revalidated (ETag, 304), GET and HEAD. */
const revalidated = (what: string, content: Record<string, { schema: JsonSchema }>) => ({
  "200": response(what, content, { ETag: { schema: { type: "string" } } }),
  "304": response("Unchanged since the ETag sent in If-None-Match."),
});

const playgroundPage = (method: "get" | "head") =>
  operation({
    operationId: method === "get" ? "playground" : "headPlayground",
    tags: ["playground"],
    summary: "the playground page",
    description: "Try the API from a browser with a pasted token; public, like its files.",
    access: "public",
    responses: revalidated("The page.", html),
    problems: [],
  });

const playgroundFile = (method: "get" | "head") =>
  operation({
    operationId: method === "get" ? "playgroundAsset" : "headPlaygroundAsset",
    tags: ["playground"],
    summary: "a file of the playground page",
    access: "public",
    parameters: [parameter("name", "path", { type: "string", pattern: "^[a-z0-9][a-z0-9._-]{0,63}$" })],
    responses: revalidated("The file.", {
      "text/css": { schema: { type: "string" } },
      "text/javascript": { schema: { type: "string" } },
    }),
    problems: ["not_found"],
  });
