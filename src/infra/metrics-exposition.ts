// The fleet's `/metrics` text: every process's published snapshot (its series labelled with its
// `process`) and the fleet gauges read at scrape time, merged by prom-client's aggregator and printed
// in Prometheus's text format. Also the snapshot's wire form (JSON in Redis, queues/metrics-store.ts).
import { AggregatorRegistry, Registry } from "prom-client";

/** One sample in prom-client's JSON form (`Registry#getMetricsAsJSON`). */
export interface MetricValueJson {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  /** A histogram's `_bucket`, `_sum` or `_count` line. */
  readonly metricName?: string;
}

/** One metric family in prom-client's JSON form. */
export interface MetricJson {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator: string;
  readonly values: readonly MetricValueJson[];
}

/** What a process publishes: who it is, when, and its series. */
export interface ProcessSnapshot {
  /** The process's id (the `process` label of its series). */
  readonly process: string;
  /** Its roles, comma-separated (`api,worker,pipeline,sim`). */
  readonly roles: string;
  /** When it was taken (ms since the epoch). */
  readonly at: number;
  readonly metrics: readonly MetricJson[];
}

/** The content type of the text format (version 0.0.4). */
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** `metrics` with `labels` added to every sample. */
export function withLabels(
  metrics: readonly MetricJson[],
  labels: Readonly<Record<string, string>>,
): MetricJson[] {
  return metrics.map((m) => ({
    ...m,
    values: m.values.map((v) => ({ ...v, labels: { ...v.labels, ...labels } })),
  }));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;

function isMetricJson(v: unknown): v is MetricJson {
  return (
    isObject(v) &&
    typeof v.name === "string" &&
    /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(v.name) &&
    typeof v.help === "string" &&
    (v.type === "counter" || v.type === "gauge" || v.type === "histogram") &&
    Array.isArray(v.values) &&
    v.values.every((s) => isObject(s) && typeof s.value === "number" && isObject(s.labels))
  );
}

/**
 * A published snapshot read back; undefined when it is not one (another version's form, a torn
 * write): a bad snapshot is left out rather than breaking the whole answer.
 */
export function parseSnapshot(text: string): ProcessSnapshot | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v) || typeof v.process !== "string" || typeof v.roles !== "string") return undefined;
  if (typeof v.at !== "number" || !Array.isArray(v.metrics)) return undefined;
  const metrics = v.metrics.filter(isMetricJson).map((m) => ({ ...m, aggregator: "sum" }));
  return { process: v.process, roles: v.roles, at: v.at, metrics };
}

/** The text format of `parts` (lists of families), families of the same name merged. */
export async function exposition(parts: readonly (readonly MetricJson[])[]): Promise<string> {
  return AggregatorRegistry.aggregate(parts as object[]).metrics();
}
