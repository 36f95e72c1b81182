// RFC 6962 Merkle hashing and proofs (src/core/merkle.ts): the transparency-dev/merkle project's
// published vectors, then properties against a naive recursive MTH written here with node:crypto
// (independent of the module's @noble/hashes and of its generator/verifier).
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EMPTY_ROOT,
  TreeBuilder,
  consistencyProof,
  fromHex,
  inclusionProof,
  leafHash,
  nodeHash,
  rootOf,
  segmentedSubtreeHashes,
  toHex,
  verifyConsistency,
  verifyInclusion,
  type Hash,
  type SubtreeHashes,
} from "../../src/core/merkle.js";

const sha = (...parts: Uint8Array[]): Hash =>
  new Uint8Array(createHash("sha256").update(Buffer.concat(parts)).digest());

/** MTH(D[n]) straight from RFC 6962 §2.1, over leaf data. */
function naiveRoot(data: readonly Uint8Array[]): Hash {
  if (data.length === 0) return sha();
  if (data.length === 1) return sha(Uint8Array.of(0), data[0] as Uint8Array);
  let k = 1;
  while (k * 2 < data.length) k *= 2;
  return sha(Uint8Array.of(1), naiveRoot(data.slice(0, k)), naiveRoot(data.slice(k)));
}

/**
 * A SubtreeHashes over leaf data by the same recursion as {@link naiveRoot}, memoized per range (every
 * proof of a size-300 tree reads the same ranges).
 */
function naiveSource(
  data: readonly Uint8Array[],
): SubtreeHashes & { sync(start: number, end: number): Hash } {
  const memo = new Map<string, Hash>();
  const mth = (start: number, end: number): Hash => {
    const key = `${start}:${end}`;
    let h = memo.get(key);
    if (h === undefined) {
      const n = end - start;
      if (n <= 1) {
        h = naiveRoot(data.slice(start, end));
      } else {
        let k = 1;
        while (k * 2 < n) k *= 2;
        h = sha(Uint8Array.of(1), mth(start, start + k), mth(start + k, end));
      }
      memo.set(key, h);
    }
    return h;
  };
  return { sync: mth, hash: (start, end) => Promise.resolve(mth(start, end)) };
}

const dataOf = (n: number): Uint8Array[] =>
  Array.from({ length: n }, (_, i) => new TextEncoder().encode(`leaf ${i}`));

const hx = (s: string): Hash => fromHex(s);

// transparency-dev/merkle testonly/constants.go and proof/verify_test.go
const TD_LEAVES = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
].map(hx);
const TD_ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
const TD_LEAF_HASHES = [
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
  "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
  "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
  "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
  "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
  "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];
const TD_INCLUSION: { index: number; size: number; proof: string[] }[] = [
  { index: 0, size: 1, proof: [] },
  { index: 0, size: 2, proof: ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"] },
  { index: 1, size: 2, proof: ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"] },
  { index: 2, size: 3, proof: ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"] },
  {
    index: 1,
    size: 5,
    proof: [
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
  {
    index: 0,
    size: 8,
    proof: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
];
const TD_CONSISTENCY: { from: number; to: number; proof: string[] }[] = [
  { from: 1, to: 1, proof: [] },
  {
    from: 1,
    to: 8,
    proof: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    from: 2,
    to: 5,
    proof: [
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
  {
    from: 6,
    to: 8,
    proof: [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
  {
    from: 6,
    to: 7,
    proof: [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
];
const SOME_HASH = hx("abacaba000000000000000000000000000000000000000000060061e00123456");

const flipped = (proof: readonly Hash[], i: number, byte: number, bit: number): Hash[] =>
  proof.map((h, j) => {
    if (j !== i) return h;
    const c = Uint8Array.from(h);
    c[byte] = (c[byte] as number) ^ (1 << bit);
    return c;
  });

describe("RFC 6962 hashing (transparency-dev/merkle vectors)", () => {
  it("hashes leaves with the 0x00 prefix and nodes with 0x01", () => {
    expect(TD_LEAVES.map((l) => toHex(leafHash(l)))).toEqual(TD_LEAF_HASHES);
    expect(toHex(nodeHash(hx(TD_LEAF_HASHES[0] as string), hx(TD_LEAF_HASHES[1] as string)))).toBe(
      TD_ROOTS[2],
    );
    expect(toHex(EMPTY_ROOT)).toBe(TD_ROOTS[0]);
  });

  it("gives the published root at every size 0..8, with rootOf and with TreeBuilder", () => {
    const hashes = TD_LEAVES.map(leafHash);
    const b = new TreeBuilder();
    for (let n = 0; n <= 8; n++) {
      expect(toHex(rootOf(hashes.slice(0, n)))).toBe(TD_ROOTS[n]);
      expect(b.size).toBe(n);
      expect(toHex(b.root())).toBe(TD_ROOTS[n]);
      if (n < 8) b.append(hashes[n] as Hash);
    }
  });

  it("makes the published inclusion proofs, and verifies them but none of their corruptions", async () => {
    const src = naiveSource(TD_LEAVES);
    for (const v of TD_INCLUSION) {
      const proof = await inclusionProof(v.index, v.size, src);
      expect(proof.map(toHex)).toEqual(v.proof);
      const leaf = leafHash(TD_LEAVES[v.index] as Uint8Array);
      const root = hx(TD_ROOTS[v.size] as string);
      expect(verifyInclusion(leaf, v.index, v.size, proof, root)).toBe(true);
      const probes: [number, number, Hash, Hash[], Hash][] = [
        [v.index - 1, v.size, leaf, proof, root],
        [v.index + 1, v.size, leaf, proof, root],
        [v.index ^ 2, v.size, leaf, proof, root],
        [v.index, v.size * 2, leaf, proof, root],
        [v.index, Math.floor(v.size / 2), leaf, proof, root],
        [v.index, v.size, sha(new TextEncoder().encode("WrongLeaf")), proof, root],
        [v.index, v.size, leaf, proof, EMPTY_ROOT],
        [v.index, v.size, leaf, proof, SOME_HASH],
        [v.index, v.size, leaf, [...proof, new Uint8Array(0)], root],
        [v.index, v.size, leaf, [...proof, root], root],
        [v.index, v.size, leaf, [new Uint8Array(0), ...proof], root],
        [v.index, v.size, leaf, [root, ...proof], root],
        ...proof.map((_, i): [number, number, Hash, Hash[], Hash] => [
          v.index,
          v.size,
          leaf,
          flipped(proof, i, 0, 3),
          root,
        ]),
      ];
      if (proof.length > 0) probes.push([v.index, v.size, leaf, proof.slice(0, -1), root]);
      if (proof.length > 1) {
        probes.push([v.index, v.size, leaf, [proof[0] as Hash, SOME_HASH, ...proof.slice(1)], root]);
      }
      for (const [i, n, l, p, r] of probes) expect(verifyInclusion(l, i, n, p, r)).toBe(false);
    }
  });

  it("makes the published consistency proofs, and verifies them but none of their corruptions", async () => {
    const src = naiveSource(TD_LEAVES);
    for (const v of TD_CONSISTENCY) {
      const proof = await consistencyProof(v.from, v.to, src);
      expect(proof.map(toHex)).toEqual(v.proof);
      const r1 = hx(TD_ROOTS[v.from] as string);
      const r2 = hx(TD_ROOTS[v.to] as string);
      expect(verifyConsistency(v.from, v.to, r1, r2, proof)).toBe(true);
      if (proof.length === 0) continue;
      const probes: [number, number, Hash, Hash, Hash[]][] = [
        [v.from - 1, v.to, r1, r2, proof],
        [v.from + 1, v.to, r1, r2, proof],
        [v.from ^ 2, v.to, r1, r2, proof],
        [v.from, v.to * 2, r1, r2, proof],
        [v.from, Math.floor(v.to / 2), r1, r2, proof],
        [v.from, v.to, SOME_HASH, r2, proof],
        [v.from, v.to, r1, SOME_HASH, proof],
        [v.from, v.to, r2, r1, proof],
        [v.from, v.to, r1, r2, []],
        [v.from, v.to, r1, r2, [...proof, new Uint8Array(0)]],
        [v.from, v.to, r1, r2, [...proof, r1]],
        [v.from, v.to, r1, r2, [...proof, r2]],
        [v.from, v.to, r1, r2, [new Uint8Array(0), ...proof]],
        [v.from, v.to, r1, r2, [r1, ...proof]],
        [v.from, v.to, r1, r2, [r2, ...proof]],
        [v.from, v.to, r1, r2, [proof[0] as Hash, ...proof]],
        [v.from, v.to, r1, r2, proof.slice(0, -1)],
        ...proof.map((_, i): [number, number, Hash, Hash, Hash[]] => [
          v.from,
          v.to,
          r1,
          r2,
          flipped(proof, i, 0, 4),
        ]),
      ];
      for (const [f, t, a, b, p] of probes) expect(verifyConsistency(f, t, a, b, p)).toBe(false);
    }
  });

  it("treats the trivial consistency cases strictly", () => {
    const r1 = hx(TD_ROOTS[1] as string);
    // from 0: only the empty tree's root, with an empty proof
    expect(verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])).toBe(true);
    expect(verifyConsistency(0, 1, EMPTY_ROOT, r1, [])).toBe(true);
    expect(verifyConsistency(0, 1, r1, r1, [])).toBe(false);
    expect(verifyConsistency(0, 1, EMPTY_ROOT, r1, [EMPTY_ROOT])).toBe(false);
    // from = to: equal roots, empty proof
    expect(verifyConsistency(1, 1, r1, r1, [])).toBe(true);
    expect(verifyConsistency(1, 1, r1, EMPTY_ROOT, [])).toBe(false);
    expect(verifyConsistency(1, 1, r1, r1, [EMPTY_ROOT])).toBe(false);
    // time travel
    expect(verifyConsistency(2, 1, r1, r1, [])).toBe(false);
    // an inclusion proof for an index or size out of range
    for (const [i, n] of [
      [0, 0],
      [1, 0],
      [2, 1],
      [-1, 4],
      [0.5, 4],
    ] as const) {
      expect(verifyInclusion(SOME_HASH, i, n, [], EMPTY_ROOT)).toBe(false);
    }
    expect(verifyInclusion(r1, 0, 1, [], r1)).toBe(true);
    expect(verifyInclusion(new Uint8Array(0), 0, 1, [], r1)).toBe(false);
  });
});

describe("inclusion proofs against a naive MTH", { timeout: 120_000 }, () => {
  const N = 300;
  const data = dataOf(N);
  const leaves = data.map(leafHash);
  const src = naiveSource(data);
  const roots = Array.from({ length: N + 1 }, (_, n) => naiveRoot(data.slice(0, n)));

  it("verify for every index of every size 1..300", async () => {
    let checked = 0;
    for (let n = 1; n <= N; n++) {
      expect(toHex(rootOf(leaves.slice(0, n)))).toBe(toHex(roots[n] as Hash));
      for (let i = 0; i < n; i++) {
        const proof = await inclusionProof(i, n, src);
        if (!verifyInclusion(leaves[i] as Hash, i, n, proof, roots[n] as Hash))
          throw new Error(`${i} of ${n}`);
        checked++;
      }
    }
    expect(checked).toBe((N * (N + 1)) / 2);
  });

  it("fail with any flipped proof bit, another index, or another size (with that size's root)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 2, max: N })
          .chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1), fc.nat(), fc.nat(31), fc.nat(7))),
        fc.integer({ min: 1, max: N }),
        fc.nat(N - 1),
        async ([n, i, which, byte, bit], otherSize, otherIndex) => {
          const proof = await inclusionProof(i, n, src);
          const leaf = leaves[i] as Hash;
          const root = roots[n] as Hash;
          expect(verifyInclusion(leaf, i, n, proof, root)).toBe(true);
          expect(verifyInclusion(leaf, i, n, flipped(proof, which % proof.length, byte, bit), root)).toBe(
            false,
          );
          if (otherIndex !== i) expect(verifyInclusion(leaf, otherIndex, n, proof, root)).toBe(false);
          if (otherSize !== n)
            expect(verifyInclusion(leaf, i, otherSize, proof, roots[otherSize] as Hash)).toBe(false);
          expect(verifyInclusion(leaves[(i + 1) % n] as Hash, i, n, proof, root)).toBe(false);
          expect(verifyInclusion(leaf, i, n, proof.slice(0, -1), root)).toBe(false);
          expect(verifyInclusion(leaf, i, n, [...proof, SOME_HASH], root)).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("consistency proofs against a naive MTH", { timeout: 120_000 }, () => {
  const N = 64;
  const data = dataOf(N);
  const src = naiveSource(data);
  const roots = Array.from({ length: N + 1 }, (_, n) => naiveRoot(data.slice(0, n)));

  it("verify for every pair 0 ≤ from ≤ to ≤ 64, and fail with any flipped bit or other size", async () => {
    for (let to = 0; to <= N; to++) {
      for (let from = 0; from <= to; from++) {
        const proof = await consistencyProof(from, to, src);
        const r1 = roots[from] as Hash;
        const r2 = roots[to] as Hash;
        if (!verifyConsistency(from, to, r1, r2, proof)) throw new Error(`${from} → ${to}`);
        for (let i = 0; i < proof.length; i++) {
          for (const [byte, bit] of [
            [0, 0],
            [31, 7],
            [(from * 7 + to) % 32, (from + i) % 8],
          ] as const) {
            if (verifyConsistency(from, to, r1, r2, flipped(proof, i, byte, bit))) {
              throw new Error(`flipped ${i}/${byte}/${bit} of ${from} → ${to} verified`);
            }
          }
        }
        // another tree's sizes, with that tree's true roots
        for (const [f, t] of [
          [from - 1, to],
          [from + 1, to],
          [from, to - 1],
          [from, to + 1],
        ] as const) {
          if (f < 0 || t > N || f > t || (f === from && t === to)) continue;
          if (proof.length === 0 && (f === t || f === 0)) continue; // an empty proof is right there
          if (verifyConsistency(f, t, roots[f] as Hash, roots[t] as Hash, proof)) {
            throw new Error(`proof ${from} → ${to} verified as ${f} → ${t}`);
          }
        }
        if (from > 0 && from < to && verifyConsistency(from, to, r2, r1, proof)) throw new Error("swapped");
      }
    }
  });

  it("fails when the later tree rewrote an earlier leaf (a fork)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 2, max: N })
          .chain((to) => fc.tuple(fc.constant(to), fc.integer({ min: 1, max: to - 1 }))),
        fc.nat(),
        async ([to, from], pick) => {
          const forgedAt = pick % from;
          const forked = data.map((d, i) => (i === forgedAt ? new TextEncoder().encode(`forged ${i}`) : d));
          const proof = await consistencyProof(from, to, naiveSource(forked));
          expect(
            verifyConsistency(from, to, roots[from] as Hash, naiveRoot(forked.slice(0, to)), proof),
          ).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("segmentedSubtreeHashes", { timeout: 120_000 }, () => {
  const N = 70;
  const data = dataOf(N);
  const leaves = data.map(leafHash);
  const naive = naiveSource(data);

  function segmented(S: number, opts: { sealedUpTo?: number; cache?: Map<string, Hash> } = {}) {
    const full = Math.floor(N / S);
    const sealedUpTo = opts.sealedUpTo ?? full;
    const reads = { roots: 0, leaves: 0 };
    const src = segmentedSubtreeHashes({
      segmentSize: S,
      sealedRoot(k) {
        reads.roots++;
        return Promise.resolve(k < sealedUpTo ? naiveRoot(data.slice(k * S, (k + 1) * S)) : undefined);
      },
      segmentLeaves(k) {
        reads.leaves++;
        return Promise.resolve(leaves.slice(k * S, Math.min(N, (k + 1) * S)));
      },
      ...(opts.cache === undefined ? {} : { cache: opts.cache }),
    });
    return { src, reads };
  }

  for (const S of [1, 2, 4, 16]) {
    it(`agrees with the naive MTH on every range, segment size ${S}`, async () => {
      for (const sealedUpTo of [Math.floor(N / S), Math.floor(N / S / 2)]) {
        const { src } = segmented(S, { sealedUpTo });
        for (let s = 0; s <= N; s++) {
          for (let e = s; e <= N; e++) {
            if (toHex(await src.hash(s, e)) !== toHex(naive.sync(s, e))) {
              throw new Error(`[${s}, ${e}) with S=${S}, ${sealedUpTo} sealed`);
            }
          }
        }
      }
    });
  }

  it("answers a whole sealed segment from its root, not its leaves", async () => {
    const { src, reads } = segmented(16);
    await src.hash(0, 64);
    expect(reads).toEqual({ roots: 4, leaves: 0 });
  });

  it("remembers subtrees of sealed segments only, when given a cache", async () => {
    const cache = new Map<string, Hash>();
    const { src, reads } = segmented(4, { sealedUpTo: 12, cache });
    const first = await inclusionProof(69, 70, src);
    const rootsRead = reads.roots;
    expect(rootsRead).toBeGreaterThan(0);
    expect([...cache.keys()].every((k) => Number(k.split(":")[1]) <= 48)).toBe(true);
    const again = await inclusionProof(69, 70, src);
    expect(again.map(toHex)).toEqual(first.map(toHex));
    expect(reads.roots).toBeLessThan(2 * rootsRead);
    expect(verifyInclusion(leaves[69] as Hash, 69, 70, again, naiveRoot(data))).toBe(true);
  });

  it("refuses a range past the leaves, and a segment size that is no power of two", async () => {
    const { src } = segmented(16);
    await expect(src.hash(0, 71)).rejects.toThrow(RangeError);
    await expect(src.hash(5, 4)).rejects.toThrow(RangeError);
    expect(() =>
      segmentedSubtreeHashes({
        segmentSize: 12,
        sealedRoot: () => Promise.resolve(undefined),
        segmentLeaves: () => Promise.resolve([]),
      }),
    ).toThrow(RangeError);
  });
});

describe("hex", () => {
  it("round-trips and refuses what is not hex", () => {
    expect(toHex(fromHex("00ffAB"))).toBe("00ffab");
    expect(() => fromHex("abc")).toThrow(TypeError);
    expect(() => fromHex("zz")).toThrow(TypeError);
  });
});

describe("TreeBuilder.resume", () => {
  it("continues the same tree from a compact range, at every split of every size to 130", () => {
    const leaves = Array.from({ length: 130 }, (_, i) => leafHash(Uint8Array.of(i, i >> 8)));
    for (let n = 1; n <= leaves.length; n++) {
      const whole = rootOf(leaves.slice(0, n));
      for (let m = 0; m <= n; m++) {
        const first = new TreeBuilder();
        for (const l of leaves.slice(0, m)) first.append(l);
        const range = first.compactRange();
        const b = TreeBuilder.resume(m, range);
        for (const l of leaves.slice(m, n)) b.append(l);
        expect(toHex(b.root())).toBe(toHex(whole));
        expect(b.size).toBe(n);
      }
    }
  });

  it("refuses a range that does not fit the size", () => {
    const b = new TreeBuilder();
    for (let i = 0; i < 5; i++) b.append(leafHash(Uint8Array.of(i)));
    expect(b.compactRange()).toHaveLength(2);
    expect(() => TreeBuilder.resume(6, b.compactRange())).not.toThrow();
    expect(() => TreeBuilder.resume(7, b.compactRange())).toThrow(RangeError);
    expect(() => TreeBuilder.resume(5, [b.compactRange()[0]!, new Uint8Array(31)])).toThrow(RangeError);
    // the range is copied: changing what was handed out changes nothing
    const range = b.compactRange();
    range[0]!.fill(0);
    expect(toHex(b.compactRange()[0]!)).not.toBe(toHex(range[0]!));
  });
});
