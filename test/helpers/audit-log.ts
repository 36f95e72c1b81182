// Builds audit logs in a DATA_DIR directly, as the appender lays them out (docs/decisions.md "Audit
// log"): records appended in batches, each batch storing the segments it touched in the CAS (sealed
// ones full, the open one as a partial blob), appending their index lines, then signing a checkpoint.
// No Redis: for the offline tools' tests, the tamper tests and bench/audit-verify.ts.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { auditRecordBytes, type AuditRecord } from "../../src/core/audit-record.js";
import { signCheckpoint, type SignedCheckpoint } from "../../src/core/checkpoint.js";
import {
  TreeBuilder,
  inclusionProof,
  leafHash,
  rootOf,
  segmentedSubtreeHashes,
  toHex,
  type Hash,
  type SubtreeHashes,
} from "../../src/core/merkle.js";
import { receiptOf, type Receipt } from "../../src/core/receipt.js";
import { rfc3339 } from "../../src/core/time.js";
import { openAuditFiles, type AuditFiles } from "../../src/infra/audit-files.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";

const sha = (s: string): string => createHash("sha256").update(s).digest("hex");

/** A made-up finished job's record, the same for the same `i`. */
export function syntheticRecord(i: number, tag = ""): AuditRecord {
  const created = Date.UTC(2026, 11, 1) + i * 1_000;
  const gpuMs = 500 + ((i * 7_919) % 20_000);
  return {
    job_id: `job_${tag}${i.toString(36).padStart(10, "0")}`,
    customer_id: `cust_${i % 23}`,
    modality: i % 5 === 0 ? "video" : "image",
    family: "flux",
    model: i % 3 === 0 ? "dev" : "schnell",
    task: "t2i",
    backend: i % 11 === 0 ? null : `sim-${i % 4}`,
    status: i % 11 === 0 ? "cancelled" : "complete",
    attempts: 1 + (i % 3),
    created_at: rfc3339(created),
    started_at: i % 11 === 0 ? null : rfc3339(created + 250),
    completed_at: rfc3339(created + 250 + gpuMs),
    gpu_ms: i % 11 === 0 ? 0 : gpuMs,
    price_micro_usd: i % 11 === 0 ? 0 : Math.floor((gpuMs * 400 + 500) / 1000),
    input_digest: `sha256-${sha(`request ${tag}${i}`)}`,
    output_digests: i % 11 === 0 ? [] : [`sha256-${sha(`output ${tag}${i}`)}`],
  };
}

/** A segment blob: each leaf's bytes followed by a newline. */
export function segmentBlob(leaves: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(leaves.flatMap((l) => [l, Buffer.from("\n")]));
}

export interface BuiltLog {
  readonly dataDir: string;
  readonly files: AuditFiles;
  readonly records: readonly AuditRecord[];
  /** The leaves' bytes (canonical JSON of each record). */
  readonly leaves: readonly Uint8Array[];
  readonly segmentSize: number;
  readonly checkpoints: readonly SignedCheckpoint[];
  /** MTH of the first n leaves, hex, for every checkpoint size n. */
  readonly roots: ReadonlyMap<number, string>;
}

export interface BuildOptions {
  readonly segmentSize: number;
  /** The records to append; default `count` synthetic ones. */
  readonly records?: readonly AuditRecord[];
  readonly count?: number;
  /** Tree sizes after which a checkpoint is signed (the last size always gets one). */
  readonly checkpointAt?: readonly number[];
  /** A checkpoint every this many records, when `checkpointAt` is not given; default 500. */
  readonly checkpointEvery?: number;
  /** Clock of the checkpoints' timestamps; default a fixed start + 1 s per checkpoint. */
  readonly timestamp?: (n: number) => string;
}

/** Appends `records` to the (possibly non-empty) log in `dataDir` and returns what it wrote. */
export async function buildAuditLog(dataDir: string, o: BuildOptions): Promise<BuiltLog> {
  const S = o.segmentSize;
  const records = o.records ?? Array.from({ length: o.count ?? 0 }, (_, i) => syntheticRecord(i));
  const files = openAuditFiles(dataDir);
  const store = createFsBlobStore({ root: join(dataDir, "cas") });
  const leaves = records.map(auditRecordBytes);
  const cuts = new Set(
    o.checkpointAt ??
      Array.from(
        { length: Math.ceil(records.length / (o.checkpointEvery ?? 500)) },
        (_, i) => (i + 1) * (o.checkpointEvery ?? 500),
      ),
  );
  cuts.add(records.length);
  const sizes = [...cuts].filter((n) => n > 0 && n <= records.length).sort((a, b) => a - b);
  const key = await files.signingKey();
  const logId = await files.logId();
  const tree = new TreeBuilder();
  const checkpoints: SignedCheckpoint[] = [];
  const roots = new Map<number, string>();
  let size = 0;
  for (const [i, n] of sizes.entries()) {
    // one append: the segments leaves size..n-1 fall in, each stored whole as far as it is filled
    const lines = [];
    for (let k = Math.floor(size / S); k * S < n; k++) {
      const end = Math.min((k + 1) * S, n);
      const digest = await store.put(segmentBlob(leaves.slice(k * S, end)));
      lines.push({ segment: k, digest, count: end - k * S });
    }
    await files.appendIndex(lines);
    for (; size < n; size++) tree.append(leafHash(leaves[size] as Uint8Array));
    const root = toHex(tree.root());
    roots.set(n, root);
    const timestamp = o.timestamp?.(i) ?? rfc3339(Date.UTC(2026, 11, 7) + i * 1_000);
    const cp = await signCheckpoint(
      { log_id: logId, tree_size: n, root_hash: root, timestamp, key_id: key.kid },
      key.seed,
    );
    await files.appendCheckpoint(cp);
    checkpoints.push(cp);
  }
  return { dataDir, files, records, leaves, segmentSize: S, checkpoints, roots };
}

/** The subtree hashes of the first `size` leaves of a built log, as the API's proofs read them. */
export function subtreeHashesOf(
  leaves: readonly Uint8Array[],
  segmentSize: number,
  size = leaves.length,
): SubtreeHashes {
  const hashes = leaves.slice(0, size).map(leafHash);
  const sealed = Math.floor(size / segmentSize);
  return segmentedSubtreeHashes({
    segmentSize,
    sealedRoot: (k) =>
      Promise.resolve(k < sealed ? rootOf(hashes.slice(k * segmentSize, (k + 1) * segmentSize)) : undefined),
    segmentLeaves: (k) =>
      Promise.resolve(hashes.slice(k * segmentSize, Math.min(size, (k + 1) * segmentSize))),
  });
}

/** The receipt of leaf `index` against checkpoint `cp` of a built log. */
export async function receiptFrom(log: BuiltLog, index: number, cp: SignedCheckpoint): Promise<Receipt> {
  const proof: Hash[] = await inclusionProof(
    index,
    cp.tree_size,
    subtreeHashesOf(log.leaves, log.segmentSize, cp.tree_size),
  );
  return receiptOf(log.records[index] as AuditRecord, index, proof, cp);
}

/**
 * What an attacker who can write DATA_DIR does to hide a change: stores the changed segment under its
 * new digest and rewrites index.jsonl to name it (and its new count), one line per segment.
 */
export async function rewriteSegments(
  dataDir: string,
  segments: readonly (readonly Uint8Array[])[],
): Promise<void> {
  const store = createFsBlobStore({ root: join(dataDir, "cas") });
  const lines: string[] = [];
  for (const [k, leaves] of segments.entries()) {
    const digest = await store.put(segmentBlob(leaves));
    lines.push(`${JSON.stringify({ segment: k, digest, count: leaves.length })}\n`);
  }
  writeFileSync(join(dataDir, "audit", "index.jsonl"), lines.join(""));
}

/** The leaves of a built log cut into segments of its size. */
export function segmentsOf(leaves: readonly Uint8Array[], segmentSize: number): Uint8Array[][] {
  const out: Uint8Array[][] = [];
  for (let i = 0; i < leaves.length; i += segmentSize) out.push(leaves.slice(i, i + segmentSize));
  return out;
}

/** The index lines of a DATA_DIR's log, as written. */
export function indexLines(dataDir: string): { segment: number; digest: string; count: number }[] {
  return readFileSync(join(dataDir, "audit", "index.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { segment: number; digest: string; count: number });
}
