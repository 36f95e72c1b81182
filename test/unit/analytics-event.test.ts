// The analytics row of a terminal outbox event (core/analytics-event.ts), the rollup rows a batch
// asks to be recomputed, and the SQL literals its queries are built with (infra/clickhouse-sql.ts,
// clickhouse-rollup.ts): the row carries the ledger's own GPU time and price and never the request;
// literals escape whatever could end or bend them.
import { describe, expect, it } from "vitest";
import {
  inferenceEventOf,
  rollupKeysOf,
  sweepSpan,
  type InferenceEvent,
} from "../../src/core/analytics-event.js";
import { ledgerEntryOf } from "../../src/core/billing.js";
import type { OutboxEvent } from "../../src/core/outbox.js";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import {
  isSqlIdentifier,
  sqlIdentifier,
  sqlInteger,
  sqlString,
  sqlStringList,
} from "../../src/infra/clickhouse-sql.js";
import { KEYS_PER_REFRESH, refreshKeysStatements, wholeHours } from "../../src/infra/clickhouse-rollup.js";

const T0 = Date.UTC(2026, 11, 7, 10, 59, 59, 400);

function terminal(record: Record<string, string>, event = "complete"): OutboxEvent {
  return {
    jobId: record.id ?? "j1",
    event,
    seq: 4,
    at: T0 + 5_000,
    data: {},
    record: {
      id: "j1",
      cust: "acme",
      tier: "pro",
      prio: "high",
      mod: "image",
      fam: "flux",
      mdl: "schnell",
      task: "t2i",
      req: JSON.stringify({ prompt: "a secret prompt" }),
      created: String(T0),
      ...record,
    },
  };
}

describe("the analytics row of a terminal event", () => {
  it("carries the ledger's GPU time and price, the job's times and no request", () => {
    const e = terminal({
      status: "complete",
      started: String(T0 + 1_200),
      completed: String(T0 + 3_700),
      gpu_ms: "1234",
      attempt: "2",
      backend: "gpu-a",
    });
    const row = inferenceEventOf(e, DEFAULT_TIERS)!;
    const entry = ledgerEntryOf(e, DEFAULT_TIERS)!;
    expect(row).toMatchObject({
      event_id: "j1.4",
      job_id: "j1",
      customer_id: "acme",
      tier: "pro",
      priority: "high",
      model: "flux/schnell",
      status: "complete",
      error_code: "",
      backend: "gpu-a",
      attempts: 2,
      queue_wait_ms: 1_200,
      run_ms: 2_500,
      created_at: Math.floor(T0 / 1000),
      started_at: Math.floor((T0 + 1_200) / 1000),
      completed_at: Math.floor((T0 + 3_700) / 1000),
      completed_ms: T0 + 3_700,
    });
    expect(row.gpu_ms).toBe(entry.gpu_ms);
    expect(row.price_micro_usd).toBe(entry.cost_micro_usd);
    expect(row.price_micro_usd_per_gpu_s).toBe(entry.price_micro_usd_per_gpu_s);
    expect(row.price_micro_usd).toBeGreaterThan(0);
    expect(JSON.stringify(row)).not.toContain("secret prompt");
  });

  it("gives a job cancelled in the queue no start, no run time and its whole life as the wait", () => {
    const e = terminal(
      {
        status: "cancelled",
        completed: String(T0 + 900),
        err: JSON.stringify({ code: "cancelled", message: "x", retriable: false }),
      },
      "error",
    );
    const row = inferenceEventOf(e, DEFAULT_TIERS)!;
    expect(row).toMatchObject({ status: "cancelled", error_code: "cancelled", started_at: null, run_ms: 0 });
    expect(row.queue_wait_ms).toBe(900);
    expect(row.gpu_ms).toBe(0);
  });

  it("has no row for an event that does not end its job", () => {
    expect(inferenceEventOf(terminal({ status: "running" }, "started"), DEFAULT_TIERS)).toBeUndefined();
  });
});

describe("SQL literals", () => {
  it("quote strings so that quotes, backslashes and control characters cannot end them", () => {
    expect(sqlString("plain")).toBe("'plain'");
    expect(sqlString("it's")).toBe("'it\\'s'");
    expect(sqlString("back\\slash")).toBe("'back\\\\slash'");
    expect(sqlString("a\nb\rc\td\0e")).toBe("'a\\nb\\rc\\td\\0e'");
    expect(sqlString("\u0001\u001f\u007f")).toBe("'\\x01\\x1f\\x7f'");
    expect(sqlString("ünï 🚀")).toBe("'ünï 🚀'");
    // what stays inside the quotes holds no unescaped quote
    for (const hostile of ["'; DROP TABLE x; --", "\\'", "\\\\'", "'\\", "x' OR '1'='1"]) {
      const body = sqlString(hostile).slice(1, -1);
      expect(body.replace(/\\./g, "")).not.toContain("'");
    }
  });

  it("refuse a string with a lone surrogate", () => {
    expect(() => sqlString("a\ud800b")).toThrow(/surrogate/);
    expect(() => sqlString("\udc00")).toThrow(/surrogate/);
  });

  it("accept plain identifiers only", () => {
    expect(sqlIdentifier("render_gateway")).toBe("`render_gateway`");
    for (const bad of ["", "1db", "a-b", "a`b", "a b", "x".repeat(65), "db;DROP"]) {
      expect(isSqlIdentifier(bad)).toBe(false);
      expect(() => sqlIdentifier(bad)).toThrow();
    }
  });

  it("accept safe integers only, and non-empty lists", () => {
    expect(sqlInteger(1_796_637_600_000)).toBe("1796637600000");
    for (const bad of [Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 53])
      expect(() => sqlInteger(bad)).toThrow();
    expect(sqlStringList(["a", "b'"])).toBe("('a', 'b\\'')");
    expect(() => sqlStringList([])).toThrow();
  });
});

describe("rollup keys", () => {
  const HOUR = 3_600_000;
  const H0 = Date.UTC(2026, 11, 7, 10);
  const at = (ms: number, customer_id: string, model: string) =>
    ({ customer_id, model, completed_at: Math.floor(ms / 1000), completed_ms: ms }) as InferenceEvent;

  it("are the distinct UTC hour × customer × model of a batch's rows, hour of completed_at", () => {
    const keys = rollupKeysOf([
      at(H0, "a", "m"),
      at(H0 + HOUR - 1, "a", "m"),
      at(H0 + HOUR, "a", "m"),
      at(H0 + 1, "a", "n"),
      // no separator makes two keys one
      at(H0, "a|b", "c"),
      at(H0, "a", "b|c"),
    ]);
    expect(keys.map((k) => [k.hour_ms - H0, k.customer_id, k.model])).toEqual([
      [0, "a", "m"],
      [HOUR, "a", "m"],
      [0, "a", "n"],
      [0, "a|b", "c"],
      [0, "a", "b|c"],
    ]);
  });

  it("go to refresh statements of at most KEYS_PER_REFRESH keys, every string quoted", () => {
    const keys = Array.from({ length: KEYS_PER_REFRESH * 2 + 1 }, (_, i) => ({
      hour_ms: H0 + (i % 3) * HOUR,
      customer_id: `c${i}' OR '1'='1`,
      model: "m",
    }));
    const statements = refreshKeysStatements("db", keys);
    expect(statements.length).toBe(3);
    for (const [i, k] of keys.entries()) {
      const quoted = `'c${i}\\' OR \\'1\\'=\\'1'`;
      expect(statements.filter((q) => q.includes(quoted + ",") || q.includes(quoted + ")")).length).toBe(1);
      expect(k.customer_id).toContain("'");
    }
    expect(() => refreshKeysStatements("db; DROP", keys)).toThrow(/not an identifier/);
  });

  it("of a sweep are the current hour and the ones before it; spans widen to whole hours", () => {
    expect(sweepSpan(H0 + 5 * 60_000, 3)).toEqual({ fromMs: H0 - 2 * HOUR, toMs: H0 + HOUR });
    expect(sweepSpan(H0, 1)).toEqual({ fromMs: H0, toMs: H0 + HOUR });
    expect(wholeHours({ fromMs: H0 + 1, toMs: H0 + HOUR + 1 })).toEqual({ fromMs: H0, toMs: H0 + 2 * HOUR });
    expect(wholeHours({ fromMs: H0, toMs: H0 + HOUR })).toEqual({ fromMs: H0, toMs: H0 + HOUR });
  });
});
