// Where every process publishes its metrics for the API processes to serve (README "Metrics and
// logs"; docs/decisions.md "Metrics"): a snapshot (opaque JSON) per process, written on a timer with
// an expiry, so a process that dies without a word drops out of GET /metrics when its last snapshot
// expires. Layout (keys.ts): `metricsProcesses`, a sorted set of process ids scored by the expiry of
// their last snapshot, and one `metricsSnapshot(id)` string per process with that same expiry (Redis
// drops it itself); each publication drops the ids that expired, in the same transaction.
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys } from "./keys.js";

/** Most snapshots one read returns (the newest first): a bound on the work of one scrape. */
export const MAX_SNAPSHOTS = 1_000;

export interface MetricsStore {
  /** Publishes `processId`'s snapshot for `ttlMs`. */
  publish(processId: string, snapshot: string, ttlMs: number): Promise<void>;
  /** Removes `processId`'s snapshot now (a stopping process). */
  withdraw(processId: string): Promise<void>;
  /** The snapshots that have not expired, at most {@link MAX_SNAPSHOTS}. */
  read(): Promise<string[]>;
}

/** Throws the first error of a transaction's replies (exec resolves with them). */
function checked(replies: [Error | null, unknown][] | null): void {
  if (replies === null) throw new Error("transaction aborted");
  for (const [err] of replies) if (err) throw err;
}

export function createMetricsStore(redis: RedisClient, prefix: string, clock: () => number): MetricsStore {
  const keys = createKeys(prefix);
  return {
    async publish(processId, snapshot, ttlMs) {
      const now = clock();
      checked(
        await redis
          .multi()
          .set(keys.metricsSnapshot(processId), snapshot, "PX", ttlMs)
          .zadd(keys.metricsProcesses, now + ttlMs, processId)
          .zremrangebyscore(keys.metricsProcesses, "-inf", `(${now}`)
          .exec(),
      );
    },

    async withdraw(processId) {
      checked(
        await redis
          .multi()
          .del(keys.metricsSnapshot(processId))
          .zrem(keys.metricsProcesses, processId)
          .exec(),
      );
    },

    async read() {
      const ids = await redis.zrevrangebyscore(
        keys.metricsProcesses,
        "+inf",
        clock(),
        "LIMIT",
        0,
        MAX_SNAPSHOTS,
      );
      if (ids.length === 0) return [];
      const values = await redis.mget(ids.map((id) => keys.metricsSnapshot(id)));
      return values.filter((v): v is string => typeof v === "string");
    },
  };
}
