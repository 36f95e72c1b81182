// Object ownership: who may read a CAS object with a bearer token (its producer or uploader).
import type { Redis } from "ioredis";

export function objectOwnersKey(prefix: string, digest: string): string {
  return `${prefix}:own:${digest}`;
}

export function createObjectGrants(redis: Redis, prefix: string, retentionS: number) {
  return {
    async grant(digest: string, customerId: string): Promise<void> {
      const key = objectOwnersKey(prefix, digest);
      await redis.multi().sadd(key, customerId).expire(key, retentionS).exec();
    },
    async isOwner(digest: string, customerId: string): Promise<boolean> {
      return (await redis.sismember(objectOwnersKey(prefix, digest), customerId)) === 1;
    },
  };
}
