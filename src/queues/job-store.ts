// Reads of jobs, their event logs and queue totals (writes happen only in the scheduler's scripts).
import type { Redis } from "ioredis";
import { createKeys, priorityScores, WORK_RATE_FIELD } from "./keys.js";
import { decodeJob, PRIORITIES, type JobRecord, type Priority } from "../core/job.js";
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

export interface JobStore {
  /** The job and its position (-1 unless queued), read atomically; undefined when absent. */
  read(id: string): Promise<{ job: JobRecord; position: number } | undefined>;
  /** Stored events with seq > afterSeq, oldest first. */
  events(id: string, afterSeq: number, count?: number): Promise<StoredEvent[]>;
  totals(): Promise<QueueTotals>;
  /** Measured ms per work unit (EWMA, finish.lua) per `family/model`. */
  workRates(): Promise<Map<string, number>>;
  /** Attempts holding a slot, per backend that holds any. */
  leases(): Promise<Map<string, number>>;
  /** The first `count` jobs of the order (those that start next), oldest key first. */
  head(count: number): Promise<QueuedWork[]>;
}

export function createJobStore(redis: Redis, prefix: string, scripts: ScriptOptions = {}): JobStore {
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
      const r = (await run("read", keys.queue, [id])) as [string[], number] | [];
      if (r.length === 0) return undefined;
      const [flat, position] = r;
      const h: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
      return { job: decodeJob(h), position: Number(position) };
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
      const pipe = redis.pipeline();
      for (const p of PRIORITIES) {
        const { min, max } = priorityScores(p);
        pipe.zcount(keys.queue, min, `(${max}`);
      }
      const [res, held] = await Promise.all([pipe.exec(), leases()]);
      const depth = {} as Record<Priority, number>;
      PRIORITIES.forEach((p, i) => {
        const entry = res?.[i];
        if (!entry || entry[0]) throw entry?.[0] ?? new Error("pipeline failed");
        depth[p] = Number(entry[1]);
      });
      let running = 0;
      for (const n of held.values()) running += n;
      return { depth, running, leases: held };
    },

    async workRates() {
      const h = await redis.hgetall(keys.stats);
      const out = new Map<string, number>();
      for (const [k, v] of Object.entries(h))
        if (k.startsWith(WORK_RATE_FIELD)) out.set(k.slice(WORK_RATE_FIELD.length), Number(v));
      return out;
    },

    leases,

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
