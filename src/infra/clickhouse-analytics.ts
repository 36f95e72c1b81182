// The analytics store in ClickHouse (README "Analytics"; docs/decisions.md "Analytics"): the batched
// insert of `inference_events` rows, the rollup's refreshes, and every query read from the tables —
// the reconciliation's (hourly counts and GPU time per customer × model, the jobs of a window) and the
// dashboard's rollup. With clickhouse-schema.ts (the tables) and clickhouse-rollup.ts (the rollup's
// SQL), the one place that knows the tables; everything runs on the Debian server (18.16) and on
// current ClickHouse alike: no query parameters (values are quoted by clickhouse-sql.ts).
//
// Deduplication: rows are keyed by `event_id`. The table is a ReplacingMergeTree whose sorting key
// ends with it (duplicates collapse when parts merge, some time later), every query of the base table
// first groups by `event_id` (so it never counts a duplicate, merged or not), and an insert first
// leaves out the events already stored (so a batch retried after an insert whose answer was lost adds
// no second copy). The rollup is recomputed from the deduplicated rows, never added up as rows arrive,
// so neither a duplicate nor an insert cut short can make it drift.
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from "@clickhouse/client";
import type { AnalyticsSink, InferenceEvent } from "../core/analytics-event.js";
import {
  figuresOfRowsQuery,
  hoursWithRowsQuery,
  parseFigures,
  refreshHourStatement,
  refreshKeysStatements,
  rollupReadQuery,
  type HourlyRollup,
  type HourlyUsage,
} from "./clickhouse-rollup.js";
import { EVENTS_TABLE, schemaStatements } from "./clickhouse-schema.js";
import { sqlIdentifier, sqlInteger, sqlString, sqlStringList } from "./clickhouse-sql.js";

export type { HourlyRollup, HourlyUsage } from "./clickhouse-rollup.js";

const HOUR_MS = 3_600_000;
/** Event ids per existence lookup: keeps each query far below max_query_size (256 KiB). */
const LOOKUP_CHUNK = 1_000;

/** A window of completion times, `[fromMs, toMs)` in ms since the epoch; optionally one customer's. */
export interface AnalyticsWindow {
  readonly fromMs: number;
  readonly toMs: number;
  readonly customerId?: string;
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
  /**
   * Creates the database and tables unless they exist, and drops the materialized view of earlier
   * releases (so it stops feeding their rollup table); a second call changes nothing.
   */
  ensureSchema(): Promise<void>;
  /** Inserts rows as they are, stored or not, and refreshes nothing (tests make duplicates with it). */
  insertUnchecked(rows: readonly InferenceEvent[]): Promise<void>;
  /** Jobs, GPU ms and money per customer × model × UTC hour of `w`, from the rows, deduplicated. */
  hourlyUsage(w: AnalyticsWindow): Promise<HourlyUsage[]>;
  /**
   * The dashboard's rollup of `w`'s hours (whole hours: `w` is widened to them): each customer ×
   * model × hour's newest refresh.
   */
  hourlyRollup(w: AnalyticsWindow): Promise<HourlyRollup[]>;
  /** The rollup's figures of `w`'s hours computed from the rows at read time (what it must equal). */
  hourlyRollupOfRows(w: AnalyticsWindow): Promise<HourlyRollup[]>;
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
  /**
   * Longest wait for one rollup statement (ms); default 5 min, at least `requestTimeoutMs`. A refresh
   * reads a whole hour of its keys' rows, which takes seconds at high volume: with the common
   * timeout, a busy hour's refresh could never finish, and its batches would be retried for ever.
   */
  readonly rollupTimeoutMs?: number;
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
  const clientWith = (timeoutMs: number): ClickHouseClient =>
    createClient({
      url: opts.url,
      ...(opts.username === undefined ? {} : { username: opts.username }),
      ...(opts.password === undefined ? {} : { password: opts.password }),
      request_timeout: timeoutMs,
      application: "render-gateway",
      // failures are the caller's to report (retried jobs, one warning), not the client's console lines
      log: { level: ClickHouseLogLevel.OFF },
    });
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const client = clientWith(timeoutMs);
  /** The rollup's statements: the same server, a longer timeout. */
  const rollupClient = clientWith(Math.max(timeoutMs, opts.rollupTimeoutMs ?? 300_000));
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
      for (const { query, raceCodes } of schemaStatements(database)) {
        try {
          await client.command({ query });
        } catch (err) {
          // another process did it between our IF (NOT) EXISTS and the statement
          if (!raceCodes.includes((err as { code?: string }).code ?? "")) throw err;
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
      return (await rows<Record<string, unknown>>(rollupReadQuery(database, w))).map(parseFigures);
    },
    async hourlyRollupOfRows(w) {
      return (await rows<Record<string, unknown>>(figuresOfRowsQuery(database, w))).map(parseFigures);
    },
    async refreshRollup(keys) {
      if (keys.length === 0) return;
      for (const query of refreshKeysStatements(database, keys)) await rollupClient.command({ query });
    },
    async refreshHours(span, o) {
      const listed = await rollupClient.query({
        query: hoursWithRowsQuery(database, span, o?.onlyMissing === true),
        format: "JSONEachRow",
      });
      const hours = await listed.json<{ h: unknown }>();
      let done = 0;
      for (const { h } of hours) {
        if (o?.signal?.aborted === true) break;
        await rollupClient.command({ query: refreshHourStatement(database, num(h) * 1000) });
        done++;
      }
      return done;
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
      closed ??= Promise.all([client.close(), rollupClient.close()]).then(() => undefined);
      return closed;
    },
  };
}
