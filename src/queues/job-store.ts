// Reads of jobs, their event logs and queue totals (writes happen only in the scheduler's scripts).
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys, orderKey, parseTierDepthField, SEQ_SPAN, WORK_RATE_FIELD } from "./keys.js";
import { decodeJobFlat, PRIORITIES, type JobRecord, type Priority } from "../core/job.js";
import { formatFamilyModel } from "../core/model-route.js";
import { defineScripts, type ScriptOptions, type ScriptRunner } from "./scripts.js";

export interface StoredEvent {
  /** Integer id, monotonic per job (the SSE `id:`). */
  readonly seq: number;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

export interface QueueTotals {
  /** Queued jobs per priority. */
  readonly depth: Readonly<Record<Priority, number>>;
  /** Attempts holding a backend slot (running, or expired and not yet reaped). */
  readonly running: number;
  /** The same per backend (the leases `running` sums, read once). */
  readonly leases: ReadonlyMap<string, number>;
}

/** A queued job as its cost estimate needs it. */
export interface QueuedWork {
  readonly familyModel: string;
  /** Its work units (core/cost.ts); 1 when it was stored without them. */
  readonly work: number;
}

/** A tenant with work queued or running, as operators see it (docs/decisions.md "Fair share"). */
export interface TenantShare {
  readonly customer: string;
  readonly weight: number;
  readonly queued: number;
  readonly running: number;
  /** Queued jobs held back at its running-at-once limit. */
  readonly held: number;
  /** Measured GPU ms of its settled attempts since it last became active. */
  readonly gpuMs: number;
}

export interface JobStore {
  /**
   * The job, its position (-1 unless queued) and whether it is held back only by its tenant's
   * running-at-once limit, read atomically; undefined when absent.
   */
  read(id: string): Promise<{ job: JobRecord; position: number; held: boolean } | undefined>;
  /** Stored events with seq > afterSeq, oldest first. */
  events(id: string, afterSeq: number, count?: number): Promise<StoredEvent[]>;
  totals(): Promise<QueueTotals>;
  /**
   * How many queued jobs a job of `customer` admitted now would find ahead of it at each priority
   * (its order key computed as admit.lua would: lib.lua order_key, keys.ts orderKey), with the
   * priority offsets `offsets` (keys.ts priorityOffset).
   */
  aheadOfNew(customer: string, offsets: (p: Priority) => number): Promise<Record<Priority, number>>;
  /** The active tenants (up to `limit`, default 1000) and the summed weight `W` of all of them. */
  tenants(limit?: number): Promise<{ weight: number; tenants: TenantShare[] }>;
  /** Measured ms per work unit (EWMA, finish.lua) per `family/model`. */
  workRates(): Promise<Map<string, number>>;
  /** Attempts holding a slot, per backend that holds any. */
  leases(): Promise<Map<string, number>>;
  /**
   * Queued jobs per tier and priority (the scheduler's counters, keys.ts tierDepthField; one read of
   * the `fair` hash, whose size is bounded by the tiers), and how many tenants are active.
   */
  depths(): Promise<{
    readonly byTier: { readonly tier: string; readonly priority: string; readonly jobs: number }[];
    readonly activeTenants: number;
  }>;
  /** The first `count` jobs of the order (those that start next), lowest key first. */
  head(count: number): Promise<QueuedWork[]>;
}

/** The highest admission sequence a score can hold (keys.ts SEQ_SPAN): a key's last score. */
const SEQ_LAST = SEQ_SPAN - 1;

export function createJobStore(redis: RedisClient, prefix: string, scripts: ScriptOptions = {}): JobStore {
  const keys = createKeys(prefix);
  const run: ScriptRunner = defineScripts(redis, prefix, scripts);

  /** Leases held per backend: one ZCARD per backend that holds any. */
  async function leases(): Promise<Map<string, number>> {
    const backends = await redis.smembers(keys.leaseBackends);
    const out = new Map<string, number>();
    if (backends.length === 0) return out;
    const pipe = redis.pipeline();
    for (const b of backends) pipe.zcard(keys.lease(b));
    const res = (await pipe.exec()) ?? [];
    backends.forEach((b, i) => out.set(b, Number(res[i]?.[1] ?? 0)));
    return out;
  }

  return {
    async read(id) {
      const r = (await run("read", keys.queue, [id])) as [string[], number, number] | [];
      if (r.length === 0) return undefined;
      const [flat, position, held] = r;
      return { job: decodeJobFlat(flat), position: Number(position), held: Number(held) === 1 };
    },

    async events(id, afterSeq, count = 1000) {
      const entries = await redis.lrange(keys.events(id), afterSeq, afterSeq + count - 1);
      return entries.map((entry, i) => {
        const nl = entry.indexOf("\n");
        return {
          seq: afterSeq + i + 1,
          event: entry.slice(0, nl),
          data: JSON.parse(entry.slice(nl + 1)) as Record<string, unknown>,
        };
      });
    },

    async totals() {
      const [counts, held] = await Promise.all([redis.hmget(keys.fair, ...PRIORITIES), leases()]);
      const depth = {} as Record<Priority, number>;
      PRIORITIES.forEach((p, i) => (depth[p] = Math.max(0, Number(counts[i] ?? 0))));
      let running = 0;
      for (const n of held.values()) running += n;
      return { depth, running, leases: held };
    },

    async aheadOfNew(customer, offsets) {
      const [[v], [f]] = await Promise.all([
        redis.hmget(keys.fair, "V"),
        redis.hmget(keys.tenant(customer), "F"),
      ]);
      // as admit.lua: the start time, then each priority's offset
      const start = Math.max(Number(v ?? 0), Number(f ?? 0));
      const pipe = redis.pipeline();
      // the sequence of a new admission comes after every queued one: count the equal keys too
      for (const p of PRIORITIES) {
        pipe.zcount(keys.queue, "-inf", orderKey(start + offsets(p), SEQ_LAST));
      }
      const res = (await pipe.exec()) ?? [];
      const out = {} as Record<Priority, number>;
      PRIORITIES.forEach((p, i) => {
        const entry = res[i];
        if (!entry || entry[0]) throw entry?.[0] ?? new Error("pipeline failed");
        out[p] = Number(entry[1]);
      });
      return out;
    },

    async tenants(limit = 1000) {
      const [[w], members] = await Promise.all([
        redis.hmget(keys.fair, "W"),
        redis.smembers(keys.activeTenants),
      ]);
      const listed = members.sort().slice(0, limit);
      const pipe = redis.pipeline();
      for (const c of listed) pipe.hmget(keys.tenant(c), "aw", "q", "r", "h", "gpu");
      const res = listed.length > 0 ? ((await pipe.exec()) ?? []) : [];
      const tenants = listed.map((customer, i) => {
        const entry = res[i];
        if (!entry || entry[0]) throw entry?.[0] ?? new Error("pipeline failed");
        const [aw, q, r, h, gpu] = (entry[1] as (string | null)[]).map((x) => Number(x ?? 0));
        return { customer, weight: aw!, queued: q!, running: r!, held: h!, gpuMs: gpu! };
      });
      return { weight: Number(w ?? 0), tenants };
    },

    async workRates() {
      const h = await redis.hgetall(keys.stats);
      const out = new Map<string, number>();
      for (const [k, v] of Object.entries(h))
        if (k.startsWith(WORK_RATE_FIELD)) out.set(k.slice(WORK_RATE_FIELD.length), Number(v));
      return out;
    },

    leases,

    async depths() {
      const [fair, activeTenants] = await Promise.all([
        redis.hgetall(keys.fair),
        redis.scard(keys.activeTenants),
      ]);
      const byTier: { tier: string; priority: string; jobs: number }[] = [];
      for (const [field, value] of Object.entries(fair)) {
        const f = parseTierDepthField(field);
        // jobs queued by a version that did not count them leave a count below zero (decisions "Metrics")
        if (f) byTier.push({ ...f, jobs: Math.max(0, Number(value) || 0) });
      }
      return { byTier, activeTenants };
    },

    async head(count) {
      if (count <= 0) return [];
      const ids = await redis.zrange(keys.queue, "0", String(count - 1));
      if (ids.length === 0) return [];
      const pipe = redis.pipeline();
      for (const id of ids) pipe.hmget(keys.job(id), "fam", "mdl", "work");
      const out: QueuedWork[] = [];
      for (const [err, value] of (await pipe.exec()) ?? []) {
        const [fam, mdl, work] = (err ? [] : value) as (string | null)[];
        // a job that ended between the two reads is left out
        if (!fam || !mdl) continue;
        const units = Number(work ?? 1);
        out.push({
          familyModel: formatFamilyModel(fam, mdl),
          work: Number.isFinite(units) && units > 0 ? units : 1,
        });
      }
      return out;
    },
  };
}
