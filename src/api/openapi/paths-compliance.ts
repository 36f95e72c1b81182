// The compliance reports (README "Compliance"): the list of stored reconciliation reports and each
// report as it was signed (admins only).
import { DIGEST_RE } from "../../core/ports.js";
import type { JsonSchema } from "./json-schema.js";
import { operation, parameter, READ_PROBLEMS, response } from "./operation.js";

const counts = { type: "object", additionalProperties: { type: "integer", minimum: 0 } };

const summary: JsonSchema = {
  type: "object",
  required: [
    "digest",
    "from",
    "to",
    "generated_at",
    "flagged",
    "max_discrepancy",
    "mismatched_jobs",
    "lost",
    "url",
  ],
  properties: {
    digest: { type: "string", pattern: DIGEST_RE.source, description: "The report's CAS digest: its id." },
    from: { type: "string", format: "date-time" },
    to: { type: "string", format: "date-time" },
    generated_at: { type: "string", format: "date-time" },
    flagged: { type: "boolean" },
    max_discrepancy: { type: "number", minimum: 0, maximum: 1 },
    mismatched_jobs: { type: "integer", minimum: 0 },
    lost: { type: "integer", minimum: 0 },
    url: { type: "string", format: "uri" },
  },
};

const report: JsonSchema = {
  type: "object",
  description:
    'The report (docs/decisions.md "Compliance"): per source its status, jobs and GPU ms; the ' +
    "customer × model × hour buckets that disagree with the jobs that explain them; the admitted " +
    "jobs reported lost. `signature`: Ed25519 (base64url) over the RFC 8785 bytes of the report " +
    "without it, by the audit log's key `key_id` (the JWKS at /.well-known/render-gateway/keys).",
  required: [
    "kind",
    "version",
    "from",
    "to",
    "generated_at",
    "sources",
    "discrepancies",
    "lost",
    "flagged",
    "key_id",
    "signature",
  ],
  properties: {
    kind: { const: "render-gateway.compliance-report" },
    version: { const: 1 },
    from: { type: "string", format: "date-time" },
    to: { type: "string", format: "date-time" },
    generated_at: { type: "string", format: "date-time" },
    tolerance: { type: "number" },
    sources: {
      type: "object",
      additionalProperties: {
        type: "object",
        properties: {
          status: { enum: ["ok", "failed", "off"] },
          jobs: { type: "integer" },
          gpu_ms: { type: "integer" },
          duplicates: { type: "integer" },
          error: { type: "string" },
        },
      },
    },
    max_discrepancy: { type: "number" },
    discrepancies: {
      type: "array",
      items: {
        type: "object",
        properties: {
          customer_id: { type: "string" },
          model: { type: "string" },
          hour: { type: "string", format: "date-time" },
          jobs: counts,
          gpu_ms: counts,
          discrepancy: { type: "number" },
          flagged: { type: "boolean" },
          job_ids: { type: "array", items: { type: "object" } },
          job_ids_omitted: { type: "integer" },
        },
      },
    },
    lost: { type: "object" },
    flagged: { type: "boolean" },
    key_id: { type: "string" },
    signature: { type: "string" },
  },
};

export function compliancePaths(): Record<string, Record<string, JsonSchema>> {
  return {
    "/admin/compliance/reports": {
      get: operation({
        operationId: "listComplianceReports",
        tags: ["admin"],
        summary: "list compliance reports",
        description:
          "The stored reconciliation reports (ledger, audit log, analytics), newest first; `next` " +
          "pages on (null on the last page).",
        access: "admin",
        parameters: [
          parameter("limit", "query", { type: "integer", minimum: 1, maximum: 100, default: 20 }),
          parameter(
            "before",
            "query",
            { type: "string", format: "date-time" },
            "Only reports generated before this time.",
          ),
        ],
        responses: {
          "200": response("A page of reports.", {
            "application/json": {
              schema: {
                type: "object",
                required: ["reports", "next"],
                properties: {
                  reports: { type: "array", items: summary },
                  next: { type: ["string", "null"], format: "uri" },
                },
              },
            },
          }),
        },
        problems: ["validation_error", "forbidden", ...READ_PROBLEMS],
      }),
    },
    "/admin/compliance/reports/{digest}": {
      get: operation({
        operationId: "getComplianceReport",
        tags: ["admin"],
        summary: "get a compliance report",
        description: "The signed report, byte for byte as stored (RFC 8785).",
        access: "admin",
        parameters: [parameter("digest", "path", { type: "string", pattern: DIGEST_RE.source })],
        responses: { "200": response("The report.", { "application/json": { schema: report } }) },
        problems: ["forbidden", "not_found", ...READ_PROBLEMS],
      }),
    },
  };
}
