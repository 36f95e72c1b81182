// Per-customer usage in Redis (docs/decisions.md "Billing"): the billing step's once-per-job marker
// and counts (bill.lua), and the hourly counts read back for GET /usage.
import type { RedisClient } from "../infra/redis-client.js";
import type { LedgerEntry } from "../core/billing.js";
import { defineScripts } from "./scripts.js";
import { createKeys, usageField } from "./keys.js";
import { DAY_MS, HOUR_MS, utcDay } from "../core/time.js";

/** Where a job's billing stands. */
export type BillingState = "new" | "pending" | "done";

/** Jobs, GPU ms and cost of one customer, model and UTC hour. */
export interface UsageBucket {
  /** Start of the hour (ms since the epoch). */
  readonly hourMs: number;
  /** `family/model`. */
  readonly model: string;
  readonly jobs: number;
  readonly gpuMs: number;
  readonly costMicroUsd: number;
}

export interface UsageStore {
  /**
   * Marks the job's billing as started ("pending") unless it was: "new" — it is ours to write;
   * "pending" — a writer started and may have written its ledger line; "done" — recorded.
   */
  begin(jobId: string): Promise<BillingState>;
  /**
   * Takes the job's billing for `owner` for `ms` unless another runner holds it; true when taken.
   * (BullMQ may run a job again while its first runner is still alive: one writes at a time.)
   */
  lease(jobId: string, owner: string, ms: number): Promise<boolean>;
  /** Adds the entry to its customer's counts unless its job was recorded; true when added now. */
  record(entry: LedgerEntry): Promise<boolean>;
  /** The customer's hourly counts of the UTC days touching [fromMs, toMs) (whole hours). */
  buckets(customer: string, fromMs: number, toMs: number): Promise<UsageBucket[]>;
}

export function createUsageStore(opts: {
  redis: RedisClient;
  prefix: string;
  /** How long a job's marker is kept (s): longer than any redelivery of its event. */
  markerTtlS: number;
  /** How long a day's counts are kept (s). */
  usageTtlS: number;
}): UsageStore {
  const { redis, prefix } = opts;
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix);
  return {
    async begin(jobId) {
      const k = keys.billed(jobId);
      if ((await redis.set(k, "pending", "EX", opts.markerTtlS, "NX")) === "OK") return "new";
      if ((await redis.get(k)) === "done") return "done";
      // still pending: it lives as long as a retry may come (a retry after it expired would take
      // the job as new and skip the ledger search)
      await redis.expire(k, opts.markerTtlS);
      return "pending";
    },

    async lease(jobId, owner, ms) {
      const k = keys.billingLease(jobId);
      if ((await redis.set(k, owner, "PX", ms, "NX")) === "OK") return true;
      return (await redis.get(k)) === owner;
    },

    async record(e) {
      const day = utcDay(e.completed_at);
      const hour = new Date(e.completed_at).getUTCHours();
      const added = await run("bill", keys.usage(e.customer_id, day), [
        e.job_id,
        e.customer_id,
        day,
        usageField(hour, e.model),
        e.gpu_ms,
        e.cost_micro_usd,
        opts.markerTtlS,
        opts.usageTtlS,
      ]);
      return added === 1;
    },

    async buckets(customer, fromMs, toMs) {
      const days: number[] = [];
      for (let d = Math.floor(fromMs / DAY_MS) * DAY_MS; d < toMs; d += DAY_MS) days.push(d);
      const pipeline = redis.pipeline();
      for (const d of days) pipeline.hgetall(keys.usage(customer, utcDay(d)));
      const replies = (await pipeline.exec()) ?? [];
      const out = new Map<
        string,
        { hourMs: number; model: string; jobs: number; gpuMs: number; costMicroUsd: number }
      >();
      replies.forEach(([err, value], i) => {
        if (err) throw err;
        for (const [field, raw] of Object.entries(value as Record<string, string>)) {
          const first = field.indexOf("|");
          const last = field.lastIndexOf("|");
          if (first < 0 || last <= first) continue;
          const hourMs = days[i]! + Number(field.slice(0, first)) * HOUR_MS;
          const model = field.slice(first + 1, last);
          const id = `${hourMs}|${model}`;
          let b = out.get(id);
          if (b === undefined) {
            b = { hourMs, model, jobs: 0, gpuMs: 0, costMicroUsd: 0 };
            out.set(id, b);
          }
          const n = Number(raw);
          const kind = field.slice(last + 1);
          if (kind === "j") b.jobs += n;
          else if (kind === "g") b.gpuMs += n;
          else if (kind === "c") b.costMicroUsd += n;
        }
      });
      return [...out.values()];
    },
  };
}
