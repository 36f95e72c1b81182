// Audit log offline verify and receipt size. Verify: a log of 10,000 and one of 100,000 records (segments
// of 1,024, a checkpoint every 1,000 records, laid out as the appender does) checked whole by
// verifyAuditLog — what `render-gateway audit verify` runs, in process — against the raw bound of the
// same run: read every segment blob, check its digest, hash the leaves and rebuild the root with
// node:crypto, compare it with the newest checkpoint (no record, canonical-form, duplicate or signature
// checks). Receipt: the JSON receipt of one leaf of a 1,000,000-leaf segmented tree, its inclusion proof
// made through segmentedSubtreeHashes (synthetic sealed-segment roots, real leaves in the proven
// leaf's segment), against the receipt of a 1,000-leaf tree.
//   npx tsx bench/audit-verify.ts [--small 10000] [--large 100000] [--segment 1024] [--rounds 3]
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { auditRecordBytes } from "../src/core/audit-record.js";
import { publicJwk, publicKeyOf, signCheckpoint } from "../src/core/checkpoint.js";
import { inclusionProof, leafHash, segmentedSubtreeHashes, toHex, type Hash } from "../src/core/merkle.js";
import { receiptOf, verifyReceipt } from "../src/core/receipt.js";
import { openAuditFiles } from "../src/infra/audit-files.js";
import { verifyAuditLog } from "../src/infra/audit-log-reader.js";
import { buildAuditLog, syntheticRecord } from "../test/helpers/audit-log.js";
import { isMain, options, sidesOf, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { figure, fmt, pairedFigure, printTable } from "./lib/report.js";

const sha = (...parts: Uint8Array[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

/** The raw bound: the root of the stored leaves, from the blobs and index alone, against the newest checkpoint. */
async function rawRootCheck(dataDir: string): Promise<number> {
  const files = openAuditFiles(dataDir);
  const index = await files.readIndex();
  const newest = (await files.readCheckpoints()).at(-1);
  // compact range, as TreeBuilder, with node:crypto
  const stack: { h: Buffer; height: number }[] = [];
  let leaves = 0;
  for (let k = 0; k < index.size; k++) {
    const { digest } = index.get(k)!;
    const hex = digest.slice("sha256-".length);
    const blob = await readFile(join(dataDir, "cas", "sha256", hex.slice(0, 2), hex));
    if (sha(blob).toString("hex") !== hex) throw new Error(`segment ${k} does not hash to its digest`);
    let start = 0;
    for (let end = blob.indexOf(10); end >= 0; end = blob.indexOf(10, start)) {
      let h = sha(Uint8Array.of(0), blob.subarray(start, end));
      let height = 0;
      while (stack.length > 0 && stack.at(-1)!.height === height) {
        h = sha(Uint8Array.of(1), stack.pop()!.h, h);
        height++;
      }
      stack.push({ h, height });
      leaves++;
      start = end + 1;
    }
  }
  let root = stack.at(-1)!.h;
  for (let i = stack.length - 2; i >= 0; i--) root = sha(Uint8Array.of(1), stack[i]!.h, root);
  if (newest?.tree_size !== leaves || newest.root_hash !== root.toString("hex"))
    throw new Error("raw check: root differs");
  return leaves;
}

/** The receipt of leaf `index` in a synthetic `size`-leaf tree of `S`-leaf segments, and how it was made. */
async function syntheticReceipt(size: number, S: number, index: number) {
  const k0 = Math.floor(index / S);
  const record = syntheticRecord(index);
  // the proven leaf's segment: real leaf hashes (the record among them); every other sealed segment
  // is a synthetic root (the proof's hashes do not depend on what is under them)
  const ownLeaves: Hash[] = Array.from({ length: Math.min(S, size - k0 * S) }, (_, i) =>
    k0 * S + i === index ? leafHash(auditRecordBytes(record)) : sha(Buffer.from(`leaf ${k0 * S + i}`)),
  );
  let rootReads = 0;
  const src = segmentedSubtreeHashes({
    segmentSize: S,
    sealedRoot: (k) => {
      rootReads++;
      if (k === k0) return Promise.resolve(undefined);
      return Promise.resolve((k + 1) * S <= size ? sha(Buffer.from(`segment ${k}`)) : undefined);
    },
    segmentLeaves: (k) =>
      Promise.resolve(
        k === k0
          ? ownLeaves
          : Array.from({ length: size - k * S }, (_, i) => sha(Buffer.from(`leaf ${k * S + i}`))),
      ),
  });
  const t0 = performance.now();
  const proof = await inclusionProof(index, size, src);
  const proofMs = performance.now() - t0;
  const reads = rootReads;
  const seed = new Uint8Array(32).fill(1);
  const jwk = await publicJwk(await publicKeyOf(seed));
  const checkpoint = await signCheckpoint(
    {
      log_id: "rg-0123456789abcdef",
      tree_size: size,
      root_hash: toHex(await src.hash(0, size)),
      timestamp: "2026-12-07T12:00:00.000Z",
      key_id: jwk.kid,
    },
    seed,
  );
  const receipt = receiptOf(record, index, proof, checkpoint);
  const verdict = await verifyReceipt(receipt, { keys: [jwk] });
  if (!verdict.ok) throw new Error(`synthetic receipt does not verify: ${verdict.why}`);
  return {
    bytes: Buffer.byteLength(JSON.stringify(receipt)),
    hashes: proof.length,
    proofMs,
    rootReads: reads,
  };
}

interface Row {
  round: number;
  size: number;
  side: "ours" | "raw";
  ms: number;
}

export const auditVerifyBench: BenchDef = {
  name: "audit-verify",
  title: "Audit log — offline verify (10,000 and 100,000 records) and receipt size (1,000,000)",
  async run(ctx: BenchContext) {
    const { small, large, segment, rounds, receiptLeaves } = options({
      small: 10_000,
      large: 100_000,
      segment: 1_024,
      rounds: 3,
      receiptLeaves: 1_000_000,
    });
    const logs: { size: number; dir: string }[] = [];
    for (const size of [small, large]) {
      const dir = join(ctx.dir, `log-${size}`);
      const t0 = performance.now();
      await buildAuditLog(dir, { count: size, segmentSize: segment, checkpointEvery: 1_000 });
      ctx.log(`built a ${size}-record log in ${fmt((performance.now() - t0) / 1000, 1)} s`);
      logs.push({ size, dir });
    }
    const rows: Row[] = [];
    const problems: string[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const { size, dir } of logs) {
        for (const side of sidesOf(round)) {
          const t0 = performance.now();
          if (side === "ours") {
            const report = await verifyAuditLog(dir);
            if (!report.ok || report.verified !== size)
              problems.push(`round ${round}: verify of ${size} failed: ${JSON.stringify(report.bad)}`);
          } else if ((await rawRootCheck(dir)) !== size) {
            problems.push(`round ${round}: raw check of ${size} read another size`);
          }
          rows.push({ round, size, side, ms: performance.now() - t0 });
        }
      }
      ctx.log(
        `round ${round}: ${rows
          .filter((r) => r.round === round)
          .map((r) => `${r.side} ${r.size} ${fmt(r.ms, 0)} ms`)
          .join(", ")}`,
      );
    }
    printTable(
      ["round", "records", "verify ms", "raw ms", "µs per record (verify)"],
      rows
        .filter((r) => r.side === "ours")
        .map((r) => {
          const raw = rows.find((x) => x.round === r.round && x.size === r.size && x.side === "raw")!;
          return [
            String(r.round),
            fmt(r.size, 0),
            fmt(r.ms, 0),
            fmt(raw.ms, 0),
            fmt((r.ms * 1000) / r.size, 1),
          ];
        }),
    );

    const big = await syntheticReceipt(receiptLeaves, segment, Math.floor(receiptLeaves * 0.37));
    const ref = await syntheticReceipt(1_000, segment, 370);
    ctx.log(
      `receipt at ${receiptLeaves} leaves: ${big.bytes} bytes, ${big.hashes} proof hashes; proof made in ` +
        `${fmt(big.proofMs, 0)} ms reading ${big.rootReads} sealed-segment roots (no cache)`,
    );

    const verifyFig = (size: number) =>
      pairedFigure({
        what: `verify ${fmt(size, 0)} records`,
        unit: "ms",
        rows: rows.filter((r) => r.size === size),
        isOurs: (r) => r.side === "ours",
        value: (r) => r.ms,
      });
    const perRecord = (size: number) =>
      rows.filter((r) => r.size === size && r.side === "ours").map((r) => r.ms / size);
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return {
      params: { small, large, segment, rounds, checkpointEvery: 1_000, receiptLeaves },
      rounds: rows as unknown as Record<string, unknown>[],
      figures: [
        verifyFig(small),
        verifyFig(large),
        figure({
          what: "verify time per record, 100,000 vs 10,000 (linear = 1)",
          unit: "µs",
          ours: sorted(perRecord(large)) * 1000,
          bound: sorted(perRecord(small)) * 1000,
          ratioOf: "large/small",
          ratio: sorted(perRecord(large)) / sorted(perRecord(small)),
          target: { op: "<=", value: 1.5 },
        }),
        figure({
          what: `receipt JSON at ${fmt(receiptLeaves, 0)} leaves vs 1,000 (${big.hashes} vs ${ref.hashes} proof hashes)`,
          unit: "bytes",
          ours: big.bytes,
          bound: ref.bytes,
          ratioOf: "1M/1k",
          ratio: big.bytes / ref.bytes,
        }),
      ],
      problems,
      notes: [
        "verify runs in this process (verifyAuditLog, what `render-gateway audit verify` calls), without the CLI's start-up",
        "raw = read each blob, check its digest, hash leaves and rebuild the root with node:crypto, compare with the newest checkpoint; ours also parses every record, checks canonical form, duplicates and every checkpoint signature, and hashes with @noble/hashes",
        `receipt proof for one leaf with no cache of subtree hashes read ${big.rootReads} sealed-segment roots and took ${fmt(big.proofMs, 0)} ms (segmentedSubtreeHashes' cache option keeps them)`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(auditVerifyBench);
