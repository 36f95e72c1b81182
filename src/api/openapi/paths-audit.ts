// The audit log's operations and schemas (API.md §3 "Receipts, audit log and usage"): receipts,
// checkpoints, consistency proofs, segments and the checkpoint keys.
import { z } from "zod";
import { DIGEST_RE } from "../../core/ports.js";
import { componentSchemas, createComponentRegistry, type JsonSchema } from "./json-schema.js";
import { header, jsonResponse, operation, parameter, parameterRef, READ_PROBLEMS } from "./operation.js";

const hex = () => z.string().regex(/^[0-9a-f]{64}$/);
const dateTime = () => z.string().meta({ format: "date-time" });
const count = () => z.int().min(0);
const digest = () => z.string().regex(DIGEST_RE);

const AuditRecord = z
  .object({
    job_id: z.string(),
    customer_id: z.string(),
    modality: z.string(),
    family: z.string(),
    model: z.string(),
    task: z.string(),
    backend: z.string().nullable(),
    status: z.enum(["complete", "error", "cancelled"]),
    attempts: count(),
    created_at: dateTime(),
    started_at: dateTime().nullable(),
    completed_at: dateTime(),
    gpu_ms: count(),
    price_micro_usd: count().meta({ description: "What the job was charged (the usage ledger's figure)." }),
    input_digest: digest().meta({ description: "SHA-256 of the RFC 8785 bytes of the job's request." }),
    output_digests: z.array(digest()),
  })
  .meta({ description: "One leaf of the audit log: ids, digests and figures, never a prompt or an image." });

const AuditCheckpoint = z
  .object({
    log_id: z.string(),
    tree_size: count(),
    root_hash: hex(),
    timestamp: dateTime(),
    key_id: z.string().meta({ description: "The `kid` of the JWKS key that verifies it." }),
    signature: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .meta({ description: "Ed25519 over the RFC 8785 bytes of the checkpoint without `signature`." }),
  })
  .meta({ description: "A signed tree head of the audit log." });

const Receipt = z.object({
  record: AuditRecord,
  leaf_index: count(),
  leaf_hash: hex().meta({ description: "SHA-256(0x00 ‖ RFC 8785 bytes of `record`)." }),
  inclusion_proof: z.array(hex()).meta({ description: "RFC 6962 audit path, nearest the leaf first." }),
  checkpoint: AuditCheckpoint,
});

const AuditConsistency = z.object({
  from: count(),
  to: count(),
  proof: z.array(hex()).meta({ description: "RFC 6962 consistency proof between the two tree sizes." }),
});

const AuditSegments = z.object({
  tree_size: count(),
  segment_size: z.int().min(1),
  segments: z.array(
    z.object({
      segment: count(),
      digest: digest().meta({ description: "The segment's blob in the CAS: its leaves, one per line." }),
      count: count(),
      root: hex().optional().meta({ description: "The sealed segment's root; absent for the open one." }),
    }),
  ),
  next: count().optional().meta({ description: "`from` of the next page; absent on the last." }),
});

const AuditJwks = z.object({
  keys: z.array(
    z.object({
      kty: z.literal("OKP"),
      crv: z.literal("Ed25519"),
      x: z.string(),
      kid: z.string().meta({ description: "RFC 7638 thumbprint: a checkpoint's `key_id`." }),
      alg: z.literal("EdDSA"),
      use: z.literal("sig"),
    }),
  ),
});

/** The audit log's component schemas. */
export function auditSchemas(): Record<string, JsonSchema> {
  const registry = createComponentRegistry();
  const named: Record<string, z.ZodType> = {
    AuditRecord,
    AuditCheckpoint,
    Receipt,
    AuditConsistency,
    AuditSegments,
    AuditJwks,
  };
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  return componentSchemas(registry, "output");
}

const integerQuery = (name: string, minimum: number, description: string, required: boolean) =>
  parameter(name, "query", { type: "integer", minimum }, description, required);

/** The audit log's operations. */
export function auditPaths(): Record<string, Record<string, JsonSchema>> {
  return {
    "/jobs/{id}/receipt": {
      get: operation({
        operationId: "getJobReceipt",
        tags: ["audit"],
        summary: "a finished job's receipt",
        description:
          "The job's audit record, its leaf in the log, the inclusion proof and the signed checkpoint it " +
          "is proven against: verifiable offline with the JWKS alone. 404 until a checkpoint covers the " +
          "job (a second or so after it finished), and for another customer's job.",
        access: "token",
        parameters: [parameterRef("JobId")],
        responses: { "200": jsonResponse("The receipt.", "Receipt") },
        problems: ["not_found", ...READ_PROBLEMS],
      }),
    },
    "/audit/checkpoint": {
      get: operation({
        operationId: "getAuditCheckpoint",
        tags: ["audit"],
        summary: "the latest signed checkpoint",
        access: "public",
        responses: {
          "200": jsonResponse("The checkpoint.", "AuditCheckpoint", {
            "Cache-Control": header("PublicCacheControl"),
          }),
        },
        problems: ["not_found", "unavailable"],
      }),
    },
    "/audit/consistency": {
      get: operation({
        operationId: "getAuditConsistency",
        tags: ["audit"],
        summary: "a consistency proof between two tree sizes",
        description:
          "Shows that the tree of `to` leaves extends the tree of `from` leaves (RFC 6962 §2.1.4): check " +
          "it against two checkpoints you hold. 1 ≤ from ≤ to ≤ the latest signed checkpoint's `tree_size`. " +
          "A process computes a few proofs at once; beyond that the answer is 503 with `Retry-After: 1`.",
        access: "public",
        parameters: [
          integerQuery("from", 1, "The smaller tree size.", true),
          integerQuery("to", 1, "The larger tree size.", true),
        ],
        responses: { "200": jsonResponse("The proof.", "AuditConsistency") },
        problems: ["validation_error", "unavailable"],
      }),
    },
    "/audit/segments": {
      get: operation({
        operationId: "listAuditSegments",
        tags: ["audit"],
        summary: "the log's stored segments (admins)",
        description: "The CAS digest of each segment's blob, its leaf count and, once sealed, its root.",
        access: "admin",
        parameters: [
          integerQuery("from", 0, "The first segment listed (default 0).", false),
          integerQuery("limit", 1, "Segments per page (default 100, at most 1000).", false),
        ],
        responses: { "200": jsonResponse("A page of segments.", "AuditSegments") },
        problems: ["validation_error", "forbidden", ...READ_PROBLEMS],
      }),
    },
    "/.well-known/render-gateway/keys": {
      get: operation({
        operationId: "getAuditKeys",
        tags: ["audit"],
        summary: "the checkpoint signing keys (JWKS)",
        description:
          "Every Ed25519 key that ever signed a checkpoint; old ones stay so old checkpoints verify.",
        access: "public",
        responses: {
          "200": jsonResponse("The keys.", "AuditJwks", { "Cache-Control": header("PublicCacheControl") }),
        },
        problems: ["unavailable"],
      }),
    },
  };
}
