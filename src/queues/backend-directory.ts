// The backends as workers see them (capacity, models, health, breaker), published in Redis so the
// API can answer /models, ?backend=, /ready details, ETAs and sync admission without calling them.
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys } from "./keys.js";

export interface BackendState {
  readonly id: string;
  readonly engine: string;
  readonly capacity: number;
  readonly models: readonly string[];
  readonly streaming: boolean;
  readonly healthy: boolean;
  /** Breaker state per worker process that reported it. */
  readonly breakers: Readonly<Record<string, "closed" | "open" | "halfOpen">>;
  /** Epoch ms of the last report. */
  readonly updatedAt: number;
}

export interface BackendDirectory {
  publish(
    workerId: string,
    states: readonly Omit<BackendState, "breakers" | "updatedAt">[],
    breakers: Readonly<Record<string, string>>,
  ): Promise<void>;
  /** Removes a stopping worker's breaker reports. */
  forget(workerId: string): Promise<void>;
  /** Backends reported within `maxAgeMs` (older reports mean no live worker vouches for them). */
  read(maxAgeMs: number): Promise<BackendState[]>;
}

export function createBackendDirectory(
  redis: RedisClient,
  prefix: string,
  clock: () => number,
): BackendDirectory {
  const keys = createKeys(prefix);
  return {
    async publish(workerId, states, breakers) {
      if (states.length === 0) return;
      const now = clock();
      const pipe = redis.pipeline();
      for (const s of states) {
        pipe.hset(keys.registry, s.id, JSON.stringify({ ...s, updatedAt: now }));
        pipe.hset(
          keys.breakers(s.id),
          workerId,
          JSON.stringify({ state: breakers[s.id] ?? "closed", at: now }),
        );
      }
      await pipe.exec();
    },

    async forget(workerId) {
      const ids = await redis.hkeys(keys.registry);
      if (ids.length === 0) return;
      const pipe = redis.pipeline();
      for (const id of ids) pipe.hdel(keys.breakers(id), workerId);
      await pipe.exec();
    },

    async read(maxAgeMs) {
      const now = clock();
      const raw = await redis.hgetall(keys.registry);
      const states = Object.values(raw)
        .map((v) => JSON.parse(v) as Omit<BackendState, "breakers">)
        .filter((s) => now - s.updatedAt <= maxAgeMs);
      if (states.length === 0) return [];
      const pipe = redis.pipeline();
      for (const s of states) pipe.hgetall(keys.breakers(s.id));
      const res = (await pipe.exec()) ?? [];
      return states.map((s, i) => {
        const b = (res[i]?.[1] ?? {}) as Record<string, string>;
        const breakers: Record<string, "closed" | "open" | "halfOpen"> = {};
        const gone: string[] = [];
        for (const [worker, v] of Object.entries(b)) {
          const parsed = JSON.parse(v) as { state: "closed" | "open" | "halfOpen"; at: number };
          if (now - parsed.at <= maxAgeMs) breakers[worker] = parsed.state;
          // reports of workers long gone (killed before they could forget) are dropped
          else if (now - parsed.at > 10 * maxAgeMs) gone.push(worker);
        }
        if (gone.length > 0) void redis.hdel(keys.breakers(s.id), ...gone).catch(() => undefined);
        return { ...s, breakers };
      });
    },
  };
}
