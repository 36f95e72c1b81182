// The audit log as the API reads it (API.md §3 "Receipts"): receipts, consistency proofs, the latest
// checkpoint, the segments and the public keys. Proofs come from segmentedSubtreeHashes over the
// tree a checkpoint signed: sealed segments' roots from Redis and their leaves from their CAS blobs
// (both never change, so they are remembered in LRUs), the open segment's leaves from audit:tail.
import type { AuditRecord } from "../core/audit-record.js";
import type { Jwk, SignedCheckpoint } from "../core/checkpoint.js";
import { createLru } from "../core/lru.js";
import {
  consistencyProof,
  fromHex,
  inclusionProof,
  leafHash,
  segmentedSubtreeHashes,
  toHex,
  type Hash,
  type SubtreeHashes,
} from "../core/merkle.js";
import type { BlobStore } from "../core/ports.js";
import { receiptOf, type Receipt } from "../core/receipt.js";
import type { AuditStore } from "../queues/audit-store.js";

/** One segment's leaves as far as a read needs them: the canonical records and their leaf hashes. */
interface Leaves {
  readonly lines: readonly string[];
  readonly hashes: readonly Hash[];
}

/** A segment as GET /audit/segments lists it. */
export interface SegmentInfo {
  readonly segment: number;
  readonly digest: string;
  /** Leaves in it (S for a sealed one). */
  readonly count: number;
  /** The sealed segment's root (hex); absent for the open one. */
  readonly root?: string;
}

export interface AuditReads {
  /** The receipt of a job's leaf in the latest checkpoint; undefined when no checkpoint covers it yet. */
  receipt(jobId: string): Promise<Receipt | undefined>;
  /** The latest signed checkpoint, undefined before the first. */
  checkpoint(): Promise<SignedCheckpoint | undefined>;
  /** The RFC 6962 consistency proof (hex) between the trees of `from` and `to` ≤ the committed size. */
  consistency(from: number, to: number): Promise<string[]>;
  /**
   * Up to `limit` segments from `from` on, the committed size and the segment size, and where the
   * next page starts (absent on the last).
   */
  segments(
    from: number,
    limit: number,
  ): Promise<{ size: number; segmentSize: number; segments: SegmentInfo[]; next?: number }>;
  /** Every public key that signed checkpoints, by kid. */
  jwks(): Promise<{ keys: Jwk[] }>;
}

export interface AuditReadsOptions {
  readonly store: AuditStore;
  readonly blobs: Pick<BlobStore, "get">;
  readonly segmentSize: number;
  /** Sealed segments whose leaves are remembered (each about S × 500 bytes); default 32. */
  readonly cachedSegments?: number;
}

const utf8 = new TextEncoder();

/** The leaves of a segment blob: its lines (each leaf is followed by "\n"). */
function linesOf(blob: Uint8Array): string[] {
  const text = new TextDecoder().decode(blob);
  return text === "" ? [] : text.slice(0, -1).split("\n");
}

const leavesOf = (lines: readonly string[]): Leaves => ({
  lines,
  hashes: lines.map((l) => leafHash(utf8.encode(l))),
});

export function createAuditReads(o: AuditReadsOptions): AuditReads {
  const S = o.segmentSize;
  const sealedLeaves = createLru<number, Leaves>(o.cachedSegments ?? 32);
  // the open segment's first m leaves at the latest checkpoint: one entry per checkpoint size
  const openLeaves = createLru<string, Leaves>(4);
  const sealedRoots = createLru<number, Hash>(65_536);
  const subtrees = createLru<string, Hash>(4_096);

  /** A segment's blob as committed now (segment k's digest only grows in leaves). */
  async function blobLines(k: number): Promise<string[]> {
    // a partial blob replaced meanwhile may be collected: its successor holds the same leaves and more
    for (let tries = 0; ; tries++) {
      const [digest] = await o.store.segments(k, 1);
      if (digest === undefined) throw new Error(`audit segment ${k} is not in the log`);
      const blob = await o.blobs.get(digest);
      if (blob !== undefined) return linesOf(blob);
      if (tries >= 2) throw new Error(`audit segment ${k}'s blob ${digest} is missing from the CAS`);
    }
  }

  async function sealed(k: number): Promise<Leaves> {
    const hit = sealedLeaves.get(k);
    if (hit) return hit;
    const lines = await blobLines(k);
    if (lines.length !== S)
      throw new Error(`sealed audit segment ${k} holds ${lines.length} leaves, not ${S}`);
    const leaves = leavesOf(lines);
    sealedLeaves.set(k, leaves);
    return leaves;
  }

  /** The first `m` leaves of segment k, which was open at the tree size asked about. */
  async function openPrefix(k: number, m: number): Promise<Leaves> {
    const key = `${k}:${m}`;
    const hit = openLeaves.get(key);
    if (hit) return hit;
    const tail = await o.store.openTail(k, m);
    // sealed since: its blob holds the leaves; else the tail does
    const lines = tail ?? (await blobLines(k)).slice(0, m);
    if (lines.length !== m) throw new Error(`audit segment ${k} holds ${lines.length} leaves, not ${m}`);
    const leaves = leavesOf(lines);
    openLeaves.set(key, leaves);
    return leaves;
  }

  /** Segment k's leaves in the tree of `size` leaves (size ≤ the committed size). */
  const leavesAt = (k: number, size: number): Promise<Leaves> =>
    (k + 1) * S <= size ? sealed(k) : openPrefix(k, size - k * S);

  async function rootOfSealed(k: number): Promise<Hash> {
    const hit = sealedRoots.get(k);
    if (hit) return hit;
    const [hex] = await o.store.roots(k, 1);
    if (hex === undefined) throw new Error(`audit segment ${k} is not sealed`);
    const root = fromHex(hex);
    sealedRoots.set(k, root);
    return root;
  }

  /** Subtree hashes of the tree of `size` leaves. */
  const treeOf = (size: number): SubtreeHashes =>
    segmentedSubtreeHashes({
      segmentSize: S,
      sealedRoot: async (k) => ((k + 1) * S <= size ? rootOfSealed(k) : undefined),
      segmentLeaves: async (k) => (await leavesAt(k, size)).hashes,
      cache: subtrees,
    });

  const parseCheckpoint = (json: string | undefined) =>
    json === undefined ? undefined : (JSON.parse(json) as SignedCheckpoint);

  return {
    async receipt(jobId) {
      const head = await o.store.head(jobId);
      const checkpoint = parseCheckpoint(head.checkpoint);
      if (head.leaf === undefined || checkpoint === undefined || head.leaf >= checkpoint.tree_size) {
        return undefined;
      }
      const size = checkpoint.tree_size;
      const k = Math.floor(head.leaf / S);
      const [leaves, proof] = await Promise.all([
        leavesAt(k, size),
        inclusionProof(head.leaf, size, treeOf(size)),
      ]);
      const record = JSON.parse(leaves.lines[head.leaf - k * S]!) as AuditRecord;
      return receiptOf(record, head.leaf, proof, checkpoint);
    },

    async checkpoint() {
      return parseCheckpoint((await o.store.head()).checkpoint);
    },

    async consistency(from, to) {
      return (await consistencyProof(from, to, treeOf(to))).map(toHex);
    },

    async segments(from, limit) {
      const { size, digests, roots } = await o.store.segmentPage(from, limit);
      const next = from + digests.length;
      return {
        size,
        segmentSize: S,
        ...(digests.length > 0 && next < Math.ceil(size / S) ? { next } : {}),
        segments: digests.map((digest, i) => {
          const segment = from + i;
          const root = roots[i];
          return {
            segment,
            digest,
            count: Math.max(0, Math.min(S, size - segment * S)),
            ...(root === undefined ? {} : { root }),
          };
        }),
      };
    },

    async jwks() {
      const keys = (await o.store.keys()).map((json) => JSON.parse(json) as Jwk);
      keys.sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
      return { keys };
    },
  };
}
