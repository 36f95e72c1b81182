// What in Redis references CAS objects: live jobs (admit.lua, lib.lua release_objects) and pins, with
// the pin API for anything else that must keep objects (the ledger, the audit log) and the
// collector's "is it still referenced?" question.
import type { RedisClient } from "../infra/redis-client.js";
import { DIGEST_RE } from "../core/ports.js";
import { createKeys } from "./keys.js";
import { defineScripts } from "./scripts.js";

/** Most digests one {@link CasRefs.referenced} call takes (one script call, a few thousand arguments). */
export const MAX_REFS_BATCH = 2_000;

export interface CasRefs {
  /**
   * Keeps `digests` from the CAS collector until `untilMs` (ms since the epoch), plus the CAS
   * retention (CAS_RETENTION_S) the collector adds to every reference. A pin never shortens an
   * existing one (ZADD GT): pinning until an earlier time than a job or another caller did changes
   * nothing. One command, atomic.
   *
   * A pin protects objects that exist when it lands. Pin an object while something else still holds
   * it (a retained job's output, which is pinned until the job's retention ends), or pin first and
   * then check with `BlobStore.touch` that it is still stored.
   * @throws RangeError for a digest that is not `sha256-<64 hex>` or a time that is not finite.
   */
  pin(digests: readonly string[], untilMs: number): Promise<void>;
  /**
   * One boolean per digest (in order): whether a queued or running job references it, a pin whose
   * time is at or after `cutoffMs`, or the audit log (its segment blobs, kept for good). Also drops up to `prune` pins older than `cutoffMs`.
   * @throws RangeError for more than {@link MAX_REFS_BATCH} digests.
   */
  referenced(digests: readonly string[], cutoffMs: number, prune?: number): Promise<boolean[]>;
}

export function createCasRefs(redis: RedisClient, prefix: string): CasRefs {
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix);
  return {
    async pin(digests, untilMs) {
      if (!Number.isFinite(untilMs)) throw new RangeError("untilMs must be a finite time in ms");
      if (digests.length === 0) return;
      const args: (string | number)[] = [];
      for (const digest of digests) {
        if (typeof digest !== "string" || !DIGEST_RE.test(digest)) {
          throw new RangeError(`not a digest: ${String(digest)}`);
        }
        args.push(Math.floor(untilMs), digest);
      }
      await redis.zadd(keys.casPins, "GT", ...args);
    },

    async referenced(digests, cutoffMs, prune = 0) {
      if (digests.length > MAX_REFS_BATCH) {
        throw new RangeError(`at most ${MAX_REFS_BATCH} digests per call (got ${digests.length})`);
      }
      const reply = (await run("refs", keys.queue, [Math.floor(cutoffMs), prune, ...digests])) as number[];
      return digests.map((_, i) => Number(reply[i]) === 1);
    },
  };
}
