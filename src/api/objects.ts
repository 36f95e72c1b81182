// Object access: who may read a CAS object with a bearer token (its producer or uploader), and
// signed object URLs given back to the gateway as inputs.
import type { Redis } from "ioredis";
import { verifyObjectSignature } from "../core/url-signing.js";

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

/**
 * Whether `url` — a gateway object URL given as an `image`/`mask` (absolute, any host, or a bare
 * `/objects/<digest>?exp=…&sig=…` path) — carries a valid, unexpired signature for `digest`, with an
 * expiry the output URL lifetime `ttlS` allows (see verifyObjectSignature).
 */
export function isSignedObjectUrl(
  url: string,
  digest: string,
  urlKey: Uint8Array,
  nowS: number,
  ttlS: number,
): boolean {
  let query: URLSearchParams;
  try {
    query = new URL(url, "http://gateway.invalid").searchParams;
  } catch {
    return false;
  }
  return verifyObjectSignature(
    urlKey,
    digest,
    query.get("exp") ?? undefined,
    query.get("sig") ?? undefined,
    nowS,
    ttlS,
  );
}
