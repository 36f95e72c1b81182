// Whether a pipeline process runs the analytics stage, and on which ClickHouse (main/analytics.ts):
// no CLICKHOUSE_URL and no clickhouse-server → off with exactly one warning naming how to get one;
// ANALYTICS=off → off; two processes on one DATA_DIR share one embedded server, which its starter
// stops. A relay without the stage adds no analytics job (no queue without a consumer).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findClickHouseServer, pingClickHouse } from "../../src/infra/clickhouse-server.js";
import { isAlive } from "../../src/infra/embedded-redis.js";
import { openAnalyticsStore } from "../../src/main/analytics.js";
import { readRunFile } from "../../src/main/run-files.js";
import { createRuntime } from "../../src/main/runtime.js";
import { loadSettings } from "../../src/main/settings.js";
import { createRelay } from "../../src/pipeline/relay.js";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { ANALYTICS_QUEUE, AUDIT_QUEUE, BILLING_QUEUE, WEBHOOKS_QUEUE } from "../../src/queues/keys.js";
import { createOutboxStore } from "../../src/queues/outbox-store.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import { until } from "../helpers/processes.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "rg-analytics-stage-"));
  dirs.push(d);
  return d;
};

/** A logger whose lines are kept, parsed. */
function recordingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n"))
        if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

function context(env: Record<string, string>, logger = pino({ level: "silent" })) {
  const settings = loadSettings({ DATA_DIR: tempDir(), LOG_LEVEL: "silent", ...env });
  return { settings, runtime: createRuntime(logger), logger };
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("the analytics stage", () => {
  it("is off, with one warning that says how to get clickhouse-server, when there is none", async () => {
    const { logger, lines } = recordingLogger();
    const ctx = context({}, logger);
    const store = await openAnalyticsStore(ctx, { embed: true, findServer: () => undefined });
    expect(store).toBeUndefined();
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain("analytics off");
    expect(warnings[0]!.msg).toContain("apt-get install clickhouse-server");
    await ctx.runtime.shutdown("test");
  });

  it("is off when ANALYTICS=off, whatever could be used", async () => {
    const ctx = context({ ANALYTICS: "off", CLICKHOUSE_URL: "http://127.0.0.1:1" });
    expect(await openAnalyticsStore(ctx, { embed: true })).toBeUndefined();
    await ctx.runtime.shutdown("test");
  });

  it("embeds one server per DATA_DIR: a second process reuses it, and its starter stops it", async () => {
    expect(
      findClickHouseServer(),
      "clickhouse-server is installed (apt-get install clickhouse-server)",
    ).toBeDefined();
    const first = context({});
    const second = { ...context({}), settings: first.settings };
    const a = await openAnalyticsStore(first, { embed: true });
    const b = await openAnalyticsStore(second, { embed: true });
    expect(a && b).toBeTruthy();
    const { settings } = first;
    const pid = Number(readRunFile(settings.dataDir, "clickhouse.pid"));
    const port = Number(readRunFile(settings.dataDir, "clickhouse.port"));
    expect(isAlive(pid)).toBe(true);
    // both see the same tables (the schema was made by the first, found by the second)
    const now = Date.now();
    expect(await b!.hourlyUsage({ fromMs: now - 1, toMs: now })).toEqual([]);
    // a reader that embeds nothing finds the running server too
    const reader = await openAnalyticsStore(context({ DATA_DIR: settings.dataDir }), { embed: false });
    expect(reader?.database).toBe("render_gateway");
    await reader?.close();
    await second.runtime.shutdown("test");
    expect(await pingClickHouse(port)).toBe(true);
    await first.runtime.shutdown("test");
    expect(isAlive(pid)).toBe(false);
    expect(readRunFile(settings.dataDir, "clickhouse.pid")).toBeUndefined();
  });
});

describe("a relay without the analytics stage", () => {
  let r: TestRedis;
  const connections: Redis[] = [];
  beforeAll(() => {
    r = testRedis();
  });
  afterAll(async () => {
    for (const c of connections) c.disconnect();
    await r.cleanup();
  });

  it("adds no analytics job", async () => {
    const conn = () => {
      const c = new Redis(redisUrl(), { maxRetriesPerRequest: null });
      connections.push(c);
      return c;
    };
    const scheduler = createScheduler({
      redis: r.client,
      prefix: r.prefix,
      clock: Date.now,
      leaseTtlMs: 600_000,
      maxAttempts: 1,
      retentionS: 3600,
      retentionCount: 1000,
    });
    const res = await scheduler.admit({
      id: "j_noanalytics00000000000001",
      route: "flux/schnell",
      priority: "normal",
      fields: {
        cust: "acme",
        tier: "pro",
        prio: "normal",
        mod: "image",
        fam: "flux",
        mdl: "schnell",
        task: "t2i",
        fmt: "1024",
        seed: "1",
        mode: "async",
      },
      request: "{}",
      serviceMs: 1000,
      capacity: 16,
      ttlAt: Date.now() + 3_600_000,
    });
    expect(res.admitted).toBe(true);
    await scheduler.cancel("j_noanalytics00000000000001", "acme");
    const opts = { connection: conn(), prefix: r.prefix };
    const billing = new Queue(BILLING_QUEUE, opts);
    const webhooks = new Queue(WEBHOOKS_QUEUE, opts);
    const analytics = new Queue(ANALYTICS_QUEUE, opts);
    const audit = new Queue(AUDIT_QUEUE, opts);
    const relay = createRelay({
      outbox: createOutboxStore(conn(), r.prefix),
      queues: { billing, webhooks, audit },
      tiers: DEFAULT_TIERS,
      consumer: "no-analytics",
      logger: pino({ level: "silent" }),
      claimIdleMs: 30_000,
      blockMs: 100,
    });
    void relay.run();
    try {
      // handed off = every queue's jobs added and the entry acknowledged
      await until("the hand-off", () => Promise.resolve(relay.handedOff() === 1));
      expect(await billing.getJobCountByTypes("waiting")).toBe(1);
      expect(await analytics.getJobCountByTypes("waiting", "delayed", "active", "completed")).toBe(0);
    } finally {
      await relay.stop();
      await Promise.all([billing.close(), webhooks.close(), analytics.close(), audit.close()]);
    }
  });
});
