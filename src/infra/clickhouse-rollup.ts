// The dashboard rollup's SQL (README "Analytics"; docs/decisions.md "Analytics", "The rollup"): the
// statement that recomputes rollup rows from the deduplicated base table, the query that lists the
// hours to recompute, and the read that takes each row's newest version. Pure text: the store
// (clickhouse-analytics.ts) runs them. Every value is a literal from clickhouse-sql.ts.
//
// Versions: a row's `version` is the number of distinct events its refresh read for that customer ×
// model × hour. Rows are only ever added to the base table (merges drop duplicates, never an event),
// and a read sees every part committed before it started, so the events a later read sees for a key
// include those an earlier read saw: a later read's count is never smaller, and an equal count means
// the same events, hence the same row. So the row with the highest version is the one of the newest
// read, whatever order concurrent refreshes finish in, with no clock involved. Deleting rows from the
// base table by hand breaks this (see README "Analytics").
import type { RollupKey, TimeSpan } from "../core/analytics-event.js";
import { EVENTS_TABLE, ROLLUP_TABLE } from "./clickhouse-schema.js";
import { sqlIdentifier, sqlInteger, sqlString, sqlStringList } from "./clickhouse-sql.js";

const HOUR_MS = 3_600_000;
/** Rollup keys per refresh statement: keeps each far below max_query_size (256 KiB). */
export const KEYS_PER_REFRESH = 100;

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

/** The rollup's value columns, in the order of {@link figuresSelect}'s and of the reads' tuples. */
const VALUE_COLUMNS = [
  "jobs",
  "completed",
  "failed",
  "cancelled",
  "gpu_ms",
  "price_micro_usd",
  "queue_wait_p50_ms",
  "queue_wait_p95_ms",
  "run_p50_ms",
  "run_p95_ms",
] as const;

const hourDate = (hourMs: number): string => `toDateTime(${sqlInteger(hourMs / 1000)}, 'UTC')`;

/** Rows completed in the UTC hour starting at `hourMs` (the DateTime bound, which the key serves). */
function inHour(hourMs: number): string {
  return `completed_at >= ${hourDate(hourMs)} AND completed_at < ${hourDate(hourMs + HOUR_MS)}`;
}

/**
 * The figures per hour × customer × model of the base table's rows matching `where`, each event
 * once (grouped by `event_id` first, so an unmerged duplicate never counts): `h`, `cust`, `mdl`,
 * `version` (the event count), then the value columns named as the rollup names them. Quantiles
 * are exact (`quantilesExact`: the value at ⌊level·n⌋ of the sorted values), so two reads of the
 * same events give the same row.
 */
function figuresSelect(events: string, where: string): string {
  return `SELECT h, cust, mdl, count() AS version, version AS jobs,
         countIf(st = 'complete') AS completed, countIf(st = 'error') AS failed,
         countIf(st = 'cancelled') AS cancelled, sum(gpu) AS gpu_ms, sum(price) AS price_micro_usd,
         arrayElement(quantilesExact(0.5, 0.95)(wait) AS wq, 1) AS queue_wait_p50_ms,
         arrayElement(wq, 2) AS queue_wait_p95_ms,
         arrayElement(quantilesExact(0.5, 0.95)(run) AS rq, 1) AS run_p50_ms,
         arrayElement(rq, 2) AS run_p95_ms
  FROM (
    SELECT event_id, any(toStartOfHour(completed_at)) AS h, any(customer_id) AS cust,
           any(model) AS mdl, any(status) AS st, any(gpu_ms) AS gpu, any(price_micro_usd) AS price,
           any(queue_wait_ms) AS wait, any(run_ms) AS run
    FROM ${events} WHERE ${where} GROUP BY event_id
  )
  GROUP BY h, cust, mdl`;
}

function refreshInto(database: string, where: string): string {
  const db = sqlIdentifier(database);
  return `INSERT INTO ${db}.${ROLLUP_TABLE} (hour, customer_id, model, version, ${VALUE_COLUMNS.join(", ")})
  ${figuresSelect(`${db}.${EVENTS_TABLE}`, where)}`;
}

/**
 * The statements that recompute the rollup rows of `keys` (at most {@link KEYS_PER_REFRESH} keys
 * each). A statement reads, per hour of its keys, the rows of the hour's customers and models (a
 * key it did not ask for may be recomputed too: harmless).
 */
export function refreshKeysStatements(database: string, keys: readonly RollupKey[]): string[] {
  const sorted = [...keys].sort((a, b) => a.hour_ms - b.hour_ms);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; i += KEYS_PER_REFRESH) {
    const byHour = new Map<number, { customers: Set<string>; models: Set<string> }>();
    for (const k of sorted.slice(i, i + KEYS_PER_REFRESH)) {
      const h = byHour.get(k.hour_ms) ?? { customers: new Set(), models: new Set() };
      h.customers.add(k.customer_id);
      h.models.add(k.model);
      byHour.set(k.hour_ms, h);
    }
    const where = [...byHour]
      .map(
        ([hourMs, h]) =>
          `(${inHour(hourMs)} AND customer_id IN ${sqlStringList([...h.customers])}` +
          ` AND model IN ${sqlStringList([...h.models])})`,
      )
      .join(" OR ");
    out.push(refreshInto(database, where));
  }
  return out;
}

/** The statement that recomputes every rollup row of the UTC hour starting at `hourMs`. */
export function refreshHourStatement(database: string, hourMs: number): string {
  return refreshInto(database, inHour(hourMs));
}

/** `span` widened to whole hours: [start of its first hour, end of its last). */
export function wholeHours(span: TimeSpan): TimeSpan {
  return {
    fromMs: Math.floor(span.fromMs / HOUR_MS) * HOUR_MS,
    toMs: Math.ceil(span.toMs / HOUR_MS) * HOUR_MS,
  };
}

/**
 * The hours (start, unix seconds as `h`) of `span` that hold rows in the base table, newest first;
 * with `onlyMissing`, only those the rollup has no row for.
 */
export function hoursWithRowsQuery(database: string, span: TimeSpan, onlyMissing: boolean): string {
  const db = sqlIdentifier(database);
  const { fromMs, toMs } = wholeHours(span);
  const range = (col: string) => `${col} >= ${hourDate(fromMs)} AND ${col} < ${hourDate(toMs)}`;
  const missing = onlyMissing
    ? `AND toStartOfHour(completed_at) NOT IN (SELECT DISTINCT hour FROM ${db}.${ROLLUP_TABLE} WHERE ${range("hour")})`
    : "";
  return `SELECT DISTINCT toUnixTimestamp(toStartOfHour(completed_at)) AS h
  FROM ${db}.${EVENTS_TABLE} WHERE ${range("completed_at")} ${missing}
  ORDER BY h DESC`;
}

/** The rollup of the hours `span` touches (optionally one customer's): each row's newest version. */
export function rollupReadQuery(database: string, span: TimeSpan & { customerId?: string }): string {
  const db = sqlIdentifier(database);
  const { fromMs, toMs } = wholeHours(span);
  const customer = span.customerId === undefined ? "" : `AND customer_id = ${sqlString(span.customerId)}`;
  return `SELECT customer_id, model, toUnixTimestamp(hour) * 1000 AS hour_ms,
         argMax(tuple(${VALUE_COLUMNS.join(", ")}), version) AS v
  FROM ${db}.${ROLLUP_TABLE}
  WHERE hour >= ${hourDate(fromMs)} AND hour < ${hourDate(toMs)} ${customer}
  GROUP BY customer_id, model, hour
  ORDER BY hour_ms, customer_id, model`;
}

/** The same figures read from the base table's rows at query time (what the rollup must equal). */
export function figuresOfRowsQuery(database: string, span: TimeSpan & { customerId?: string }): string {
  const db = sqlIdentifier(database);
  const { fromMs, toMs } = wholeHours(span);
  const hours = `completed_at >= ${hourDate(fromMs)} AND completed_at < ${hourDate(toMs)}`;
  const customer = span.customerId === undefined ? "" : ` AND customer_id = ${sqlString(span.customerId)}`;
  return `SELECT cust AS customer_id, mdl AS model, toUnixTimestamp(h) * 1000 AS hour_ms,
         tuple(${VALUE_COLUMNS.join(", ")}) AS v
  FROM (${figuresSelect(`${db}.${EVENTS_TABLE}`, hours + customer)})
  ORDER BY hour_ms, customer_id, model`;
}

/** A count or sum as ClickHouse's JSON gives it (64-bit integers as strings by default). */
const num = (v: unknown): number => (typeof v === "number" ? v : Number(v));

/** A row of {@link rollupReadQuery} or {@link figuresOfRowsQuery}. */
export function parseFigures(r: Record<string, unknown>): HourlyRollup {
  // a tuple is a JSON array, or an object in element order where the server names tuple elements
  // (`enable_named_columns_in_function_tuple` on current releases)
  const v = Array.isArray(r.v)
    ? (r.v as unknown[])
    : typeof r.v === "object" && r.v !== null
      ? Object.values(r.v)
      : [];
  const at = (i: number) => num(v[i] ?? 0);
  return {
    customer_id: String(r.customer_id),
    model: String(r.model),
    hour_ms: num(r.hour_ms),
    jobs: at(0),
    gpu_ms: at(4),
    price_micro_usd: at(5),
    completed: at(1),
    failed: at(2),
    cancelled: at(3),
    queue_wait_p50_ms: at(6),
    queue_wait_p95_ms: at(7),
    run_p50_ms: at(8),
    run_p95_ms: at(9),
  };
}
