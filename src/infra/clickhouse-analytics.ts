// The analytics store in ClickHouse (README "Analytics"; docs/decisions.md "Analytics"): the schema
// the app creates on start, the batched insert of `inference_events` rows, and every query read from
// it — the reconciliation's (hourly counts and GPU time per customer × model, the jobs of a window)
// and the dashboard's rollup. The one module that knows the tables; schema and queries run on the
// Debian server (18.16) and on current ClickHouse alike: no query parameters (values are quoted by
// clickhouse-sql.ts), no DateTime64, no LowCardinality, no TTL.
//
// Deduplication: rows are keyed by `event_id`. The table is a ReplacingMergeTree whose sorting key
// ends with it (duplicates collapse when parts merge, some time later), every query of the base table
// first groups by `event_id` (so it never counts a duplicate, merged or not), and an insert first
// leaves out the events already stored (so a batch retried after an insert whose answer was lost adds
// nothing, and the rollup's sums, which a materialized view adds up as rows arrive, stay exact).
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from "@clickhouse/client";
import type { AnalyticsSink, InferenceEvent } from "../core/analytics-event.js";
import { sqlIdentifier, sqlInteger, sqlString, sqlStringList } from "./clickhouse-sql.js";

/** The table of finished jobs, one row per terminal event. */
export const EVENTS_TABLE = "inference_events";
/** The dashboard rollup per customer × model × UTC hour (an AggregatingMergeTree). */
export const HOURLY_TABLE = "inference_events_hourly";
/** The materialized view that feeds {@link HOURLY_TABLE} from each insert into {@link EVENTS_TABLE}. */
export const HOURLY_VIEW = "inference_events_hourly_mv";

const HOUR_MS = 3_600_000;
/** Event ids per existence lookup: keeps each query far below max_query_size (256 KiB). */
const LOOKUP_CHUNK = 1_000;

/**
 * The statements that create the schema, in order, each idempotent (`IF NOT EXISTS`). Times are
 * `DateTime('UTC')` whatever the server's time zone, so hours are UTC hours everywhere.
 */
export function schemaStatements(database: string): string[] {
  const db = sqlIdentifier(database);
  return [
    `CREATE DATABASE IF NOT EXISTS ${db}`,
    `CREATE TABLE IF NOT EXISTS ${db}.${EVENTS_TABLE} (
      event_id String,
      job_id String,
      customer_id String,
      tier String,
      priority String,
      modality String,
      model String,
      task String,
      status String,
      error_code String,
      backend String,
      attempts UInt32,
      gpu_ms UInt64,
      price_micro_usd UInt64,
      price_micro_usd_per_gpu_s UInt64,
      queue_wait_ms UInt64,
      run_ms UInt64,
      created_at DateTime('UTC'),
      started_at Nullable(DateTime('UTC')),
      completed_at DateTime('UTC'),
      completed_ms UInt64,
      inserted_at DateTime('UTC')
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(completed_at)
    ORDER BY (toStartOfHour(completed_at), customer_id, model, event_id)`,
    `CREATE TABLE IF NOT EXISTS ${db}.${HOURLY_TABLE} (
      hour DateTime('UTC'),
      customer_id String,
      model String,
      jobs AggregateFunction(uniqExact, String),
      completed AggregateFunction(uniqExactIf, String, UInt8),
      failed AggregateFunction(uniqExactIf, String, UInt8),
      cancelled AggregateFunction(uniqExactIf, String, UInt8),
      gpu_ms AggregateFunction(sum, UInt64),
      price_micro_usd AggregateFunction(sum, UInt64),
      queue_wait_ms AggregateFunction(quantiles(0.5, 0.95), UInt64),
      run_ms AggregateFunction(quantiles(0.5, 0.95), UInt64)
    ) ENGINE = AggregatingMergeTree
    PARTITION BY toYYYYMM(hour)
    ORDER BY (customer_id, model, hour)`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${HOURLY_VIEW} TO ${db}.${HOURLY_TABLE} AS
    SELECT
      toStartOfHour(completed_at) AS hour,
      customer_id,
      model,
      uniqExactState(event_id) AS jobs,
      uniqExactIfState(event_id, status = 'complete') AS completed,
      uniqExactIfState(event_id, status = 'error') AS failed,
      uniqExactIfState(event_id, status = 'cancelled') AS cancelled,
      sumState(gpu_ms) AS gpu_ms,
      sumState(price_micro_usd) AS price_micro_usd,
      quantilesState(0.5, 0.95)(queue_wait_ms) AS queue_wait_ms,
      quantilesState(0.5, 0.95)(run_ms) AS run_ms
    FROM ${db}.${EVENTS_TABLE}
    GROUP BY hour, customer_id, model`,
  ];
}

/** A window of completion times, `[fromMs, toMs)` in ms since the epoch; optionally one customer's. */
export interface AnalyticsWindow {
  readonly fromMs: number;
  readonly toMs: number;
  readonly customerId?: string;
}

/** Finished jobs of one customer, model and UTC hour, each counted once. */
export interface HourlyUsage {
  readonly customer_id: string;
  readonly model: string;
  /** The hour's start, ms since the epoch. */
  readonly hour_ms: number;
  readonly jobs: number;
  readonly gpu_ms: number;
  readonly price_micro_usd: number;
}

/** {@link HourlyUsage} plus what a dashboard shows: outcomes and wait / run quantiles (ms). */
export interface HourlyRollup extends HourlyUsage {
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
  readonly queue_wait_p50_ms: number;
  readonly queue_wait_p95_ms: number;
  readonly run_p50_ms: number;
  readonly run_p95_ms: number;
}

/** One finished job as stored (deduplicated): what a reconciliation names a job by. */
export interface AnalyticsJob {
  readonly job_id: string;
  readonly event_id: string;
  readonly customer_id: string;
  readonly model: string;
  readonly status: string;
  readonly gpu_ms: number;
  readonly price_micro_usd: number;
  readonly completed_ms: number;
}

/** The analytics store; the compliance job reads through the queries, the pipeline writes. */
export interface AnalyticsStore extends AnalyticsSink {
  readonly database: string;
  /** Whether the server answers (never throws). */
  ping(): Promise<boolean>;
  /** Creates the database, tables and view unless they exist; a second call changes nothing. */
  ensureSchema(): Promise<void>;
  /** Inserts rows as they are, stored or not (tests make duplicates with it). */
  insertUnchecked(rows: readonly InferenceEvent[]): Promise<void>;
  /** Jobs, GPU ms and money per customer × model × UTC hour of `w`, from the rows, deduplicated. */
  hourlyUsage(w: AnalyticsWindow): Promise<HourlyUsage[]>;
  /** The dashboard's rollup of `w`'s hours (whole hours: `w` is widened to them), from the view. */
  hourlyRollup(w: AnalyticsWindow): Promise<HourlyRollup[]>;
  /** Every job finished in `w`, once each, ordered by completion. */
  jobsInWindow(w: AnalyticsWindow): Promise<AnalyticsJob[]>;
  /** The ids of the jobs finished in `w`. */
  jobIdsInWindow(w: AnalyticsWindow): Promise<Set<string>>;
  /** Closes the client's sockets. Idempotent. */
  close(): Promise<void>;
}

export interface AnalyticsStoreOptions {
  /** `http(s)://host:port` of the server's HTTP interface. */
  readonly url: string;
  readonly database: string;
  readonly username?: string;
  readonly password?: string;
  /** Longest wait for one request (ms); default 10 s. */
  readonly requestTimeoutMs?: number;
  /** Clock of `inserted_at` (ms); default Date.now. */
  readonly now?: () => number;
}

/** The WHERE conditions of a window: the ms bound exact, the DateTime bound for the primary key. */
function windowWhere(w: AnalyticsWindow): string {
  const from = sqlInteger(w.fromMs);
  const to = sqlInteger(w.toMs);
  const parts = [
    `completed_at >= toDateTime(${sqlInteger(Math.floor(w.fromMs / 1000))}, 'UTC')`,
    `completed_at <= toDateTime(${sqlInteger(Math.floor(w.toMs / 1000))}, 'UTC')`,
    `completed_ms >= ${from}`,
    `completed_ms < ${to}`,
  ];
  if (w.customerId !== undefined) parts.push(`customer_id = ${sqlString(w.customerId)}`);
  return parts.join(" AND ");
}

/** A count or sum as ClickHouse's JSON gives it (64-bit integers as strings by default). */
const num = (v: unknown): number => (typeof v === "number" ? v : Number(v));

export function createAnalyticsStore(opts: AnalyticsStoreOptions): AnalyticsStore {
  const database = opts.database;
  const db = sqlIdentifier(database);
  const events = `${db}.${EVENTS_TABLE}`;
  const now = opts.now ?? Date.now;
  const client: ClickHouseClient = createClient({
    url: opts.url,
    ...(opts.username === undefined ? {} : { username: opts.username }),
    ...(opts.password === undefined ? {} : { password: opts.password }),
    request_timeout: opts.requestTimeoutMs ?? 10_000,
    application: "render-gateway",
    // failures are the caller's to report (retried jobs, one warning), not the client's console lines
    log: { level: ClickHouseLogLevel.OFF },
  });
  let closed: Promise<void> | undefined;

  async function rows<T>(query: string): Promise<T[]> {
    const rs = await client.query({ query, format: "JSONEachRow" });
    return rs.json<T>();
  }

  async function stored(batch: readonly InferenceEvent[]): Promise<Set<string>> {
    const found = new Set<string>();
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (const r of batch) {
      min = Math.min(min, r.completed_at);
      max = Math.max(max, r.completed_at);
    }
    for (let i = 0; i < batch.length; i += LOOKUP_CHUNK) {
      const ids = batch.slice(i, i + LOOKUP_CHUNK).map((r) => r.event_id);
      const hits = await rows<{ event_id: string }>(
        `SELECT DISTINCT event_id FROM ${events}
         WHERE completed_at >= toDateTime(${sqlInteger(min)}, 'UTC')
           AND completed_at <= toDateTime(${sqlInteger(max)}, 'UTC')
           AND event_id IN ${sqlStringList(ids)}`,
      );
      for (const h of hits) found.add(h.event_id);
    }
    return found;
  }

  async function insertUnchecked(batch: readonly InferenceEvent[]): Promise<void> {
    if (batch.length === 0) return;
    const insertedAt = Math.floor(now() / 1000);
    await client.insert({
      table: events,
      values: batch.map((r) => ({ ...r, inserted_at: insertedAt })),
      format: "JSONEachRow",
    });
  }

  return {
    database,
    async ping() {
      try {
        return (await client.ping()).success;
      } catch {
        return false;
      }
    },
    async ensureSchema() {
      for (const query of schemaStatements(database)) {
        try {
          await client.command({ query });
        } catch (err) {
          // another process created it between our IF NOT EXISTS and the create (57, 82)
          const code = (err as { code?: string }).code;
          if (code !== "57" && code !== "82") throw err;
        }
      }
    },
    async insert(batch) {
      if (batch.length === 0) return 0;
      // one row per event of the batch itself, then only those not stored yet
      const unique = [...new Map(batch.map((r) => [r.event_id, r])).values()];
      const known = await stored(unique);
      const fresh = unique.filter((r) => !known.has(r.event_id));
      await insertUnchecked(fresh);
      return fresh.length;
    },
    insertUnchecked,
    async hourlyUsage(w) {
      const out = await rows<Record<string, unknown>>(
        `SELECT cust AS customer_id, mdl AS model, intDiv(ms, ${HOUR_MS}) * ${HOUR_MS} AS hour_ms,
                count() AS jobs, sum(gpu) AS gpu_ms, sum(price) AS price_micro_usd
         FROM (
           SELECT event_id, any(customer_id) AS cust, any(model) AS mdl, any(completed_ms) AS ms,
                  any(gpu_ms) AS gpu, any(price_micro_usd) AS price
           FROM ${events} WHERE ${windowWhere(w)} GROUP BY event_id
         )
         GROUP BY customer_id, model, hour_ms
         ORDER BY hour_ms, customer_id, model`,
      );
      return out.map((r) => ({
        customer_id: String(r.customer_id),
        model: String(r.model),
        hour_ms: num(r.hour_ms),
        jobs: num(r.jobs),
        gpu_ms: num(r.gpu_ms),
        price_micro_usd: num(r.price_micro_usd),
      }));
    },
    async hourlyRollup(w) {
      const fromH = Math.floor(w.fromMs / HOUR_MS) * 3_600;
      const toH = Math.ceil(w.toMs / HOUR_MS) * 3_600;
      const customer = w.customerId === undefined ? "" : `AND customer_id = ${sqlString(w.customerId)}`;
      const out = await rows<Record<string, unknown>>(
        `SELECT customer_id, model, toUnixTimestamp(hour) * 1000 AS hour_ms,
                uniqExactMerge(jobs) AS jobs, uniqExactIfMerge(completed) AS completed,
                uniqExactIfMerge(failed) AS failed, uniqExactIfMerge(cancelled) AS cancelled,
                sumMerge(gpu_ms) AS gpu_ms, sumMerge(price_micro_usd) AS price_micro_usd,
                quantilesMerge(0.5, 0.95)(queue_wait_ms) AS wait_q, quantilesMerge(0.5, 0.95)(run_ms) AS run_q
         FROM ${db}.${HOURLY_TABLE}
         WHERE hour >= toDateTime(${sqlInteger(fromH)}, 'UTC') AND hour < toDateTime(${sqlInteger(toH)}, 'UTC')
           ${customer}
         GROUP BY customer_id, model, hour
         ORDER BY hour_ms, customer_id, model`,
      );
      return out.map((r) => {
        const wait = (r.wait_q as unknown[] | undefined) ?? [];
        const run = (r.run_q as unknown[] | undefined) ?? [];
        return {
          customer_id: String(r.customer_id),
          model: String(r.model),
          hour_ms: num(r.hour_ms),
          jobs: num(r.jobs),
          completed: num(r.completed),
          failed: num(r.failed),
          cancelled: num(r.cancelled),
          gpu_ms: num(r.gpu_ms),
          price_micro_usd: num(r.price_micro_usd),
          queue_wait_p50_ms: Math.round(num(wait[0] ?? 0)),
          queue_wait_p95_ms: Math.round(num(wait[1] ?? 0)),
          run_p50_ms: Math.round(num(run[0] ?? 0)),
          run_p95_ms: Math.round(num(run[1] ?? 0)),
        };
      });
    },
    async jobsInWindow(w) {
      const out = await rows<Record<string, unknown>>(
        `SELECT event_id, any(job_id) AS job, any(customer_id) AS cust, any(model) AS mdl,
                any(status) AS st, any(gpu_ms) AS gpu, any(price_micro_usd) AS price, any(completed_ms) AS ms
         FROM ${events} WHERE ${windowWhere(w)}
         GROUP BY event_id ORDER BY ms, event_id`,
      );
      return out.map((r) => ({
        job_id: String(r.job),
        event_id: String(r.event_id),
        customer_id: String(r.cust),
        model: String(r.mdl),
        status: String(r.st),
        gpu_ms: num(r.gpu),
        price_micro_usd: num(r.price),
        completed_ms: num(r.ms),
      }));
    },
    async jobIdsInWindow(w) {
      const out = await rows<{ job_id: string }>(
        `SELECT DISTINCT job_id FROM ${events} WHERE ${windowWhere(w)}`,
      );
      return new Set(out.map((r) => r.job_id));
    },
    close() {
      closed ??= client.close();
      return closed;
    },
  };
}
