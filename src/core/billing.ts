// What a finished job costs (API.md §3 "usage"; docs/decisions.md "Billing"): one ledger entry per
// job, from its terminal outbox event alone. GPU time is billed for a completed job (the backend's
// reported compute time, else the worker's measured call) and for a job cancelled while running (the
// measured time from its attempt's start to the cancel); failed, expired and queued-cancelled jobs
// cost nothing. Money is integer micro-USD.
import { decodeJob } from "./job.js";
import { isTerminalEvent, type OutboxEvent } from "./outbox.js";
import { pricePerGpuSecond, tierOf, type Tiers } from "./tiers.js";

/** One line of the billing ledger. */
export interface LedgerEntry {
  readonly job_id: string;
  readonly customer_id: string;
  readonly tier: string;
  readonly modality: string;
  /** `family/model`. */
  readonly model: string;
  readonly task: string;
  /** The job's terminal status: complete, error or cancelled. */
  readonly status: string;
  /** GPU milliseconds billed (0 when nothing is). */
  readonly gpu_ms: number;
  /** Where `gpu_ms` comes from. */
  readonly gpu_source: "reported" | "to_cancel" | "none";
  readonly price_micro_usd_per_gpu_s: number;
  readonly cost_micro_usd: number;
  /** When the job ended (ms since the epoch): the usage windows place the entry by it. */
  readonly completed_at: number;
}

/** `gpuMs` at `pricePerS` micro-USD per GPU-second, rounded half up to a whole micro-USD. */
export function costMicroUsd(gpuMs: number, pricePerS: number): number {
  return Math.floor((gpuMs * pricePerS + 500) / 1000);
}

/** GPU ms billed for one job at most (about 31 years; the scheduler's metering takes no more). */
const MAX_GPU_MS = 1e12;

/** A whole, non-negative number of milliseconds (at most {@link MAX_GPU_MS}), else 0. */
function wholeMs(v: unknown): number {
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) && n > 0 ? Math.min(Math.round(n), MAX_GPU_MS) : 0;
}

/**
 * The ledger entry of a terminal event; undefined for any other event. A tier the tiers table no
 * longer has prices the job at 0 (`price_micro_usd_per_gpu_s` 0, visible in the entry).
 */
export function ledgerEntryOf(e: OutboxEvent, tiers: Tiers): LedgerEntry | undefined {
  if (!isTerminalEvent(e.event)) return undefined;
  const job = decodeJob(e.record);
  const completedAt = job.completedAt ?? e.at;
  let gpuMs = 0;
  let source: LedgerEntry["gpu_source"] = "none";
  if (job.status === "complete") {
    gpuMs = wholeMs(job.gpuMs);
    source = "reported";
  } else if (job.status === "cancelled") {
    // cancelled while an attempt ran: its log's last attempt is still open (no outcome yet)
    const last = job.attemptLog.at(-1);
    if (last !== undefined && last.outcome === undefined && job.error?.code !== "ttl_expired") {
      gpuMs = wholeMs(completedAt - last.started_at);
      source = "to_cancel";
    }
  }
  const tierName = e.record.tier ?? "";
  const tier = tierOf(tiers, tierName);
  const price = tier === undefined ? 0 : pricePerGpuSecond(tier, job.family, job.model);
  return {
    job_id: job.id,
    customer_id: job.customerId,
    tier: tierName,
    modality: job.modality,
    model: `${job.family}/${job.model}`,
    task: job.task,
    status: job.status,
    gpu_ms: gpuMs,
    gpu_source: source,
    price_micro_usd_per_gpu_s: price,
    cost_micro_usd: costMicroUsd(gpuMs, price),
    completed_at: completedAt,
  };
}
