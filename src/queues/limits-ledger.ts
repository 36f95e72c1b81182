// The deployment-wide ledger of a tier's limits across pools (docs/decisions.md "Pools"): queued
// places (`max_queued`, QUEUE_MAX) and running permits (`max_running`) of every pool's jobs, under
// REDIS_PREFIX — on a Redis Cluster on another master than most pools, so no script touches both. A
// place or permit is taken here before the pool step that needs it and released after the pool step
// that ends it; between the two only the strict side can be left over, which the sweeper repairs.
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys, type Keys } from "./keys.js";
import { refusalOf } from "./script-codes.js";
import { defineScripts } from "./scripts.js";

/** A ledger entry's kind: a queued place or a running permit. */
export type LimitKind = "q" | "r";

/**
 * The spelling of a ledger entry (lim_*.lua split it the same way): its kind, its customer (no tab in
 * CUSTOMER_ID_RE) and its member — a job id (the place of its admission), an attempt id (the place
 * it was put back with after that attempt) or `<job id>@<n>` (a permit).
 */
export const limitEntry = (kind: LimitKind, customer: string, member: string): string =>
  `${kind}\t${customer}\t${member}`;

/** The parts of a ledger entry; undefined for anything else. */
export function parseLimitEntry(
  entry: string,
): { kind: LimitKind; customer: string; member: string } | undefined {
  const m = /^([qr])\t([^\t]+)\t(.+)$/.exec(entry);
  return m ? { kind: m[1] as LimitKind, customer: m[2]!, member: m[3]! } : undefined;
}

/** The job id a member names (before its `|token` or `@n`): its pool is PoolRouter.ofJob of it. */
export const jobOfMember = (member: string): string => /^[^|@]+/.exec(member)?.[0] ?? member;

/** The score of an entry the sweeper saw held: past any `due` bound, never looked at again. */
export const LIMIT_ENTRY_HELD = 1e15;

export type TakeResult =
  { readonly ok: true } | { readonly ok: false; readonly scope: "tenant" | "all"; readonly queued: number };

export interface LimitsLedger {
  readonly keys: Keys;
  /**
   * Takes the queued place of job `jobId` of `customer` before its pool admits it, unless the
   * tenant holds `tenantMax` places or everyone `queueMax` (-1: no limit). Idempotent.
   */
  take(
    customer: string,
    jobId: string,
    tenantMax: number,
    queueMax: number,
    now: number,
  ): Promise<TakeResult>;
  /** Adds entries without a limit check (places for requeues, which are never refused). */
  add(entries: readonly string[], now: number): Promise<void>;
  /** Up to `limit` minus the permits held of `customer`, one per job of `jobIds` (in order): their members. */
  claim(customer: string, limit: number, jobIds: readonly string[], now: number): Promise<string[]>;
  /** Releases entries (idempotent); a released permit wakes every worker's broker. */
  release(entries: readonly string[]): Promise<number>;
  /** Entries taken before `before` (ms) that the sweeper has not seen held, oldest first. */
  due(before: number, count: number): Promise<{ entry: string; score: number }[]>;
  /** Re-scores entries that still exist (the sweeper's verdicts; never re-adds one). */
  rescore(pairs: readonly { entry: string; score: number }[]): Promise<void>;
  /** The counts of `customer` (queued places, permits) and everyone's queued places. */
  counts(customer: string): Promise<{ queued: number; running: number; all: number }>;
  /** Takes the sweeper's lock for `ms` unless another process holds it (`owner`'s own: true). */
  lockSweep(owner: string, ms: number): Promise<boolean>;
}

export function createLimitsLedger(redis: RedisClient, prefix: string): LimitsLedger {
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix);
  const route = keys.limitLedger;
  const CHUNK = 500;
  return {
    keys,

    async take(customer, jobId, tenantMax, queueMax, now) {
      const [code = 0, queued = 0] = (await run("lim_take", route, [
        customer,
        jobId,
        tenantMax,
        queueMax,
        now,
      ])) as number[];
      const refusal = refusalOf("lim_take", Number(code));
      if (refusal === undefined) return { ok: true };
      return { ok: false, scope: refusal === "queue_full" ? "tenant" : "all", queued: Number(queued) };
    },

    async add(entries, now) {
      for (let i = 0; i < entries.length; i += CHUNK)
        await run("lim_add", route, [now, ...entries.slice(i, i + CHUNK)]);
    },

    async claim(customer, limit, jobIds, now) {
      if (jobIds.length === 0 || limit <= 0) return [];
      return (await run("lim_claim", route, [customer, limit, now, ...jobIds])) as string[];
    },

    async release(entries) {
      let n = 0;
      for (let i = 0; i < entries.length; i += CHUNK)
        n += Number(await run("lim_release", route, entries.slice(i, i + CHUNK)));
      return n;
    },

    async due(before, count) {
      const flat = await redis.zrangebyscore(route, "-inf", before, "WITHSCORES", "LIMIT", 0, count);
      const out: { entry: string; score: number }[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) out.push({ entry: flat[i]!, score: Number(flat[i + 1]) });
      return out;
    },

    async rescore(pairs) {
      if (pairs.length === 0) return;
      await redis.zadd(route, "XX", ...pairs.flatMap((p) => [p.score, p.entry]));
    },

    async counts(customer) {
      const [q, r, all] = await redis.hmget(keys.limitCounts, `q:${customer}`, `r:${customer}`, "q");
      return { queued: Number(q ?? 0), running: Number(r ?? 0), all: Number(all ?? 0) };
    },

    async lockSweep(owner, ms) {
      if ((await redis.set(keys.limitSweepLock, owner, "PX", ms, "NX")) === "OK") return true;
      // this process's own lock (its last pass): it may sweep again
      return (await redis.get(keys.limitSweepLock)) === owner;
    },
  };
}
