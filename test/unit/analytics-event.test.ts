// The analytics row of a terminal outbox event (core/analytics-event.ts) and the SQL literals its
// queries are built with (infra/clickhouse-sql.ts): the row carries the ledger's own GPU time and
// price and never the request; literals escape whatever could end or bend them.
import { describe, expect, it } from "vitest";
import { inferenceEventOf } from "../../src/core/analytics-event.js";
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
