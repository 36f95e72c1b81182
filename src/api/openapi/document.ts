// The OpenAPI 3.1 document of the gateway (GET /openapi.json), generated at start: request schemas
// from the zod schemas the routes validate with, response schemas from response-schemas.ts, every
// route of the app (test/integration/openapi.test.ts holds the two to each other) and every problem
// code. Tags, operationIds and component names follow the original spec (API.md §7).
import { STATUS_OF, TITLE_OF } from "../../core/errors.js";
import { FORMATS, formatIds, MODALITIES } from "../../core/formats.js";
import { WEBHOOK_EVENTS } from "../../core/request-schema.js";
import { ref, type JsonSchema } from "./json-schema.js";
import { ERROR_CODES, responseSchemas } from "./response-schemas.js";
import { requestSchemas } from "./request-schemas.js";
import { problemResponses } from "./operation.js";
import { generationPaths } from "./paths-generation.js";
import { resourcePaths } from "./paths-resources.js";
import { servicePaths } from "./paths-service.js";
import { compliancePaths } from "./paths-compliance.js";
import { auditPaths, auditSchemas } from "./paths-audit.js";
import { HEADERS } from "./headers.js";

export interface OpenApiOptions {
  /** The gateway's version (package.json). */
  readonly version: string;
  /** The `ttl` bounds `POST /queue` checks (MIN_TTL_S and 86400). */
  readonly minTtlS: number;
  readonly maxTtlS: number;
  /** The files the reference page loads (`/docs/{file}`). */
  readonly docsFiles: readonly string[];
}

/** The document; `servers` is filled in when it is served (PUBLIC_URL is known once the API listens). */
export type OpenApiDocument = JsonSchema & { servers: { url: string; description?: string }[] };

const TAGS: readonly (readonly [name: string, display: string, description: string])[] = [
  ["sync-video", "sync / video", "Synchronous video generation: POST and receive the bytes."],
  ["sync-image", "sync / image", "Synchronous image generation: POST and receive the bytes."],
  ["async-queue", "async / submit", "Queue a job: 202 with its id, position and ETA."],
  ["async-jobs", "async / jobs", "Job status and cancellation."],
  ["websocket", "websocket", "Submit and follow jobs over one WebSocket."],
  ["sse", "sse", "Server-sent events of a job's progress."],
  ["models", "models", "The model catalogue: models, aliases, LoRAs."],
  ["uploads", "uploads", "Presigned uploads of input images."],
  ["results", "results", "Outputs and uploads, by digest."],
  ["usage", "usage", "GPU-seconds and cost of the caller's finished jobs."],
  ["webhooks", "webhooks", "Signing secrets, delivery logs and replays (Standard Webhooks)."],
  ["audit", "audit", "Receipts of finished jobs, signed checkpoints and proofs of the audit log."],
  ["service", "service", "Probes and metrics."],
  ["docs", "docs", "This reference."],
  ["admin", "admin", "The operators' face: Bull Board and its login."],
  ["playground", "playground", "Try the API from a browser."],
];

const TAG_GROUPS = [
  { name: "Sync", tags: ["sync-video", "sync-image"] },
  { name: "Async", tags: ["async-queue", "async-jobs"] },
  { name: "Streaming", tags: ["websocket", "sse"] },
  { name: "Infrastructure", tags: ["models", "uploads", "results"] },
  { name: "Account", tags: ["usage", "webhooks", "audit"] },
  { name: "Operations", tags: ["service", "docs", "admin", "playground"] },
];

function description(): string {
  const formats = MODALITIES.map(
    (m) =>
      `**${m}**: ` +
      formatIds(m)
        .map((id) => `\`${id}\` ${FORMATS[m][id]!.width}×${FORMATS[m][id]!.height}`)
        .join(" · "),
  ).join("\n\n");
  const codes = ERROR_CODES.map((c) => `| \`${c}\` | ${STATUS_OF[c]} | ${TITLE_OF[c]} |`).join("\n");
  return `A job gateway for image and video generation on GPU inference servers.

\`\`\`bash
curl -X POST "$PUBLIC_URL/image/flux/schnell/t2i" -H "Authorization: Bearer $TOKEN" \\
  -H "Content-Type: application/json" -d '{"prompt":"a lighthouse at dawn, watercolor"}' -o image.png
\`\`\`

## Identity
\`Authorization: Bearer <token>\`: a JWT (\`customer_id\`, \`tier\`, \`scope\`) or an API key
\`rk_<prefix>_<secret>\`. Public: \`/health\`, \`/ready\`, \`/openapi.json\`, \`/docs\`, the playground,
signed object URLs, the audit log's checkpoint, consistency proofs and keys, and \`/ws\` (which may
authenticate in its first message).

## URL anatomy
\`/{modality}/{family}/{model}/{task}?format=…&backend=…\`: modality \`image\` or \`video\`; tasks
\`t2i\` \`i2i\` \`edit\` (image), \`t2v\` \`i2v\` (video). Hugging Face ids work as family/model
(\`/image/black-forest-labs/FLUX.1-schnell/t2i\`); \`GET /models\` lists what exists.

## Formats
${formats}

## Errors
Every error is \`application/problem+json\` (RFC 9457) with the original API's envelope: \`error\`
(the code), \`message\`, \`request_id\`, \`details\` (\`{field, constraint}\` for validation errors).

| code | status | title |
|---|---|---|
${codes}

A method a path does not have answers 405 \`method_not_allowed\` with \`Allow\`; \`Retry-After\`
(integer seconds) comes with 429 and 503. Any request may be answered, before it reaches a route,
431 \`headers_too_large\` (headers past the server's limit), 408 \`request_timeout\` (headers or body
slower than the server's timeouts) or 400 \`validation_error\` (not a well-formed HTTP request),
and its connection closed.

## Compatibility
Paths, operationIds, tags and request fields are the original render API's; deliberate changes:
one origin, problem documents, signed expiring output URLs, \`DELETE\` of a running job cancels it
(202), a sync call whose budget runs out answers 202 with the job, unknown fields and models are
refused (400/404).`;
}

/** Webhook deliveries (Standard Webhooks), one per event a job subscribes to. */
function webhooks(): Record<string, JsonSchema> {
  const signed = (name: string, about: string) => ({
    name,
    in: "header",
    required: true,
    description: about,
    schema: { type: "string" },
  });
  return Object.fromEntries(
    WEBHOOK_EVENTS.map((event) => [
      `job.${event}`,
      {
        post: {
          operationId: `webhook${event[0]!.toUpperCase()}${event.slice(1)}`,
          summary: `job.${event} delivery`,
          description:
            "Verify the signature over the raw body with the tenant's secret; deduplicate by `webhook-id`.",
          parameters: [
            signed("webhook-id", "The message id: the same on every retry and replay."),
            signed("webhook-timestamp", "Unix seconds of this attempt."),
            signed(
              "webhook-signature",
              "`v1,<base64 HMAC-SHA256>` (two, space-separated, during a rotation).",
            ),
          ],
          requestBody: { required: true, content: { "application/json": { schema: ref("WebhookEvent") } } },
          responses: {
            "2XX": { description: "Delivered." },
            "410": { description: "Gone: the URL is disabled for the tenant until a replay." },
            default: { description: "Anything else (or no answer in 10 s): retried with backoff for 24 h." },
          },
        },
      },
    ]),
  );
}

/** Builds the document (the server is filled in when it is served). */
export function buildOpenApiDocument(opts: OpenApiOptions): OpenApiDocument {
  const requests = requestSchemas(opts);
  const paths = {
    ...generationPaths(),
    ...resourcePaths(requests.usageParameters),
    ...servicePaths(opts.docsFiles),
    ...compliancePaths(),
    ...auditPaths(),
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "render-gateway API",
      version: opts.version,
      description: description(),
      license: { name: "Proprietary" },
    },
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    servers: [],
    security: [{ bearer: [] }, { apiKey: [] }],
    tags: TAGS.map(([name, display, about]) => ({ name, "x-displayName": display, description: about })),
    "x-tagGroups": TAG_GROUPS,
    paths,
    webhooks: webhooks(),
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "A JWT: HS256, Ed25519, RS256 or ES256; `exp` required.",
        },
        apiKey: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "rk_<prefix>_<secret>",
          description: "An API key made by `render-gateway keys create`.",
        },
        metricsToken: { type: "http", scheme: "bearer", description: "`METRICS_TOKEN`, when set." },
        adminCookie: {
          type: "apiKey",
          in: "cookie",
          name: "rg_admin",
          description: "Set by POST /admin/login.",
        },
      },
      schemas: { ...requests.components, ...responseSchemas(), ...auditSchemas() },
      parameters: requests.parameters,
      headers: HEADERS,
      responses: {
        MethodNotAllowed: problemResponses(["method_not_allowed"])["405"],
        HeadersTooLarge: problemResponses(["headers_too_large"])["431"],
        RequestTimeout: problemResponses(["request_timeout"])["408"],
        NotFound: problemResponses(["not_found"])["404"],
      },
    },
  };
}
