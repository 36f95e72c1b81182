// The outbox → relay → billing path on a real Redis and real BullMQ queues: every finished job is
// billed exactly once (one ledger line, one count in the usage totals), whatever the outcome, a
// relay that dies with entries pending, or a billing step that dies after its ledger line.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LedgerEntry } from "../../src/core/billing.js";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { createLedgerFiles } from "../../src/infra/ledger-files.js";
import { BillingBusy, billEvent, type BillingTask } from "../../src/pipeline/billing.js";
import { createRelay, type Relay } from "../../src/pipeline/relay.js";
import { AUDIT_QUEUE, BILLING_QUEUE, WEBHOOKS_QUEUE } from "../../src/queues/keys.js";
import { createOutboxStore } from "../../src/queues/outbox-store.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import type { Attempt, BackendView } from "../../src/queues/scheduler-types.js";
import { createUsageStore } from "../../src/queues/usage-store.js";
import { usageOf } from "../../src/api/usage.js";
import { until } from "../helpers/processes.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";

const logger = pino({ level: "silent" });
const HOUR = 3_600_000;

let r: TestRedis;
let dir: string;
let now = Date.UTC(2026, 11, 6, 10, 0, 0);
const connections: Redis[] = [];
const conn = () => {
  const c = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  connections.push(c);
  return c;
};

function setup() {
  const scheduler = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 600_000,
    maxAttempts: 1,
    retentionS: 3600,
    retentionCount: 100_000,
  });
  const ledger = createLedgerFiles({ dir, writerId: "test" });
  const usage = createUsageStore({ redis: r.client, prefix: r.prefix, markerTtlS: 3600, usageTtlS: 3600 });
  const queueOpts = { connection: conn(), prefix: r.prefix };
  const billing = new Queue(BILLING_QUEUE, queueOpts);
  const webhooks = new Queue(WEBHOOKS_QUEUE, queueOpts);
  const audit = new Queue(AUDIT_QUEUE, queueOpts);
  const worker = new Worker<BillingTask>(
    BILLING_QUEUE,
    async (job) => {
      await billEvent(job.data.event, { ledger, usage, tiers: DEFAULT_TIERS, logger });
    },
    { connection: conn(), prefix: r.prefix, concurrency: 16 },
  );
  const outbox = createOutboxStore(conn(), r.prefix);
  const relays: Relay[] = [];
  const relay = (consumer: string, claimIdleMs = 30_000) => {
    const relay = createRelay({
      outbox,
      queues: { billing, webhooks, audit },
      consumer,
      tiers: DEFAULT_TIERS,
      logger,
      claimIdleMs,
      blockMs: 100,
      housekeepingMs: 100,
    });
    relays.push(relay);
    void relay.run();
    return relay;
  };
  return {
    scheduler,
    ledger,
    usage,
    outbox,
    relay,
    async close() {
      for (const x of relays) await x.stop();
      await worker.close();
      await billing.close();
      await webhooks.close();
      await audit.close();
      await ledger.close();
    },
  };
}

/**
 * Every ledger line written (duplicates included): those ended by their newline — a line being
 * appended while the test polls is not written yet (CI read one cut at position 57).
 */
function ledgerLines(): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  for (const day of readdirSync(dir)) {
    for (const f of readdirSync(join(dir, day))) {
      const lines = readFileSync(join(dir, day, f), "utf8").split("\n");
      lines.pop(); // after the last newline: "" or a line still being written
      for (const line of lines) if (line !== "") out.push(JSON.parse(line) as LedgerEntry);
    }
  }
  return out;
}

const fields = (cust: string) => ({
  cust,
  tier: "pro",
  prio: "normal",
  mod: "image",
  fam: "flux",
  mdl: "schnell",
  task: "t2i",
  fmt: "1024",
  seed: "1",
  mode: "async",
});
const backends: BackendView[] = [{ id: "gpu", cap: 10_000, engine: "nunchaku", models: ["*"], ok: true }];

async function admit(
  scheduler: ReturnType<typeof setup>["scheduler"],
  id: string,
  ttlAt: number,
  customer = "acme",
) {
  const res = await scheduler.admit({
    id,
    route: "flux/schnell",
    priority: "normal",
    fields: fields(customer),
    request: JSON.stringify({ prompt: "secret prompt" }),
    serviceMs: 1000,
    capacity: 16,
    ttlAt,
  });
  expect(res.admitted).toBe(true);
}

beforeAll(() => {
  r = testRedis();
  dir = mkdtempSync(join(tmpdir(), "rg-ledger-"));
});
afterAll(async () => {
  for (const c of connections) c.disconnect();
  await r.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe("billing from the outbox", () => {
  it("bills 1,000 jobs of mixed outcomes once each: completed runs and runs up to a cancel, nothing else", async () => {
    const s = setup();
    try {
      const N = 1000;
      const kind = (i: number) => ["complete", "failed", "cancel_queued", "cancel_running", "ttl"][i % 5]!;
      const id = (i: number) => `j_bill${String(i).padStart(18, "0")}`;
      for (let i = 0; i < N; i++) await admit(s.scheduler, id(i), kind(i) === "ttl" ? now + 10 : now + HOUR);
      for (let i = 0; i < N; i++) if (kind(i) === "cancel_queued") await s.scheduler.cancel(id(i), "acme");
      now += 1_000;
      expect(await s.scheduler.expire()).toBe(N / 5);
      const started: Attempt[] = await s.scheduler.dispatch(N, backends);
      expect(started).toHaveLength((N / 5) * 3);
      now += 50;
      let expectedGpu = 0;
      for (const a of started) {
        const i = Number(a.id.slice(6));
        if (kind(i) === "complete") {
          const gpu = 100 + i;
          expectedGpu += gpu;
          await s.scheduler.finish(a.id, a.token, a.backend, "complete", {
            output: "sha256-" + "a".repeat(64),
            outputs: ["sha256-" + "a".repeat(64)],
            ctype: "image/png",
            gpu_ms: gpu,
          });
        } else if (kind(i) === "failed") {
          await s.scheduler.finish(a.id, a.token, a.backend, "failed", {
            error: { code: "backend_error", message: "boom", retriable: false },
            gpu_ms: 999,
          });
        } else {
          // cancelled 50 ms into its run; the worker's settle comes later and reports more GPU time
          await s.scheduler.cancel(a.id, "acme");
          expectedGpu += 50;
          await s.scheduler.finish(a.id, a.token, a.backend, "failed", {
            error: { code: "cancelled", message: "aborted", retriable: false },
            gpu_ms: 5_000,
          });
        }
      }
      s.relay("relay-a");
      s.relay("relay-b");
      const entries = await until(
        "every job billed",
        async () => {
          const lines = ledgerLines();
          return lines.length >= N ? lines : undefined;
        },
        60_000,
      );
      // one line per job, no more (give a duplicate the time to show up)
      await new Promise((res) => setTimeout(res, 300));
      expect(ledgerLines()).toHaveLength(N);
      expect(new Set(entries.map((e) => e.job_id)).size).toBe(N);
      const gpu = entries.reduce((sum, e) => sum + e.gpu_ms, 0);
      expect(gpu).toBe(expectedGpu);
      for (const e of entries) {
        const k = kind(Number(e.job_id.slice(6)));
        if (k === "failed" || k === "cancel_queued" || k === "ttl") {
          expect([e.job_id, e.gpu_ms, e.cost_micro_usd]).toEqual([e.job_id, 0, 0]);
        }
        if (k === "cancel_running") expect([e.gpu_ms, e.gpu_source]).toEqual([50, "to_cancel"]);
        if (k === "complete") expect(e.cost_micro_usd).toBe(Math.floor((e.gpu_ms * 400 + 500) / 1000));
      }
      // the usage counts agree with the ledger, and GET /usage's computation reads them
      const report = await usageOf(
        { usage: s.usage, ledger: s.ledger },
        "acme",
        now - 2 * HOUR,
        now + HOUR,
        "model",
      );
      expect(report.total.jobs).toBe(N);
      expect(report.total.gpuMs).toBe(expectedGpu);
      expect(report.total.cost).toBe(entries.reduce((sum, e) => sum + e.cost_micro_usd, 0));
      // what the relays handed off was trimmed from the stream; no prompt went to the billing queue
      await until("outbox trimmed", async () => (await r.client.xlen(`${r.prefix}:outbox`)) === 0, 10_000);
      const billingJobs = await r.client.keys(`${r.prefix}:billing:bill.*`);
      expect(billingJobs.length).toBeGreaterThan(0);
      const data = await r.client.hget(billingJobs[0]!, "data");
      expect(data).not.toContain("secret prompt");
    } finally {
      await s.close();
    }
  });

  it("takes over the entries a relay read and never handed off", async () => {
    const s = setup();
    try {
      await s.outbox.ensureGroup();
      for (let i = 0; i < 5; i++) {
        await admit(s.scheduler, `j_dead${String(i).padStart(18, "0")}`, now + HOUR);
        await s.scheduler.cancel(`j_dead${String(i).padStart(18, "0")}`, "acme");
      }
      // a relay reads them and dies
      const taken = await s.outbox.read("dead-relay", 100, 0);
      expect(taken).toHaveLength(5);
      expect((await s.outbox.lag(Date.now())).entries).toBe(5);
      s.relay("heir", 200);
      await until("the heir bills them", async () => {
        const ids = new Set(ledgerLines().map((e) => e.job_id));
        return [0, 1, 2, 3, 4].every((i) => ids.has(`j_dead${String(i).padStart(18, "0")}`));
      });
      await until("nothing pending", async () => (await s.outbox.lag(Date.now())).entries === 0);
    } finally {
      await s.close();
    }
  });

  it("writes one ledger line when a billing step ran before and died after its line", async () => {
    const s = setup();
    try {
      await admit(s.scheduler, "j_crash00000000000000000001", now + HOUR, "crash");
      await s.scheduler.cancel("j_crash00000000000000000001", "crash");
      await s.outbox.ensureGroup();
      const [entry] = await s.outbox.read("probe", 10, 0);
      if (entry === undefined || !("event" in entry)) throw new Error("no outbox event");
      const crashed = await billEvent(entry.event, {
        ledger: s.ledger,
        usage: s.usage,
        tiers: DEFAULT_TIERS,
        logger,
        fault: () => {
          throw new Error("killed after the ledger line");
        },
      }).catch((err: unknown) => err);
      expect(String(crashed)).toContain("killed after the ledger line");
      const deps = { ledger: s.ledger, usage: s.usage, tiers: DEFAULT_TIERS, logger };
      await billEvent(entry.event, deps);
      await billEvent(entry.event, deps);
      const lines = ledgerLines().filter((e) => e.job_id === "j_crash00000000000000000001");
      expect(lines).toHaveLength(1);
      const report = await usageOf(deps, "crash", now - HOUR, now + HOUR, undefined);
      expect(report.total.jobs).toBe(1);
      expect(await s.usage.begin("j_crash00000000000000000001")).toBe("done");
    } finally {
      await s.close();
    }
  });

  it("lets one run at a time bill a job: a second run of it meanwhile is told to come back", async () => {
    const s = setup();
    try {
      await admit(s.scheduler, "j_twice0000000000000000001", now + HOUR, "twice");
      await s.scheduler.cancel("j_twice0000000000000000001", "twice");
      await s.outbox.ensureGroup();
      const entries = await s.outbox.read("probe-2", 100, 0);
      const entry = entries.find((e) => "event" in e && e.event.jobId === "j_twice0000000000000000001");
      if (entry === undefined || !("event" in entry)) throw new Error("no outbox event");
      const run = (owner: string) =>
        billEvent(entry.event, {
          ledger: s.ledger,
          usage: s.usage,
          tiers: DEFAULT_TIERS,
          logger,
          owner,
          leaseMs: 5_000,
        });
      const results = await Promise.allSettled([run("run-a"), run("run-b")]);
      const busy = results.filter((x) => x.status === "rejected");
      expect(busy).toHaveLength(1);
      expect((busy[0] as PromiseRejectedResult).reason).toBeInstanceOf(BillingBusy);
      expect(ledgerLines().filter((e) => e.job_id === "j_twice0000000000000000001")).toHaveLength(1);
      // the run that was turned away, run again later, finds the job billed
      await run("run-b").catch(() => undefined);
      expect(ledgerLines().filter((e) => e.job_id === "j_twice0000000000000000001")).toHaveLength(1);
    } finally {
      await s.close();
    }
  });
});
