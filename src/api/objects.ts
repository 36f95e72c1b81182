// Signed object URLs given back to the gateway as inputs (who may read an object with a bearer token
// is src/queues/object-grants.ts).
import { verifyObjectSignature } from "../core/url-signing.js";

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
