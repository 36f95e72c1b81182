// Per-test Redis access: a client on the run's redis-server and a unique key prefix, cleaned up after.
import { Redis } from "ioredis";
import { inject } from "vitest";
import { randomAlnum } from "../../src/core/ids.js";
import { createRedisConnector, type RedisConnector } from "../../src/infra/redis-connector.js";

export function redisUrl(): string {
  return inject("redisUrl");
}

/** What a role in a test opens its connections with: the run's redis-server (or `url`), default timeouts. */
export function testRedisConnector(url: string = redisUrl()): RedisConnector {
  return createRedisConnector({ kind: "url", url }, {});
}

export function uniquePrefix(): string {
  return `{t${randomAlnum(10)}}`;
}

export interface TestRedis {
  readonly client: Redis;
  readonly prefix: string;
  cleanup(): Promise<void>;
}

export function testRedis(): TestRedis {
  const client = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const prefix = uniquePrefix();
  return {
    client,
    prefix,
    async cleanup() {
      let cursor = "0";
      do {
        // the tag without its closing brace: the pools' tags too (`{tXXX-name}`, core/pools.ts)
        const [next, keys] = await client.scan(cursor, "MATCH", `${prefix.slice(0, -1)}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await client.del(...keys);
      } while (cursor !== "0");
      client.disconnect();
    },
  };
}
