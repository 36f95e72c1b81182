// The rollup's sweep (pipeline/rollup-sweep.ts) against a real clickhouse-server: rows no batch
// refresh followed (stored by a process of an earlier release, a restored partition, an insert cut
// short whose jobs are gone) are counted by the sweep — in the hours the rollup lacks altogether
// (filled by a process's first sweep, whatever their age) and in the recent hours (every sweep).
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rollupKeysOf, type InferenceEvent } from "../../src/core/analytics-event.js";
import type { AnalyticsStore } from "../../src/infra/clickhouse-analytics.js";
import { startRollupSweep } from "../../src/pipeline/rollup-sweep.js";
import { startTestClickHouse, type TestClickHouse } from "../helpers/clickhouse.js";
import { until } from "../helpers/processes.js";

const HOUR = 3_600_000;
const H0 = Date.UTC(2026, 11, 9, 0);

let ch: TestClickHouse;
beforeAll(async () => {
  ch = await startTestClickHouse();
});
afterAll(async () => {
  await ch?.stop();
});

let n = 0;
function row(ms: number): InferenceEvent {
  n++;
  return {
    event_id: `j_sweep${n}.4`,
    job_id: `j_sweep${n}`,
    customer_id: n % 2 === 0 ? "acme" : "zed",
    tier: "pro",
    priority: "normal",
    modality: "image",
    model: "flux/schnell",
    task: "t2i",
    status: "complete",
    error_code: "",
    backend: "gpu",
    attempts: 1,
    gpu_ms: 10 * n,
    price_micro_usd: 20 * n,
    price_micro_usd_per_gpu_s: 2000,
    queue_wait_ms: n,
    run_ms: 10 * n,
    created_at: Math.floor((ms - 100) / 1000),
    started_at: Math.floor((ms - 50) / 1000),
    completed_at: Math.floor(ms / 1000),
    completed_ms: ms,
  };
}
/** `count` rows in the hour starting at `hourMs`. */
const inHour = (hourMs: number, count: number) =>
  Array.from({ length: count }, (_, i) => row(hourMs + 1_000 + i * 60_000));

/** A logger whose lines are kept, parsed. */
function recordingLogger() {
  const lines: { level: number; msg: string; filled?: number }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as (typeof lines)[0]);
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

async function exact(store: AnalyticsStore, fromMs: number, toMs: number): Promise<boolean> {
  const w = { fromMs, toMs };
  return JSON.stringify(await store.hourlyRollup(w)) === JSON.stringify(await store.hourlyRollupOfRows(w));
}

describe("the rollup sweep", () => {
  it("fills the hours the rollup lacks, recomputes the recent ones, and again every period", async () => {
    const store = ch.store(ch.uniqueDatabase());
    await store.ensureSchema();
    const old = H0; // a week before "now": only the fill can reach it
    const recent = H0 + 7 * 24 * HOUR;
    const rolled = inHour(recent, 4);
    await store.insert(rolled);
    await store.refreshRollup(rollupKeysOf(rolled));
    await ch.storeCutShort(store.database, [...inHour(old, 5), ...inHour(recent, 3)]);
    // an hour between them that the rollup has, short of a row no refresh followed: neither recent
    // nor missing, so the sweep leaves it
    const between = recent - 3 * HOUR;
    const b = inHour(between, 2);
    await store.insert(b);
    await store.refreshRollup(rollupKeysOf(b));
    await ch.storeCutShort(store.database, inHour(between, 1));
    expect(await exact(store, old, old + HOUR)).toBe(false);
    expect(await exact(store, recent, recent + HOUR)).toBe(false);

    const { logger, lines } = recordingLogger();
    let now = recent + 20 * 60_000;
    const sweep = startRollupSweep({ sink: store, everyMs: 100, hours: 2, logger, clock: () => now });
    try {
      await until("the old hour filled", () => exact(store, old, old + HOUR));
      await until("the recent hour recomputed", () => exact(store, recent, recent + HOUR));
      expect(lines.filter((l) => l.msg.includes("hours the rollup lacked")).map((l) => l.filled)).toEqual([
        1,
      ]);
      expect(await exact(store, between, between + HOUR)).toBe(false);
      // rows stored later in the current hour are counted by a later sweep
      now += 10 * 60_000;
      await ch.storeCutShort(store.database, inHour(recent + 30 * 60_000, 2));
      await until("the later rows counted", async () => {
        const [a, z] = await store.hourlyRollup({ fromMs: recent, toMs: recent + HOUR });
        return (a?.jobs ?? 0) + (z?.jobs ?? 0) === 9 && (await exact(store, recent, recent + HOUR));
      });
    } finally {
      await sweep.close();
    }
    expect(await sweep.close()).toBeUndefined();
  });

  it("logs a failed sweep once and goes on trying", async () => {
    const { logger, lines } = recordingLogger();
    let calls = 0;
    const sweep = startRollupSweep({
      sink: {
        async refreshHours() {
          calls++;
          if (calls < 4) throw new Error("connect ECONNREFUSED");
          return 0;
        },
      },
      everyMs: 10,
      hours: 1,
      logger,
    });
    await until("a sweep that works", async () => calls >= 5, 10_000, 10);
    await sweep.close();
    expect(lines.map((l) => l.msg).filter((m) => !m.includes("done"))).toEqual([
      "rollup sweep failed; the next one tries again",
      "rollup sweeps succeed again",
    ]);
  });
});
