// Writes out sync outputs held in Redis (queues/sync-outputs.ts): the worker's own, right after the
// settle that answered the caller, and, on a timer, any copy older than the sweep age that a crashed
// or failing writer left. A copy is dropped only once its CAS object is written and fsynced.
import type { Logger } from "pino";
import type { BlobStore } from "../core/ports.js";
import type { Clock } from "../core/time.js";
import type { SyncOutputs } from "../queues/sync-outputs.js";
import { every, within, type Periodic } from "./timers.js";

/** Resolves in the event loop's next check phase, after the promise jobs queued now. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Copies written out per sweep at most (the next sweep takes the rest). */
const SWEEP_BATCH = 50;

export interface SyncOutputWriterDeps {
  readonly blobs: Pick<BlobStore, "put">;
  readonly held: Pick<SyncOutputs, "get" | "drop" | "heldSince">;
  readonly clock: Clock;
  readonly logger: Logger;
  /** SYNC_OUTPUT_SWEEP_MS: the sweep's interval, and the age of a copy it writes out. */
  readonly sweepMs: number;
}

export interface SyncOutputWriter {
  /**
   * Writes the object and drops the held copy, in the background (a failure leaves it to the sweep),
   * from the next turn of the event loop: the caller's answer, which the settle just woke in this
   * process, goes out first (the write hashes the bytes again, synchronously).
   */
  writeOut(digest: string, bytes: Uint8Array): void;
  /** One sweep now: writes out the copies older than the sweep age; resolves with how many. */
  sweep(): Promise<number>;
  /** Starts the sweep every `sweepMs`. */
  start(): void;
  /** Stops the sweep and waits (at most `waitMs`) for the writes in flight; idempotent. */
  close(waitMs: number): Promise<void>;
}

export function createSyncOutputWriter(deps: SyncOutputWriterDeps): SyncOutputWriter {
  const inFlight = new Set<Promise<void>>();
  let sweep: Periodic | undefined;

  async function write(digest: string, bytes: Uint8Array): Promise<void> {
    const stored = await deps.blobs.put(bytes);
    // The digest was computed from these bytes; a store naming them otherwise keeps the copy.
    if (stored !== digest) throw new Error(`the CAS named ${digest} ${stored}`);
    await deps.held.drop(digest);
  }

  function track(p: Promise<void>): void {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }

  async function sweepOnce(): Promise<number> {
    const digests = await deps.held.heldSince(deps.clock() - deps.sweepMs, SWEEP_BATCH);
    for (const digest of digests) {
      const bytes = await deps.held.get(digest);
      // Written out and dropped meanwhile, or listed without bytes: drop the listing.
      if (!bytes) await deps.held.drop(digest);
      else await write(digest, bytes);
      deps.logger.debug({ digest }, "sync output written out by the sweep");
    }
    return digests.length;
  }

  return {
    writeOut(digest, bytes) {
      track(
        nextTurn()
          .then(() => write(digest, bytes))
          .catch((err: unknown) =>
            deps.logger.warn({ err, digest }, "sync output not written to the CAS yet; the sweep will"),
          ),
      );
    },
    sweep: sweepOnce,
    start() {
      sweep ??= every(
        deps.sweepMs,
        async () => {
          await sweepOnce();
        },
        deps.logger,
        "sync output sweep",
      );
    },
    async close(waitMs) {
      sweep?.stop();
      await within(
        Promise.all(inFlight).then(() => undefined),
        waitMs,
      );
    },
  };
}
