// The checks of the offline verify (src/core/audit-log-check.ts) on their own: the segment plan from
// the index, the leaves of one segment blob, and 1,000 sampled bytes of a blob flipped one at a time is caught either
// as a bad leaf or by the checkpoint root it no longer matches.
import { describe, expect, it } from "vitest";
import { planSegments, segmentLeaves } from "../../src/core/audit-log-check.js";
import { auditRecordBytes } from "../../src/core/audit-record.js";
import { leafHash, rootOf, toHex } from "../../src/core/merkle.js";
import { segmentBlob, syntheticRecord } from "../helpers/audit-log.js";

const d = (n: number): string => `sha256-${n.toString(16).padStart(64, "0")}`;
const index = (counts: number[]) => new Map(counts.map((count, k) => [k, { digest: d(k + 1), count }]));

describe("planSegments", () => {
  it("reads the segment size off the index and numbers the leaves", () => {
    expect(planSegments(index([4, 4, 2]))).toEqual({
      segmentSize: 4,
      segments: [
        { segment: 0, digest: d(1), count: 4, first: 0 },
        { segment: 1, digest: d(2), count: 4, first: 4 },
        { segment: 2, digest: d(3), count: 2, first: 8 },
      ],
    });
    expect(planSegments(index([3]))).toMatchObject({ segmentSize: undefined });
    expect(planSegments(new Map())).toEqual({ segmentSize: undefined, segments: [] });
  });

  it("refuses gaps, sealed segments not full or not a power of two, and an oversize last one", () => {
    const gap = new Map([
      [0, { digest: d(1), count: 4 }],
      [2, { digest: d(2), count: 4 }],
    ]);
    expect(planSegments(gap)).toMatchObject({ segment: 1 });
    expect(planSegments(index([4, 3, 2]))).toMatchObject({ segment: 1, leaf_index: 4 });
    expect(planSegments(index([3, 3]))).toMatchObject({ segment: 0 });
    expect(planSegments(index([4, 5]))).toMatchObject({ segment: 1 });
    expect(planSegments(index([8]), 4)).toMatchObject({ segment: 0 });
    expect(planSegments(index([4, 4]), 8)).toMatchObject({
      segment: 0,
      what: expect.stringMatching(/not 8/) as string,
    });
  });
});

describe("segmentLeaves", () => {
  const records = Array.from({ length: 16 }, (_, i) => syntheticRecord(i));
  const leaves = records.map(auditRecordBytes);
  const seg = { segment: 2, digest: d(1), count: 16, first: 32 };

  it("splits a blob into its records", () => {
    const out = segmentLeaves(segmentBlob(leaves), seg);
    expect(Array.isArray(out) && out.map((l) => [l.index, l.record.job_id])).toEqual(
      records.map((r, i) => [32 + i, r.job_id]),
    );
  });

  it("names the leaf that is not canonical, not a record, or missing, and a blob with more", () => {
    const spaced = [...leaves];
    spaced[3] = Buffer.from(JSON.stringify(records[3], null, 1).replace(/\n/g, ""));
    expect(segmentLeaves(segmentBlob(spaced), seg)).toMatchObject({
      leaf_index: 35,
      job_id: records[3]?.job_id,
    });
    const extra = [...leaves];
    extra[5] = auditRecordBytes({ ...(records[5] as object), prompt: "a cat" } as never);
    expect(segmentLeaves(segmentBlob(extra), seg)).toMatchObject({
      leaf_index: 37,
      what: expect.stringMatching(/prompt|Unrecognized/) as string,
    });
    expect(segmentLeaves(segmentBlob(leaves.slice(0, 15)), seg)).toMatchObject({ leaf_index: 47 });
    expect(segmentLeaves(segmentBlob([...leaves, leaves[0] as Uint8Array]), seg)).toMatchObject({
      leaf_index: 48,
    });
  });
});

describe("every sampled byte of a segment blob flipped", () => {
  it("is a bad leaf or changes the segment's root (1,000 positions)", () => {
    const leaves = Array.from({ length: 32 }, (_, i) => auditRecordBytes(syntheticRecord(i)));
    const blob = segmentBlob(leaves);
    const seg = { segment: 0, digest: d(1), count: 32, first: 0 };
    const root = toHex(rootOf(leaves.map(leafHash)));
    let byLeaf = 0;
    let byRoot = 0;
    for (let i = 0; i < 1_000; i++) {
      const at = Math.floor((i * blob.length) / 1_000);
      const bit = i % 8;
      const changed = Uint8Array.from(blob);
      changed[at] = (changed[at] as number) ^ (1 << bit);
      const out = segmentLeaves(changed, seg);
      if (!Array.isArray(out)) {
        byLeaf++;
        continue;
      }
      // what the checker holds to the checkpoint of this segment: the root of its leaves
      if (toHex(rootOf(out.map((l) => leafHash(l.bytes)))) === root)
        throw new Error(`byte ${at} bit ${bit} went unnoticed`);
      byRoot++;
    }
    // both ways are exercised: most flips break the JSON, some leave a valid record
    expect(byLeaf).toBeGreaterThan(500);
    expect(byRoot).toBeGreaterThan(10);
  });
});
