// The analytics tables in ClickHouse (README "Analytics"; docs/decisions.md "Analytics"): their names
// and the statements that make them on start. Runs on Debian's 18.16 and on current ClickHouse alike:
// no DateTime64, no LowCardinality, no TTL; times are `DateTime('UTC')` whatever the server's zone.
import { sqlIdentifier } from "./clickhouse-sql.js";

/** The table of finished jobs, one row per terminal event (duplicates possible until merges). */
export const EVENTS_TABLE = "inference_events";
/**
 * The dashboard rollup per UTC hour × customer × model: a ReplacingMergeTree of plain counts, sums
 * and quantiles, each row recomputed from {@link EVENTS_TABLE} (clickhouse-rollup.ts), the newest
 * read's row winning by `version`.
 */
export const ROLLUP_TABLE = "inference_events_by_hour";
/**
 * The rollup of earlier releases (an AggregatingMergeTree) and the materialized view that fed it
 * from each insert: the view is dropped on start, so it no longer feeds; the table is left as it was.
 */
export const OLD_HOURLY_TABLE = "inference_events_hourly";
export const OLD_HOURLY_VIEW = "inference_events_hourly_mv";

/** A statement of the schema, and the error codes that mean another process did it first. */
export interface SchemaStatement {
  readonly query: string;
  /** 57 table exists, 82 database exists, 60 unknown table (a concurrent DROP … IF EXISTS). */
  readonly raceCodes: readonly string[];
}

/** The statements that make the schema, in order, each idempotent. */
export function schemaStatements(database: string): SchemaStatement[] {
  const db = sqlIdentifier(database);
  const created = ["57", "82"];
  return [
    { query: `CREATE DATABASE IF NOT EXISTS ${db}`, raceCodes: created },
    {
      query: `CREATE TABLE IF NOT EXISTS ${db}.${EVENTS_TABLE} (
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
      raceCodes: created,
    },
    { query: `DROP TABLE IF EXISTS ${db}.${OLD_HOURLY_VIEW}`, raceCodes: ["60"] },
    {
      query: `CREATE TABLE IF NOT EXISTS ${db}.${ROLLUP_TABLE} (
      hour DateTime('UTC'),
      customer_id String,
      model String,
      version UInt64,
      jobs UInt64,
      completed UInt64,
      failed UInt64,
      cancelled UInt64,
      gpu_ms UInt64,
      price_micro_usd UInt64,
      queue_wait_p50_ms UInt64,
      queue_wait_p95_ms UInt64,
      run_p50_ms UInt64,
      run_p95_ms UInt64
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(hour)
    ORDER BY (hour, customer_id, model)`,
      raceCodes: created,
    },
  ];
}
