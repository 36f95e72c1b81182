// Operations on what jobs use and produce, and on the account (API.md §3): objects, uploads and
// assets, the model catalogue, usage, webhook secrets and delivery logs.
import { DIGEST_RE } from "../../core/ports.js";
import { ASSET_ID_RE, UPLOAD_CONTENT_TYPES } from "../../core/upload-url.js";
import { DELIVERY_ID_RE } from "../../core/webhook-delivery.js";
import { ref, type JsonSchema } from "./json-schema.js";
import {
  header,
  JSON_BODY_PROBLEMS,
  jsonResponse,
  operation,
  parameter,
  parameterRef,
  READ_PROBLEMS,
  response,
} from "./operation.js";

const binary = { schema: { type: "string", contentMediaType: "application/octet-stream" } };
const signature = [
  parameter(
    "exp",
    "query",
    { type: "string", pattern: "^[1-9][0-9]{0,15}$" },
    "Expiry (unix seconds) of a signed URL.",
  ),
  parameter(
    "sig",
    "query",
    { type: "string", pattern: "^[A-Za-z0-9_-]+$" },
    "Signature (base64url) of a signed URL.",
  ),
];

function objectOperation(method: "get" | "head"): JsonSchema {
  const get = method === "get";
  const cacheHeaders = {
    ETag: header("ETag"),
    "Cache-Control": header("ImmutableCacheControl"),
    "Accept-Ranges": header("AcceptRanges"),
  };
  const media = { "image/png": binary, "image/webp": binary, "image/jpeg": binary, "video/mp4": binary };
  return operation({
    operationId: get ? "getObject" : "headObject",
    tags: ["results"],
    summary: get ? "download an object" : "an object's size and type",
    description:
      "Content-addressed bytes. Allowed with a URL signed by the gateway (job `output`/`outputs`, sync " +
      "`Content-Location`, upload answers), or the token of a customer who produced or uploaded the " +
      "object (or an admin); anyone else gets 404. `Range` (one range) and `If-Range` are honoured.",
    access: "token-or-signed",
    parameters: [
      parameter("digest", "path", { type: "string", pattern: DIGEST_RE.source }),
      ...signature,
      ...(get
        ? [parameter("Range", "header", { type: "string" }, "One byte range, e.g. `bytes=0-1023`.")]
        : []),
      parameter("If-None-Match", "header", { type: "string" }),
    ],
    responses: {
      "200": response("The object.", get ? media : undefined, cacheHeaders),
      ...(get
        ? {
            "206": response("The requested range.", media, {
              ...cacheHeaders,
              "Content-Range": header("ContentRange"),
            }),
          }
        : {}),
      "304": response("Not modified (`If-None-Match` matched the digest).", undefined, cacheHeaders),
    },
    problems: ["not_found", ...(get ? (["range_not_satisfiable"] as const) : []), ...READ_PROBLEMS],
  });
}

const listing = (operationId: string, summary: string, schema: string, description: string) =>
  operation({
    operationId,
    tags: ["models"],
    summary,
    access: "token",
    responses: { "200": jsonResponse(description, schema) },
    problems: READ_PROBLEMS,
  });

export function resourcePaths(
  usageParameters: readonly JsonSchema[],
): Record<string, Record<string, JsonSchema>> {
  const jobId = parameterRef("JobId");
  return {
    "/objects/{digest}": { get: objectOperation("get"), head: objectOperation("head") },
    "/uploads": {
      post: operation({
        operationId: "createUpload",
        tags: ["uploads"],
        summary: "get presigned upload URL",
        description: "The `upload_url` takes one `PUT` of exactly `bytes` bytes within an hour.",
        access: "token",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: ref("CreateUploadRequest"),
              example: { content_type: "image/png", bytes: 834211 },
            },
          },
        },
        responses: { "200": jsonResponse("Where to upload, and the asset's URL.", "CreateUploadResponse") },
        problems: [...JSON_BODY_PROBLEMS, "rate_limited"],
      }),
    },
    "/uploads/{id}": {
      put: operation({
        operationId: "uploadBytes",
        tags: ["uploads"],
        summary: "upload the bytes (presigned)",
        description:
          "Exactly the declared number of bytes of the declared type (`application/octet-stream` is " +
          "taken too). A bad, tampered or expired URL is 403; a second PUT of an uploaded asset 409.",
        access: "signed",
        parameters: [parameter("id", "path", { type: "string", pattern: ASSET_ID_RE.source }), ...signature],
        requestBody: {
          required: true,
          content: Object.fromEntries(
            [...UPLOAD_CONTENT_TYPES, "application/octet-stream"].map((type) => [type, binary]),
          ),
        },
        responses: { "201": jsonResponse("Stored: its digest and signed URL.", "UploadedObject") },
        problems: [
          "validation_error",
          "forbidden",
          "conflict",
          "request_too_large",
          "unsupported_media_type",
          "unavailable",
        ],
      }),
    },
    "/assets/{id}": {
      get: operation({
        operationId: "getAsset",
        tags: ["uploads"],
        summary: "follow an asset to its object",
        description: "302 to the object's signed URL for its uploader (or an admin); 409 before its PUT.",
        access: "token",
        parameters: [parameter("id", "path", { type: "string", pattern: ASSET_ID_RE.source })],
        responses: {
          "302": response("The object's signed URL.", undefined, { Location: header("OutputLocation") }),
        },
        problems: ["not_found", "conflict", ...READ_PROBLEMS],
      }),
    },
    "/models": {
      get: listing(
        "listModels",
        "list available models",
        "ModelsResponse",
        "Every catalogue model with its tasks, formats, engines, status, aliases and presets.",
      ),
    },
    "/models/aliases": {
      get: listing(
        "listAliases",
        "list model aliases",
        "AliasesResponse",
        "Hugging Face ids → family/model.",
      ),
    },
    "/models/loras": {
      get: listing("listLoras", "list available LoRAs", "LorasResponse", "The curated LoRAs."),
    },
    "/usage": {
      get: operation({
        operationId: "getUsage",
        tags: ["usage"],
        summary: "usage and cost in a window",
        description:
          "The caller's finished jobs, GPU-seconds and cost (integer micro-USD) placed by `completed_at` " +
          "(UTC) in [from, to), at most 366 days; grouped by model or day when asked.",
        access: "token",
        parameters: usageParameters,
        responses: { "200": jsonResponse("The report.", "UsageReport") },
        problems: ["validation_error", ...READ_PROBLEMS],
      }),
    },
    "/webhooks/secret": {
      get: operation({
        operationId: "getWebhookSecret",
        tags: ["webhooks"],
        summary: "the tenant's webhook signing secret",
        access: "token",
        responses: { "200": jsonResponse("The secret (created on the first read).", "WebhookSecret") },
        problems: READ_PROBLEMS,
      }),
    },
    "/webhooks/secret/rotate": {
      post: operation({
        operationId: "rotateWebhookSecret",
        tags: ["webhooks"],
        summary: "rotate the webhook signing secret",
        description: "The old secret keeps signing beside the new one until `previous_valid_until` (24 h).",
        access: "token",
        responses: { "200": jsonResponse("The new secret.", "WebhookSecret") },
        problems: READ_PROBLEMS,
      }),
    },
    "/jobs/{id}/webhooks": {
      get: operation({
        operationId: "listJobWebhooks",
        tags: ["webhooks"],
        summary: "a job's webhook deliveries",
        access: "token",
        parameters: [jobId],
        responses: { "200": jsonResponse("Each delivery with its state and attempts.", "DeliveryLog") },
        problems: ["not_found", ...READ_PROBLEMS],
      }),
    },
    "/jobs/{id}/webhooks/{delivery}/replay": {
      post: operation({
        operationId: "replayJobWebhook",
        tags: ["webhooks"],
        summary: "send a delivery again",
        description:
          "The same message (same `webhook-id`), freshly signed; a URL disabled by a 410 is enabled again.",
        access: "token",
        parameters: [
          jobId,
          parameter("delivery", "path", { type: "string", pattern: DELIVERY_ID_RE.source }),
        ],
        responses: { "202": jsonResponse("Queued for delivery.", "ReplayAccepted") },
        problems: ["not_found", ...READ_PROBLEMS],
      }),
    },
  };
}
