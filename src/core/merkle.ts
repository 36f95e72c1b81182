// RFC 6962 / RFC 9162 §2.1 Merkle tree hashing over SHA-256: leaf and node hashes, the tree head,
// a compact-range builder, inclusion and consistency proofs (made from any source of subtree hashes),
// and their verification by the RFC's bit-walking algorithms — deliberately not the generator run
// backwards, so a bug in one cannot hide in the other.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";

/** A SHA-256 digest: 32 bytes. */
export type Hash = Uint8Array;

export const HASH_BYTES = 32;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** MTH({}) = SHA-256() — the root of the empty tree. */
export const EMPTY_ROOT: Hash = sha256(new Uint8Array(0));

/** SHA-256(0x00 ‖ leaf): the hash of one leaf's bytes. */
export function leafHash(leaf: Uint8Array): Hash {
  return sha256.create().update(LEAF_PREFIX).update(leaf).digest();
}

/** SHA-256(0x01 ‖ left ‖ right): an interior node. */
export function nodeHash(left: Hash, right: Hash): Hash {
  return sha256.create().update(NODE_PREFIX).update(left).update(right).digest();
}

/** The largest power of two strictly below `n` (n ≥ 2): RFC 6962's split point k. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Constant-time equality of two byte strings (false when the lengths differ). */
export function equalHashes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/**
 * A tree grown one leaf hash at a time, holding only its compact range (the roots of the perfect
 * subtrees it splits into, largest first): O(log n) memory, O(1) amortized per append.
 */
export class TreeBuilder {
  /** Roots of the perfect subtrees, left to right, and their heights (strictly decreasing). */
  readonly #hashes: Hash[] = [];
  readonly #heights: number[] = [];
  #size = 0;

  /** Appends the hash of the next leaf (see {@link leafHash}). */
  append(leaf: Hash): void {
    if (!(leaf instanceof Uint8Array) || leaf.length !== HASH_BYTES) {
      throw new TypeError("append expects a 32-byte leaf hash");
    }
    let hash = leaf;
    let height = 0;
    while (this.#heights.length > 0 && this.#heights[this.#heights.length - 1] === height) {
      this.#heights.pop();
      hash = nodeHash(this.#hashes.pop() as Hash, hash);
      height++;
    }
    this.#hashes.push(hash);
    this.#heights.push(height);
    this.#size++;
  }

  /** Leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * The compact range of the leaves so far: the roots of the perfect subtrees the tree splits into,
   * largest first (one per 1 bit of the size) — copies, for {@link TreeBuilder.resume}.
   */
  compactRange(): Hash[] {
    return this.#hashes.map((h) => h.slice());
  }

  /**
   * A builder that already holds `size` leaves, given their compact range (what
   * {@link TreeBuilder.compactRange} returned at that size): appending continues the same tree.
   * @throws RangeError unless `hashes` has one 32-byte hash per 1 bit of `size`.
   */
  static resume(size: number, hashes: readonly Hash[]): TreeBuilder {
    assertCount(size, "size");
    const heights: number[] = [];
    for (let h = 0, rest = size; rest > 0; h++, rest = Math.floor(rest / 2)) {
      if (rest % 2 === 1) heights.unshift(h);
    }
    if (hashes.length !== heights.length || !hashes.every(isHash)) {
      throw new RangeError(
        `a tree of ${size} leaves has a compact range of ${heights.length} 32-byte hashes`,
      );
    }
    const b = new TreeBuilder();
    b.#hashes.push(...hashes.map((h) => h.slice()));
    b.#heights.push(...heights);
    b.#size = size;
    return b;
  }

  /** MTH of the leaves appended so far (the empty tree's root when there are none). */
  root(): Hash {
    const hs = this.#hashes;
    if (hs.length === 0) return EMPTY_ROOT;
    let r = hs[hs.length - 1] as Hash;
    for (let i = hs.length - 2; i >= 0; i--) r = nodeHash(hs[i] as Hash, r);
    return r;
  }
}

/** MTH over leaf hashes (RFC 9162 §2.1.1); MTH({}) = SHA-256(""). */
export function rootOf(leaves: readonly Hash[]): Hash {
  const b = new TreeBuilder();
  for (const leaf of leaves) b.append(leaf);
  return b.root();
}

/** MTH(D[start:end]) of one tree, however the caller finds it. */
export interface SubtreeHashes {
  hash(start: number, end: number): Promise<Hash>;
}

/** A half-open leaf range [start, end). */
export type LeafRange = readonly [start: number, end: number];

function assertCount(n: number, name: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer`);
}

/**
 * The subtrees whose hashes make the inclusion proof of leaf `index` in a tree of `size` leaves
 * (RFC 9162 §2.1.3.1 PATH), in proof order (nearest the leaf first).
 * @throws RangeError unless 0 ≤ index < size (integers).
 */
export function inclusionRanges(index: number, size: number): LeafRange[] {
  assertCount(index, "index");
  assertCount(size, "size");
  if (index >= size) throw new RangeError(`index ${index} is not below size ${size}`);
  const out: LeafRange[] = [];
  // Walk down from the whole tree; each level adds the sibling subtree. Collected root-first, then
  // reversed, since the proof lists the sibling nearest the leaf first.
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (index < start + k) {
      out.push([start + k, end]);
      end = start + k;
    } else {
      out.push([start, start + k]);
      start += k;
    }
  }
  return out.reverse();
}

/**
 * The subtrees whose hashes make the consistency proof from the tree of `from` leaves to the tree of
 * `to` leaves (RFC 9162 §2.1.4.1 PROOF/SUBPROOF), in proof order. Empty when from is 0 or from = to.
 * @throws RangeError unless 0 ≤ from ≤ to (integers).
 */
export function consistencyRanges(from: number, to: number): LeafRange[] {
  assertCount(from, "from");
  assertCount(to, "to");
  if (from > to) throw new RangeError(`from ${from} is above to ${to}`);
  if (from === 0 || from === to) return [];
  const out: LeafRange[] = [];
  // SUBPROOF(m, D[start:end], b), unrolled: each step appends one hash after the recursive part, so
  // collect outermost-first and reverse at the end.
  let m = from;
  let start = 0;
  let end = to;
  let whole = true;
  while (m !== end - start) {
    const n = end - start;
    const k = splitPoint(n);
    if (m <= k) {
      out.push([start + k, end]);
      end = start + k;
    } else {
      out.push([start, start + k]);
      m -= k;
      start += k;
      whole = false;
    }
  }
  if (!whole) out.push([start, end]);
  return out.reverse();
}

/** The inclusion proof of leaf `index` in the tree of `size` leaves, from `src`. */
export async function inclusionProof(index: number, size: number, src: SubtreeHashes): Promise<Hash[]> {
  return Promise.all(inclusionRanges(index, size).map(([s, e]) => src.hash(s, e)));
}

/** The consistency proof from the tree of `from` leaves to the tree of `to` leaves, from `src`. */
export async function consistencyProof(from: number, to: number, src: SubtreeHashes): Promise<Hash[]> {
  return Promise.all(consistencyRanges(from, to).map(([s, e]) => src.hash(s, e)));
}

function isHash(h: unknown): h is Hash {
  return h instanceof Uint8Array && h.length === HASH_BYTES;
}

/**
 * Whether `proof` shows the leaf hash `leaf` at `index` in the tree of `size` leaves whose root is
 * `root` (RFC 9162 §2.1.3.2). False (never a throw) for any malformed input.
 */
export function verifyInclusion(
  leaf: Hash,
  index: number,
  size: number,
  proof: readonly Hash[],
  root: Hash,
): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (!isHash(leaf) || !isHash(root) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  // Division instead of bit shifts: sizes may pass 2^32.
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalHashes(r, root);
}

/**
 * Whether `proof` shows that the tree of `from` leaves with root `fromRoot` is a prefix of the tree of
 * `to` leaves with root `toRoot` (RFC 9162 §2.1.4.2). From 0: the proof is empty and `fromRoot` is the
 * empty tree's root. From = to: the proof is empty and the roots are equal. False (never a throw) for
 * any malformed input.
 */
export function verifyConsistency(
  from: number,
  to: number,
  fromRoot: Hash,
  toRoot: Hash,
  proof: readonly Hash[],
): boolean {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || from > to) return false;
  if (!isHash(fromRoot) || !isHash(toRoot) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  if (from === 0) return proof.length === 0 && equalHashes(fromRoot, EMPTY_ROOT);
  if (from === to) return proof.length === 0 && equalHashes(fromRoot, toRoot);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(from) ? [fromRoot, ...proof] : [...proof];
  let fn = from - 1;
  let sn = to - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Hash;
  let sr = path[0] as Hash;
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Hash;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalHashes(fr, fromRoot) && equalHashes(sr, toRoot);
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

/** What {@link segmentedSubtreeHashes} reads. */
export interface SegmentSource {
  /** Leaves per segment: a power of two. */
  readonly segmentSize: number;
  /** The root of sealed segment k; undefined when k is not sealed (it is computed from its leaves). */
  sealedRoot(k: number): Promise<Hash | undefined>;
  /** The leaf hashes of segment k that exist (all S of a sealed one; the open one's so far). */
  segmentLeaves(k: number): Promise<readonly Hash[]>;
  /**
   * Optional memo of subtree hashes made only of sealed segments (they never change), keyed
   * `start:end` — an LRU (core/lru.ts) fits. Without it, a range of m segments reads m roots.
   */
  readonly cache?: {
    get(key: string): Hash | undefined;
    set(key: string, value: Hash): void;
  };
}

/**
 * A {@link SubtreeHashes} over fixed-size segments (segmentSize a power of two): a whole sealed
 * segment's range answers from `sealedRoot(k)`; a range inside one segment is computed from
 * `segmentLeaves(k)`; larger ranges split as RFC 6962 does (those from proofs are segment-aligned).
 * A range reaching past the leaves that exist rejects with a RangeError.
 */
export function segmentedSubtreeHashes(o: SegmentSource): SubtreeHashes {
  const S = o.segmentSize;
  if (!Number.isSafeInteger(S) || S < 1 || !isPowerOfTwo(S)) {
    throw new RangeError("segmentSize must be a power of two");
  }
  const cache = o.cache;

  async function inSegment(start: number, end: number): Promise<{ hash: Hash; sealed: boolean }> {
    const k = Math.floor(start / S);
    const base = k * S;
    if (start === base && end === base + S) {
      const sealed = await o.sealedRoot(k);
      if (sealed !== undefined) return { hash: sealed, sealed: true };
    }
    const leaves = await o.segmentLeaves(k);
    if (end - base > leaves.length) {
      throw new RangeError(`leaves ${start}..${end} reach past segment ${k}'s ${leaves.length} leaves`);
    }
    return { hash: rootOf(leaves.slice(start - base, end - base)), sealed: false };
  }

  async function walk(start: number, end: number): Promise<{ hash: Hash; sealed: boolean }> {
    if (Math.floor(start / S) === Math.floor((end - 1) / S)) return inSegment(start, end);
    const key = `${start}:${end}`;
    const hit = cache?.get(key);
    if (hit !== undefined) return { hash: hit, sealed: true };
    const k = splitPoint(end - start);
    const [l, r] = await Promise.all([walk(start, start + k), walk(start + k, end)]);
    const hash = nodeHash(l.hash, r.hash);
    const sealed = l.sealed && r.sealed;
    if (sealed) cache?.set(key, hash);
    return { hash, sealed };
  }

  return {
    async hash(start, end) {
      assertCount(start, "start");
      assertCount(end, "end");
      if (start > end) throw new RangeError(`start ${start} is above end ${end}`);
      if (start === end) return EMPTY_ROOT;
      return (await walk(start, end)).hash;
    },
  };
}

/** Lowercase hex of a hash. */
export const toHex = (h: Hash): string => bytesToHex(h);

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * The bytes of a hex string (either case).
 * @throws TypeError for an odd length or a non-hex character.
 */
export const fromHex = (s: string): Hash => {
  if (typeof s !== "string" || !HEX_RE.test(s)) throw new TypeError("expected an even-length hex string");
  return hexToBytes(s);
};
