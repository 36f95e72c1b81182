// One finished job as the analytics store keeps it (a row of ClickHouse `inference_events`; README
// "Analytics"), computed by the relay from the job's terminal outbox event alone — no prompt, no
// request. GPU time and money are the billing ledger's own numbers (ledgerEntryOf), so the
// reconciliation of ledger and analytics compares like with like.
import { ledgerEntryOf } from "./billing.js";
import { decodeJob } from "./job.js";
import { eventId, type OutboxEvent } from "./outbox.js";
import type { Tiers } from "./tiers.js";

/** A row of `inference_events`: the columns the app writes, named and typed as the table has them. */
export interface InferenceEvent {
  /** `<jobId>.<seq>` (core/outbox.ts eventId): the key rows are deduplicated by. */
  readonly event_id: string;
  readonly job_id: string;
  readonly customer_id: string;
  readonly tier: string;
  readonly priority: string;
  readonly modality: string;
  /** `family/model`, as the ledger writes it. */
  readonly model: string;
  readonly task: string;
  /** complete, error or cancelled. */
  readonly status: string;
  /** The job's error code (`ttl_expired`, `backend_error`, …); empty for a completed job. */
  readonly error_code: string;
  /** The backend of the job's last attempt; empty when none ran. */
  readonly backend: string;
  readonly attempts: number;
  /** GPU ms billed (the ledger's `gpu_ms`). */
  readonly gpu_ms: number;
  /** What the job cost (the ledger's `cost_micro_usd`). */
  readonly price_micro_usd: number;
  /** The tier's price for the model when the event was relayed (the ledger's). */
  readonly price_micro_usd_per_gpu_s: number;
  /** Admission to first start (to the end for a job that never started), ms. */
  readonly queue_wait_ms: number;
  /** First start to the end (retries included), ms; 0 for a job that never started. */
  readonly run_ms: number;
  /** Admission, unix seconds (ClickHouse DateTime, UTC). */
  readonly created_at: number;
  /** First start, unix seconds; null when the job never started. */
  readonly started_at: number | null;
  /** The end, unix seconds: the hour a row counts in. */
  readonly completed_at: number;
  /** The end in ms (ClickHouse 18.16 has no DateTime64): windows cut at the ledger's precision. */
  readonly completed_ms: number;
}

/** One row of the dashboard rollup: a customer × model × UTC hour. */
export interface RollupKey {
  /** The hour's start, ms since the epoch. */
  readonly hour_ms: number;
  readonly customer_id: string;
  readonly model: string;
}

/** A span of completion times, `[fromMs, toMs)` in ms since the epoch. */
export interface TimeSpan {
  readonly fromMs: number;
  readonly toMs: number;
}

/** Where the analytics worker writes rows (infra/clickhouse-analytics.ts implements it). */
export interface AnalyticsSink {
  /**
   * Stores the rows whose event is not stored yet and resolves once they are durable; returns how
   * many were new. Idempotent per `event_id`.
   * @throws Error when the store cannot be reached or refuses the rows (the caller retries).
   */
  insert(rows: readonly InferenceEvent[]): Promise<number>;
  /**
   * Recomputes the rollup rows of `keys` from the stored rows (each event once), so that they count
   * every row stored before the call. Idempotent; calls may overlap (the newest read wins).
   * @throws Error when the store cannot be reached (the caller retries).
   */
  refreshRollup(keys: readonly RollupKey[]): Promise<void>;
  /**
   * Recomputes the rollup of every hour of `span` that holds stored rows, newest first (with
   * `onlyMissing`, only those of them the rollup has no row for); resolves with the number of hours
   * recomputed. An aborted `signal` ends it after the hour in progress.
   * @throws Error when the store cannot be reached.
   */
  refreshHours(
    span: TimeSpan,
    opts?: { readonly onlyMissing?: boolean; readonly signal?: AbortSignal },
  ): Promise<number>;
}

const HOUR_MS = 3_600_000;

/** The distinct rollup rows `rows` count in: what a batch's insert asks to be recomputed. */
export function rollupKeysOf(rows: readonly InferenceEvent[]): RollupKey[] {
  const keys = new Map<string, RollupKey>();
  for (const r of rows) {
    // the hour of `completed_at`, as the store groups them
    const hour_ms = Math.floor((r.completed_at * 1000) / HOUR_MS) * HOUR_MS;
    // JSON of the three: no separator a customer id or model could contain can make two keys one
    keys.set(JSON.stringify([hour_ms, r.customer_id, r.model]), {
      hour_ms,
      customer_id: r.customer_id,
      model: r.model,
    });
  }
  return [...keys.values()];
}

/** The hours a sweep recomputes at `nowMs`: the current UTC hour and the `hours - 1` before it. */
export function sweepSpan(nowMs: number, hours: number): TimeSpan {
  const current = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
  return { fromMs: current - (Math.max(1, hours) - 1) * HOUR_MS, toMs: current + HOUR_MS };
}

const seconds = (ms: number): number => Math.floor(ms / 1000);
const nonNegative = (ms: number): number => (Number.isFinite(ms) && ms > 0 ? Math.round(ms) : 0);

/** The row of a terminal event; undefined for any other event. */
export function inferenceEventOf(e: OutboxEvent, tiers: Tiers): InferenceEvent | undefined {
  const entry = ledgerEntryOf(e, tiers);
  if (entry === undefined) return undefined;
  const job = decodeJob(e.record);
  const end = entry.completed_at;
  const created = job.createdAt > 0 ? job.createdAt : end;
  const started = job.startedAt;
  return {
    event_id: eventId(e),
    job_id: entry.job_id,
    customer_id: entry.customer_id,
    tier: entry.tier,
    priority: job.priority,
    modality: entry.modality,
    model: entry.model,
    task: entry.task,
    status: entry.status,
    error_code: job.status === "complete" ? "" : (job.error?.code ?? ""),
    backend: job.backend ?? "",
    attempts: job.attempts,
    gpu_ms: entry.gpu_ms,
    price_micro_usd: entry.cost_micro_usd,
    price_micro_usd_per_gpu_s: entry.price_micro_usd_per_gpu_s,
    queue_wait_ms: nonNegative((started ?? end) - created),
    run_ms: started === undefined ? 0 : nonNegative(end - started),
    created_at: seconds(created),
    started_at: started === undefined ? null : seconds(started),
    completed_at: seconds(end),
    completed_ms: end,
  };
}
