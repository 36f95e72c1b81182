// API keys for the benchmarks (`--auth apikey`): made through the store before the run, one per
// customer, and put back after each FLUSHALL (the same keys, so the load generator's script stays valid).
import type { Redis } from "ioredis";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { createApiKeyStore } from "../../src/queues/api-key-store.js";
import { createKeys } from "../../src/queues/keys.js";

/** API_KEY_PEPPER of a bench API process run with `--auth apikey`. */
export const BENCH_API_KEY_PEPPER = "bench-api-key-pepper-0123456789-abcdefghijkl";

export interface BenchApiKeys {
  /** One key per customer, in the order given. */
  readonly tokens: readonly string[];
  /** Writes the keys' records back (call after a FLUSHALL, before the next round). */
  restore(): Promise<void>;
}

/** Makes one key of `tier` per customer on `redis` under `prefix` and snapshots their records. */
export async function createBenchApiKeys(
  redis: Redis,
  prefix: string,
  customers: readonly string[],
  tier: string,
): Promise<BenchApiKeys> {
  const store = createApiKeyStore({
    redis,
    prefix,
    clock: () => Date.now(),
    tiers: [...Object.keys(DEFAULT_TIERS), tier],
    pepper: new TextEncoder().encode(BENCH_API_KEY_PEPPER),
  });
  const keys = createKeys(prefix);
  const tokens: string[] = [];
  const names = [keys.apiKeys];
  for (const customerId of customers) {
    const { key, info } = await store.create({ customerId, tier });
    tokens.push(key);
    names.push(keys.apiKey(info.prefix), keys.apiKeysOf(customerId));
  }
  const dumps = await Promise.all(names.map(async (n) => [n, await redis.dumpBuffer(n)] as const));
  return {
    tokens,
    async restore() {
      const p = redis.pipeline();
      for (const [name, dump] of dumps) if (dump !== null) p.restore(name, 0, dump, "REPLACE");
      await p.exec();
    },
  };
}
