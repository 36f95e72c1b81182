// Sync outputs held in Redis until their CAS object is durable: finish.lua stores a sync job's single
// output with the settle (one AOF entry: a crash keeps both or neither), the sync caller is answered
// at once, and the worker writes and fsyncs the object after, then drops the copy. Until then the
// copy is the object: reads fall back to it (verified against its digest), and a sweeper writes out
// copies a crashed worker left (docs/decisions.md "Sync route").
import { createHash } from "node:crypto";
import type { RedisClient } from "../infra/redis-client.js";
import { BlobCorruptError, type BlobStore } from "../core/ports.js";
import { createKeys, type Keys } from "./keys.js";

export interface SyncOutputs {
  /** The held bytes of `digest`, verified, or undefined when none is held. @throws BlobCorruptError */
  get(digest: string): Promise<Uint8Array | undefined>;
  has(digest: string): Promise<boolean>;
  /** Forgets the copy under every prefix: call only once the CAS object is written and fsynced. */
  drop(digest: string): Promise<void>;
  /** Digests held since before `before` (ms), at most `limit`, oldest first. */
  heldSince(before: number, limit: number): Promise<string[]>;
}

/** sha256-<hex> of the bytes: the CAS's name for them (ports.ts DIGEST_RE). */
export function casDigestOf(bytes: Uint8Array): string {
  return `sha256-${createHash("sha256").update(bytes).digest("hex")}`;
}

/**
 * Outputs held under `prefixes` (a worker: its pool's; an API: every pool's, since an object's
 * reader does not know which pool made it). The first prefix is the one `heldSince` lists.
 */
export function createSyncOutputs(redis: RedisClient, prefixes: readonly string[]): SyncOutputs {
  if (prefixes.length === 0) throw new RangeError("at least one prefix");
  const all: Keys[] = prefixes.map((p) => createKeys(p));
  const own = all[0]!;

  return {
    async get(digest) {
      for (const k of all) {
        const bytes = await redis.getBuffer(k.syncOutput(digest));
        if (bytes === null) continue;
        if (casDigestOf(bytes) !== digest) throw new BlobCorruptError(digest);
        return bytes;
      }
      return undefined;
    },
    async has(digest) {
      for (const k of all) if ((await redis.exists(k.syncOutput(digest))) === 1) return true;
      return false;
    },
    async drop(digest) {
      // Each prefix is its own slot (Cluster): one transaction per prefix.
      await Promise.all(
        all.map((k) => redis.multi().del(k.syncOutput(digest)).zrem(k.syncOutputs, digest).exec()),
      );
    },
    heldSince(before, limit) {
      return redis.zrangebyscore(own.syncOutputs, "-inf", `(${before}`, "LIMIT", 0, limit);
    },
  };
}

/**
 * The store as readers see it: a CAS object, or else the sync output held in Redis for it. A reader
 * that finds neither asks the CAS once more: the copy is dropped only after the object is written, so
 * an object written between the two first looks is there by then. Writes go to the CAS alone.
 */
export function withSyncOutputs(blobs: BlobStore, held: SyncOutputs): BlobStore {
  /** The CAS's answer, or else the held copy's, or else the CAS's again. */
  async function either<T>(cas: () => Promise<T | undefined>, copy: () => Promise<T | undefined>) {
    return (await cas()) ?? (await copy()) ?? (await cas());
  }
  const truthy = (b: boolean) => (b ? true : undefined);
  return {
    put: (bytes) => blobs.put(bytes),
    putStream: (chunks) => blobs.putStream(chunks),
    async has(digest) {
      const found = await either(
        async () => truthy(await blobs.has(digest)),
        async () => truthy(await held.has(digest)),
      );
      return found === true;
    },
    // A held output will be written (fresh) by its worker or the sweep: nothing to protect yet.
    async touch(digest) {
      const found = await either(
        async () => truthy(await blobs.touch(digest)),
        async () => truthy(await held.has(digest)),
      );
      return found === true;
    },
    get: (digest) =>
      either(
        () => blobs.get(digest),
        () => held.get(digest),
      ),
    open: (digest, range) =>
      either(
        () => blobs.open(digest, range),
        async () => {
          const bytes = await held.get(digest);
          return bytes && streamOf(bytes, range);
        },
      ),
  };
}

/** Size and a stream of `bytes` or of the inclusive range, as BlobStore.open answers. */
function streamOf(bytes: Uint8Array, range: { readonly start: number; readonly end: number } | undefined) {
  if (range && range.start >= bytes.byteLength) throw new RangeError("range starts beyond the object");
  const part = range ? bytes.subarray(range.start, Math.min(range.end, bytes.byteLength - 1) + 1) : bytes;
  return {
    size: bytes.byteLength,
    body: new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(part);
        controller.close();
      },
    }),
  };
}
