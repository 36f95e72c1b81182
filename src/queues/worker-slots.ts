// The slots each worker process announces, so the API counts only capacity a live worker can run:
// every worker writes its slot count and the backends it serves on its housekeeping timer, with an
// expiry of its lock time (LOCK_MS). A worker killed without a word stops counting when its
// announcement expires, as its leases do.
//
// Layout (keys.ts): `workers`, a sorted set of worker ids scored by the expiry of their last
// announcement, and one `workerSlots(id)` string per worker (JSON {slots, backends}) set with that
// same expiry (Redis drops it itself). The set outlives the announcements, so "some worker announced
// and all are gone" (no capacity) differs from "no worker ever announced" (workers of a version that
// does not announce: capacity is not capped). Each announcement drops the ids that expired more than
// {@link FORGET_AFTER_LOCKS} lock times ago, in one command (no read-then-write).
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys } from "./keys.js";

/** Lock times after its expiry that a worker's id stays in the set (then "never announced" again). */
export const FORGET_AFTER_LOCKS = 10;

export interface WorkerAnnouncement {
  readonly workerId: string;
  /** The worker's slots (WORKER_CONCURRENCY). */
  readonly slots: number;
  /** Ids of the backends it serves. */
  readonly backends: readonly string[];
}

export interface WorkerRoster {
  /** Workers whose announcement has not expired. */
  readonly live: readonly WorkerAnnouncement[];
  /** Some worker announced within the forget horizon (live or not). */
  readonly announced: boolean;
}

export interface WorkerSlots {
  /** Announces `workerId`'s slots and backends for `ttlMs` (LOCK_MS). */
  announce(workerId: string, a: Omit<WorkerAnnouncement, "workerId">, ttlMs: number): Promise<void>;
  /** A stopping worker's slots stop counting now (its id stays as a worker that announced). */
  withdraw(workerId: string): Promise<void>;
  read(): Promise<WorkerRoster>;
}

/** Throws the first error of a transaction's replies (exec resolves with them). */
function checked(replies: [Error | null, unknown][] | null): void {
  if (replies === null) throw new Error("transaction aborted");
  for (const [err] of replies) if (err) throw err;
}

export function createWorkerSlots(redis: RedisClient, prefix: string, clock: () => number): WorkerSlots {
  const keys = createKeys(prefix);
  return {
    async announce(workerId, a, ttlMs) {
      const now = clock();
      const value = JSON.stringify({ slots: a.slots, backends: a.backends });
      checked(
        await redis
          .multi()
          .set(keys.workerSlots(workerId), value, "PX", ttlMs)
          .zadd(keys.workers, now + ttlMs, workerId)
          .zremrangebyscore(keys.workers, "-inf", `(${now - FORGET_AFTER_LOCKS * ttlMs}`)
          .exec(),
      );
    },

    async withdraw(workerId) {
      checked(
        await redis
          .multi()
          .del(keys.workerSlots(workerId))
          .zadd(keys.workers, "XX", clock(), workerId)
          .exec(),
      );
    },

    async read() {
      const ids = await redis.zrange(keys.workers, "0", "-1");
      if (ids.length === 0) return { live: [], announced: false };
      const values = await redis.mget(ids.map((id) => keys.workerSlots(id)));
      const live: WorkerAnnouncement[] = [];
      ids.forEach((workerId, i) => {
        const v = values[i];
        if (v == null) return; // expired (or withdrawn)
        const parsed = JSON.parse(v) as { slots?: unknown; backends?: unknown };
        const slots = Number(parsed.slots);
        const backends = Array.isArray(parsed.backends) ? parsed.backends.map(String) : [];
        if (Number.isFinite(slots) && slots > 0) live.push({ workerId, slots, backends });
      });
      return { live, announced: true };
    },
  };
}
