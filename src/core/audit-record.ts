// The audit record of a finished job (API.md §3 "Receipts"): ids, model, status, timestamps, GPU time
// and price (the billing ledger's own numbers), and digests of the request and outputs — never a
// prompt or an image. Its RFC 8785 bytes are one leaf of the Merkle audit log.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { z } from "zod";
import { ledgerEntryOf } from "./billing.js";
import { canonicalBytes } from "./canonical-json.js";
import { decodeJob } from "./job.js";
import type { OutboxEvent } from "./outbox.js";
import type { Tiers } from "./tiers.js";
import { rfc3339 } from "./time.js";

/** One leaf of the audit log, exactly the members of API.md §3's `record`. */
export interface AuditRecord {
  readonly job_id: string;
  readonly customer_id: string;
  readonly modality: string;
  readonly family: string;
  readonly model: string;
  readonly task: string;
  /** The backend of the last attempt; null when the job never reached one. */
  readonly backend: string | null;
  /** complete, error or cancelled. */
  readonly status: string;
  readonly attempts: number;
  /** RFC 3339 UTC with milliseconds. */
  readonly created_at: string;
  /** Null when the job never started. */
  readonly started_at: string | null;
  readonly completed_at: string;
  /** GPU milliseconds billed: the ledger entry's `gpu_ms`. */
  readonly gpu_ms: number;
  /** What the job was charged: the ledger entry's `cost_micro_usd`. */
  readonly price_micro_usd: number;
  /** `sha256-<hex>` of the RFC 8785 bytes of the job's stored request. */
  readonly input_digest: string;
  /** The outputs' CAS digests (`sha256-<hex>`); [] when none. */
  readonly output_digests: readonly string[];
}

const DIGEST_RE = /^sha256-[0-9a-f]{64}$/;
const RFC3339_MS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Bounds on a record's strings and arrays (ids, names); far above what the job model stores. */
const MAX_TEXT = 256;
const MAX_OUTPUTS = 64;

const text = z.string().max(MAX_TEXT);
const time = z.string().regex(RFC3339_MS_RE);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const digest = z.string().regex(DIGEST_RE);

/** The schema a leaf must meet: every member, nothing else. */
const auditRecordSchema = z.strictObject({
  job_id: text.min(1),
  customer_id: text,
  modality: text,
  family: text,
  model: text,
  task: text,
  backend: text.nullable(),
  status: z.enum(["complete", "error", "cancelled"]),
  attempts: count,
  created_at: time,
  started_at: time.nullable(),
  completed_at: time,
  gpu_ms: count,
  price_micro_usd: count,
  input_digest: digest,
  output_digests: z.array(digest).max(MAX_OUTPUTS),
});

/** `sha256-<hex>` of bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256-${bytesToHex(sha256(bytes))}`;
}

/**
 * The digest of a stored request (the job record's `req`, JSON text): of its RFC 8785 bytes. A
 * request that is no JSON, or holds what canonical JSON cannot carry, is digested as the stored text
 * itself (it cannot be, as admission validates it; this keeps the relay from stalling on one).
 */
export function inputDigestOf(req: string | undefined): string {
  const stored = req === undefined || req === "" ? "{}" : req;
  try {
    return sha256Digest(canonicalBytes(JSON.parse(stored) as unknown));
  } catch {
    return sha256Digest(new TextEncoder().encode(stored));
  }
}

function outputDigestsOf(data: Readonly<Record<string, unknown>>): string[] {
  const outputs = Array.isArray(data.outputs)
    ? (data.outputs as unknown[])
    : typeof data.output === "string"
      ? [data.output]
      : [];
  return outputs.slice(0, MAX_OUTPUTS).filter((d): d is string => typeof d === "string" && DIGEST_RE.test(d));
}

/**
 * The audit record of a terminal event; undefined for any other event. GPU time and price are the
 * billing ledger's (core/billing.ts), so reconciling the two agrees by construction.
 */
export function auditRecordOf(event: OutboxEvent, tiers: Tiers): AuditRecord | undefined {
  const entry = ledgerEntryOf(event, tiers);
  if (entry === undefined) return undefined;
  const job = decodeJob(event.record);
  return {
    job_id: job.id,
    customer_id: job.customerId,
    modality: job.modality,
    family: job.family,
    model: job.model,
    task: job.task,
    backend: job.backend ?? null,
    status: job.status,
    attempts: job.attempts,
    created_at: rfc3339(job.createdAt),
    started_at: job.startedAt === undefined ? null : rfc3339(job.startedAt),
    completed_at: rfc3339(entry.completed_at),
    gpu_ms: entry.gpu_ms,
    price_micro_usd: entry.cost_micro_usd,
    input_digest: inputDigestOf(event.record.req),
    output_digests: outputDigestsOf(event.data),
  };
}

/** The leaf bytes of a record: its RFC 8785 canonical JSON. */
export function auditRecordBytes(record: AuditRecord): Uint8Array {
  return canonicalBytes(record);
}

/**
 * The record a leaf's value is, or a problem (a sentence) when it is not one: wrong or missing
 * members, or strings and arrays beyond their bounds.
 */
export function parseAuditRecord(
  value: unknown,
): { ok: true; record: AuditRecord } | { ok: false; why: string } {
  const r = auditRecordSchema.safeParse(value);
  if (r.success) return { ok: true, record: r.data };
  const issue = r.error.issues[0];
  const where = issue?.path.map(String).join(".") ?? "";
  return { ok: false, why: `record${where === "" ? "" : `.${where}`}: ${issue?.message ?? "invalid"}` };
}
