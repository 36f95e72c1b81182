// Object grants: which customers may read a CAS object with their bearer token (its producer or
// uploader). A set per object, kept for the job retention; finish.lua grants a job's outputs to its
// customer in the same step that completes it.
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys } from "./keys.js";

export interface ObjectGrants {
  /** Lets `customerId` read `digest` for the retention from now (a later grant extends it). */
  grant(digest: string, customerId: string): Promise<void>;
  isOwner(digest: string, customerId: string): Promise<boolean>;
}

/**
 * Grants under `prefix`; `poolPrefixes`: the named pools' prefixes, where finish.lua grants their
 * jobs' outputs (docs/decisions.md "Pools"): a read asks each (one command per tag).
 */
export function createObjectGrants(
  redis: RedisClient,
  prefix: string,
  retentionS: number,
  poolPrefixes: readonly string[] = [],
): ObjectGrants {
  const keys = createKeys(prefix);
  const poolKeys = poolPrefixes.map((p) => createKeys(p));
  return {
    async grant(digest, customerId) {
      const key = keys.objectOwners(digest);
      await redis.multi().sadd(key, customerId).expire(key, retentionS).exec();
    },
    async isOwner(digest, customerId) {
      if ((await redis.sismember(keys.objectOwners(digest), customerId)) === 1) return true;
      if (poolKeys.length === 0) return false;
      const found = await Promise.all(
        poolKeys.map((k) => redis.sismember(k.objectOwners(digest), customerId)),
      );
      return found.some((n) => n === 1);
    },
  };
}
