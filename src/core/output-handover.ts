// The output of a sync attempt, handed from the worker to the API of the same process (roles `api`
// and `worker` in one process, as `npm start` runs them): the bytes the worker stored in the CAS and
// hashed itself, taken once by the sync route that waits for them, instead of reading the object
// back from disk and hashing it again (docs/decisions.md "Sync route"). Bounded in bytes and in age;
// whatever is not taken is simply forgotten (the object is in the CAS).
import type { Clock } from "./time.js";

export interface OutputHandover {
  /** Holds `bytes`, stored in the CAS under `digest`, for the API of this process. */
  hold(digest: string, bytes: Uint8Array): void;
  /** The bytes held for `digest` (and forgets them), or undefined: read the object from the CAS. */
  take(digest: string): Uint8Array | undefined;
}

export interface OutputHandoverOptions {
  readonly clock: Clock;
  /** Bytes held at most; the oldest go first. */
  readonly maxBytes: number;
  /** Held bytes older than this are forgotten (the API of this process would have taken them). */
  readonly maxAgeMs: number;
}

/**
 * The bounds a process runs with: a sync caller's API takes its bytes within milliseconds of the
 * settle, so a few seconds and a few outputs' worth of bytes are plenty.
 */
export const OUTPUT_HANDOVER_BOUNDS = { maxBytes: 64 * 1024 * 1024, maxAgeMs: 10_000 } as const;

export function createOutputHandover(o: OutputHandoverOptions): OutputHandover {
  // Insertion order is age order: the oldest entries are first.
  const held = new Map<string, { bytes: Uint8Array; at: number }>();
  let total = 0;

  const drop = (digest: string, bytes: Uint8Array) => {
    held.delete(digest);
    total -= bytes.byteLength;
  };
  /** Forgets entries past their age, then the oldest while over the byte bound. */
  const trim = () => {
    const oldest = o.clock() - o.maxAgeMs;
    for (const [digest, e] of held) {
      if (e.at > oldest && total <= o.maxBytes) break;
      drop(digest, e.bytes);
    }
  };

  return {
    hold(digest, bytes) {
      if (bytes.byteLength > o.maxBytes) return;
      const before = held.get(digest);
      if (before) drop(digest, before.bytes);
      held.set(digest, { bytes, at: o.clock() });
      total += bytes.byteLength;
      trim();
    },
    take(digest) {
      trim();
      const e = held.get(digest);
      if (!e) return undefined;
      drop(digest, e.bytes);
      return e.bytes;
    },
  };
}
