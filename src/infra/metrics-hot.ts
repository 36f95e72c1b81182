// Series recorded on the API's hot path (every request) without prom-client's per-call label work:
// prom-client hashes the label object on every `inc`/`observe`, also through a child from `labels()`
// (about 1 µs a call here). A hot series is looked up by a key its caller builds once per call and
// holds plain numbers; it takes prom-client's JSON form (what `Registry#getMetricsAsJSON` gives) only
// when read, so it is merged and printed like every other metric (metrics-exposition.ts).
import type { MetricJson, MetricValueJson } from "./metrics-exposition.js";

type Labels = Readonly<Record<string, string>>;

interface Described {
  readonly name: string;
  readonly help: string;
}

export interface CounterSeries {
  value: number;
}

export interface HotCounter {
  /** The series of `key`, made with `labels()` the first time (the key must identify the labels). */
  series(key: string, labels: () => Labels): CounterSeries;
  json(): MetricJson;
}

export function createHotCounter(d: Described): HotCounter {
  const series = new Map<string, CounterSeries & { readonly labels: Labels }>();
  return {
    series(key, labels) {
      let s = series.get(key);
      if (s === undefined) {
        s = { value: 0, labels: labels() };
        series.set(key, s);
      }
      return s;
    },
    json() {
      const values = [...series.values()].map((s) => ({ labels: { ...s.labels }, value: s.value }));
      return { name: d.name, help: d.help, type: "counter", aggregator: "sum", values };
    },
  };
}

export interface HistogramSeries {
  observe(value: number): void;
}

export interface HotHistogram {
  series(key: string, labels: () => Labels): HistogramSeries;
  json(): MetricJson;
}

/** A histogram with upper bounds `buckets` (ascending; `+Inf` is implied), as prom-client's. */
export function createHotHistogram(d: Described & { readonly buckets: readonly number[] }): HotHistogram {
  const bounds = d.buckets;
  const series = new Map<
    string,
    HistogramSeries & { readonly labels: Labels; readonly counts: Float64Array; sum: number; count: number }
  >();
  return {
    series(key, labels) {
      let s = series.get(key);
      if (s === undefined) {
        const made = {
          labels: labels(),
          counts: new Float64Array(bounds.length),
          sum: 0,
          count: 0,
          observe(value: number) {
            // the first bucket whose bound holds the value (prom-client's `le`: value <= bound)
            let i = 0;
            while (i < bounds.length && value > bounds[i]!) i++;
            if (i < bounds.length) made.counts[i]! += 1;
            made.sum += value;
            made.count += 1;
          },
        };
        series.set(key, made);
        s = made;
      }
      return s;
    },
    json() {
      const values: MetricValueJson[] = [];
      for (const s of series.values()) {
        let cumulative = 0;
        bounds.forEach((le, i) => {
          cumulative += s.counts[i]!;
          values.push({ metricName: `${d.name}_bucket`, labels: { le, ...s.labels }, value: cumulative });
        });
        values.push({ metricName: `${d.name}_bucket`, labels: { le: "+Inf", ...s.labels }, value: s.count });
        values.push({ metricName: `${d.name}_sum`, labels: { ...s.labels }, value: s.sum });
        values.push({ metricName: `${d.name}_count`, labels: { ...s.labels }, value: s.count });
      }
      return { name: d.name, help: d.help, type: "histogram", aggregator: "sum", values };
    },
  };
}
