// The CAS garbage collector: walks the store a bounded page per pass, one pass at a time across
// processes (a Redis lock), and removes objects that no retained job or pin references any more
// once they are older than the grace period (docs/decisions.md "CAS garbage collection").
import { randomBytes } from "node:crypto";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import type { BlobSweeper } from "../core/ports.js";
import type { Clock } from "../core/time.js";
import { createCasRefs, MAX_REFS_BATCH } from "./cas-refs.js";
import { createKeys } from "./keys.js";
import { defineScripts } from "./scripts.js";

export interface CasCollectorOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly sweeper: BlobSweeper;
  readonly clock: Clock;
  /**
   * An object written (or put, or touched) less than this long ago is never removed: whoever
   * stored it is about to reference it (CAS_GC_GRACE_S).
   */
  readonly graceMs: number;
  /** How long an object stays after its last reference (a job's retention, a pin) ends (CAS_RETENTION_S). */
  readonly keepAfterMs: number;
  /** Store entries examined per pass, at most {@link MAX_REFS_BATCH} (CAS_GC_BATCH). */
  readonly batch: number;
  /** Lifetime of the lock should its holder die mid-pass; default 60 s. */
  readonly lockMs?: number;
  /** Pause between the passes of one walk; default 1 s (or the interval, when shorter). */
  readonly pageGapMs?: number;
  readonly logger?: Pick<Logger, "debug" | "info" | "warn">;
  /**
   * The named pools' prefixes (docs/decisions.md "Pools"): their jobs reference objects under their
   * own tags (cas:live, cas:pin), so an object is referenced if any of them or `prefix` says so.
   */
  readonly poolPrefixes?: readonly string[];
}

export interface PassResult {
  /** False when another process held the lock (nothing was done). */
  readonly ran: boolean;
  /** Objects the pass looked at. */
  readonly examined: number;
  readonly removed: readonly string[];
  /** Whether this pass finished a walk over the whole store (the next one starts from the beginning). */
  readonly walkDone: boolean;
}

export interface CasCollector {
  /** One bounded pass, if no other process is running one. */
  runPass(): Promise<PassResult>;
  /**
   * Runs passes until stopped: a walk's pages `pageGapMs` apart, walks `intervalMs` apart. The first
   * pass comes after one interval. Errors are logged and the next pass comes after an interval.
   */
  start(intervalMs: number): void;
  /**
   * Stops the timer and waits for a pass in progress, at most `waitMs` (default 5 s: a pass stuck on
   * an unreachable Redis must not hold up a shutdown; objects it set aside are put back by a later
   * pass). Idempotent.
   */
  stop(waitMs?: number): Promise<void>;
}

/** Expired pins dropped per pass (the set holds only current pins; see refs.lua). */
const PRUNE_PER_PASS = 1_000;

/**
 * The collector over `sweeper` (the store) and the references in Redis under `prefix`.
 * An object is removed only when, at the same moment, it was last written more than `graceMs` ago,
 * no queued or running job references it, and no pin reaches within `keepAfterMs` of now. The check
 * is made again after the object was taken out of writers' reach (BlobSweeper.removeUnused), so a
 * concurrent put, touch, admission or pin keeps it.
 */
export function createCasCollector(opts: CasCollectorOptions): CasCollector {
  const keys = createKeys(opts.prefix);
  const refSets = [opts.prefix, ...(opts.poolPrefixes ?? [])].map((p) => createCasRefs(opts.redis, p));
  // One script call per tag (a Cluster refuses keys of several tags in one script).
  const refs = {
    async referenced(digests: readonly string[], cutoffMs: number, prune?: number): Promise<boolean[]> {
      const each = await Promise.all(refSets.map((r) => r.referenced(digests, cutoffMs, prune)));
      return digests.map((_, i) => each.some((r) => r[i] === true));
    },
  };
  const run = defineScripts(opts.redis, opts.prefix);
  const lockMs = opts.lockMs ?? 60_000;
  if (!Number.isSafeInteger(opts.batch) || opts.batch < 1 || opts.batch > MAX_REFS_BATCH) {
    throw new RangeError(`batch must be an integer in 1..${MAX_REFS_BATCH}`);
  }

  async function pass(): Promise<PassResult> {
    const token = randomBytes(9).toString("base64url");
    const taken = await opts.redis.set(keys.casGcLock, token, "PX", lockMs, "NX");
    if (taken !== "OK") return { ran: false, examined: 0, removed: [], walkDone: false };
    try {
      const now = opts.clock();
      const writtenBefore = now - opts.graceMs;
      const cursor = (await opts.redis.get(keys.casGcCursor)) ?? undefined;
      const { objects, next } = await opts.sweeper.scan(cursor, opts.batch, writtenBefore);
      const old = objects.filter((o) => o.modifiedMs < writtenBefore).map((o) => o.digest);
      // Asked even with nothing old: the call also drops expired pins.
      const held = await refs.referenced(old, now - opts.keepAfterMs, PRUNE_PER_PASS);
      const candidates = old.filter((_, i) => !held[i]);
      const removed =
        candidates.length === 0
          ? []
          : await opts.sweeper.removeUnused(candidates, writtenBefore, async (aside) =>
              (await refs.referenced(aside, opts.clock() - opts.keepAfterMs)).map((r) => !r),
            );
      if (next === undefined) await opts.redis.del(keys.casGcCursor);
      else await opts.redis.set(keys.casGcCursor, next);
      if (removed.length > 0) opts.logger?.info({ removed: removed.length }, "cas objects collected");
      return { ran: true, examined: objects.length, removed, walkDone: next === undefined };
    } finally {
      await run("unlock", keys.queue, [token]).catch(() => undefined);
    }
  }

  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> | undefined;
  let stopped = false;

  return {
    runPass: pass,

    start(intervalMs) {
      const pageGapMs = Math.min(intervalMs, opts.pageGapMs ?? 1_000);
      const schedule = (ms: number) => {
        if (stopped) return;
        timer = setTimeout(tick, ms);
        timer.unref();
      };
      const tick = () => {
        current = pass().then(
          (r) => schedule(r.ran && !r.walkDone ? pageGapMs : intervalMs),
          (err: unknown) => {
            opts.logger?.warn({ err }, "cas collection pass failed");
            schedule(intervalMs);
          },
        );
      };
      schedule(intervalMs);
    },

    async stop(waitMs = 5_000) {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (current === undefined) return;
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([current, new Promise((r) => (bound = setTimeout(r, waitMs)))]);
      clearTimeout(bound);
    },
  };
}
