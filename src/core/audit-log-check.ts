// Checking a whole audit log from its stored parts, with no trust in who stored them (API.md §5 `audit
// verify`): the segment list is contiguous and every sealed segment full, every leaf is an audit record
// in canonical form and appears once, every checkpoint is signed by a published key and its root is the
// root of the rebuilt tree at its size, and the newest checkpoint covers every leaf. The I/O lives in
// src/infra/audit-log-reader.ts; this is the part that decides.
import { parseAuditRecord, type AuditRecord } from "./audit-record.js";
import { canonicalJson } from "./canonical-json.js";
import { findPublicKey, verifyCheckpoint, type SignedCheckpoint } from "./checkpoint.js";
import { TreeBuilder, leafHash, toHex } from "./merkle.js";

/** The first thing found wrong, with the most precise position known. */
export interface AuditBadEntry {
  /** What is wrong, as a sentence. */
  readonly what: string;
  readonly segment?: number;
  readonly leaf_index?: number;
  readonly job_id?: string;
  /** Where the checkpoint is: `checkpoints.jsonl:3` (its file and 1-based line). */
  readonly checkpoint?: string;
  /**
   * Set on the one finding that is no damage to what is signed: every leaf up to the newest
   * checkpoint verified, and the leaves from `leaf_index` on are under no checkpoint yet — a live
   * log between its appender's commit and its next checkpoint, or a writer that stopped before
   * signing. Nothing vouches for those leaves, so a verify reports it; a reader of a live log may
   * stop at the checkpoint instead ({@link AuditTailUncovered}).
   */
  readonly uncovered_tail?: true;
}

/** Thrown by the readers of the log at the first bad entry. */
export class AuditLogBroken extends Error {
  readonly entry: AuditBadEntry;
  constructor(entry: AuditBadEntry) {
    super(describeBadEntry(entry));
    this.name = "AuditLogBroken";
    this.entry = entry;
  }
}

/**
 * The {@link AuditLogBroken} of an uncovered tail (`entry.uncovered_tail`): everything a checkpoint
 * covers was verified (and handed out); `entry.leaf_index` is the first leaf past the newest one.
 */
export class AuditTailUncovered extends AuditLogBroken {
  constructor(entry: AuditBadEntry & { readonly uncovered_tail: true; readonly leaf_index: number }) {
    super(entry);
    this.name = "AuditTailUncovered";
  }
}

/** The error a reader throws for `entry`: {@link AuditTailUncovered} for an uncovered tail. */
export function auditLogError(entry: AuditBadEntry): AuditLogBroken {
  return entry.uncovered_tail === true && entry.leaf_index !== undefined
    ? new AuditTailUncovered({ ...entry, uncovered_tail: true, leaf_index: entry.leaf_index })
    : new AuditLogBroken(entry);
}

/** `segment 3, leaf 1027 (job_…): what`. */
export function describeBadEntry(e: AuditBadEntry): string {
  const where = [
    e.checkpoint === undefined ? undefined : `checkpoint ${e.checkpoint}`,
    e.segment === undefined ? undefined : `segment ${e.segment}`,
    e.leaf_index === undefined ? undefined : `leaf ${e.leaf_index}`,
    e.job_id === undefined ? undefined : `job ${e.job_id}`,
  ].filter((p) => p !== undefined);
  return where.length === 0 ? e.what : `${where.join(", ")}: ${e.what}`;
}

/** One segment as the index names it, with the index of its first leaf. */
export interface PlannedSegment {
  readonly segment: number;
  readonly digest: string;
  readonly count: number;
  readonly first: number;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/**
 * The segments of the log from the index (last line per segment): numbered 0..K-1 without a gap;
 * all but the last hold the same power-of-two count S (the segment size) and the last 1..S.
 * @param expectedSize the configured segment size, when known (else it is read off the index).
 */
export function planSegments(
  index: ReadonlyMap<number, { readonly digest: string; readonly count: number }>,
  expectedSize?: number,
): { segmentSize: number | undefined; segments: PlannedSegment[] } | AuditBadEntry {
  const K = index.size;
  const segments: PlannedSegment[] = [];
  let size: number | undefined = expectedSize;
  let first = 0;
  for (let k = 0; k < K; k++) {
    const e = index.get(k);
    // K lines but none for k: some segment beyond K-1 is named instead
    if (e === undefined)
      return { what: "the index has no line for this segment but has later ones", segment: k };
    const last = k === K - 1;
    if (!last && size === undefined) {
      if (!isPowerOfTwo(e.count))
        return { what: `sealed segment holds ${e.count} leaves, not a power of two`, segment: k };
      size = e.count;
    }
    if (!last && e.count !== size) {
      return { what: `sealed segment holds ${e.count} leaves, not ${size}`, segment: k, leaf_index: first };
    }
    if (last && size !== undefined && e.count > size) {
      return {
        what: `segment holds ${e.count} leaves, more than the segment size ${size}`,
        segment: k,
        leaf_index: first,
      };
    }
    segments.push({ segment: k, digest: e.digest, count: e.count, first });
    first += e.count;
  }
  return { segmentSize: size, segments };
}

/** One leaf of the log: its bytes (canonical JSON, no newline) and the record they are. */
export interface AuditLeaf {
  readonly index: number;
  readonly bytes: Uint8Array;
  readonly record: AuditRecord;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The leaves of a segment blob: `count` lines, each the canonical JSON of an audit record and followed
 * by a newline; a bad entry names the first line that is not.
 */
export function segmentLeaves(bytes: Uint8Array, seg: PlannedSegment): AuditLeaf[] | AuditBadEntry {
  const leaves: AuditLeaf[] = [];
  let start = 0;
  for (let i = 0; i < seg.count; i++) {
    const index = seg.first + i;
    const at = { segment: seg.segment, leaf_index: index };
    const end = bytes.indexOf(0x0a, start);
    if (end < 0) return { ...at, what: `the segment blob ends after ${i} of its ${seg.count} leaves` };
    const line = bytes.subarray(start, end);
    start = end + 1;
    let text: string;
    let value: unknown;
    try {
      text = utf8.decode(line);
      value = JSON.parse(text);
    } catch {
      return { ...at, what: "the leaf is not JSON" };
    }
    const jobId = jobIdOf(value);
    const withJob = jobId === undefined ? at : { ...at, job_id: jobId };
    const parsed = parseAuditRecord(value);
    if (!parsed.ok) return { ...withJob, what: `the leaf is not an audit record (${parsed.why})` };
    if (canonicalJson(value) !== text)
      return { ...withJob, what: "the leaf is not in canonical (RFC 8785) form" };
    leaves.push({ index, bytes: line, record: parsed.record });
  }
  if (start !== bytes.length) {
    return {
      segment: seg.segment,
      leaf_index: seg.first + seg.count,
      what: `the segment blob holds more than its ${seg.count} leaves`,
    };
  }
  return leaves;
}

/** The job_id of a value that looks like a record, to name it even when it is not a valid one. */
function jobIdOf(v: unknown): string | undefined {
  const id = typeof v === "object" && v !== null ? (v as { job_id?: unknown }).job_id : undefined;
  return typeof id === "string" && id.length <= 256 ? id : undefined;
}

/** A checkpoint to hold the log to, and where it came from (`file:line`). */
export interface NumberedCheckpoint {
  readonly label: string;
  readonly checkpoint: SignedCheckpoint;
}

/**
 * Rebuilds the tree leaf by leaf and holds it to the checkpoints. Create it with {@link
 * createLogChecker} (which checks the signatures first); feed every leaf in order to `add`, then call
 * `finish`. Each returns the first bad entry, or undefined.
 */
export interface LogChecker {
  add(leaf: AuditLeaf): AuditBadEntry | undefined;
  /** After the last leaf: every checkpoint reached, and the newest one covers every leaf. */
  finish(): AuditBadEntry | undefined;
  /** The size up to which every leaf is covered by a checkpoint that matched. */
  readonly verifiedSize: number;
  /** Leaves added. */
  readonly size: number;
}

/**
 * Checks the checkpoints themselves (each signed by a key of `jwks`, all of one log id — `logId` when
 * given — and, in `issued` (checkpoints.jsonl, in issue order), tree sizes never going back), then
 * returns the checker of the leaves. `held` are checkpoints kept elsewhere (by customers), held to
 * the log the same way.
 */
export async function createLogChecker(
  issued: readonly NumberedCheckpoint[],
  jwks: unknown,
  opts: { logId?: string; held?: readonly NumberedCheckpoint[] } = {},
): Promise<LogChecker | AuditBadEntry> {
  let logId = opts.logId;
  let biggest = 0;
  const checkpoints = [...issued, ...(opts.held ?? [])];
  for (const [i, { label, checkpoint: cp }] of checkpoints.entries()) {
    if (logId === undefined) logId = cp.log_id;
    if (cp.log_id !== logId)
      return { checkpoint: label, what: `log_id ${cp.log_id} is not this log's (${logId})` };
    const key = findPublicKey(jwks, cp.key_id);
    if (key === undefined) return { checkpoint: label, what: `no published key has kid ${cp.key_id}` };
    if (!(await verifyCheckpoint(cp, key)))
      return { checkpoint: label, what: "the signature does not verify" };
    if (i < issued.length && cp.tree_size < biggest) {
      return {
        checkpoint: label,
        what: `tree_size ${cp.tree_size} is below an earlier checkpoint's ${biggest}`,
      };
    }
    biggest = Math.max(biggest, cp.tree_size);
  }
  // the checkpoints by size, smallest first; several may share one
  const pending = [...checkpoints].sort((a, b) => a.checkpoint.tree_size - b.checkpoint.tree_size);
  const tree = new TreeBuilder();
  const seen = new Map<string, number>();
  let next = 0;
  let verifiedSize = 0;

  /** Holds the checkpoints of the current size to the tree's root. */
  const reach = (): AuditBadEntry | undefined => {
    let root: string | undefined;
    // the bad leaf of a mismatch lies after what checkpoints of smaller sizes covered
    const from = verifiedSize;
    while (
      next < pending.length &&
      (pending[next] as NumberedCheckpoint).checkpoint.tree_size === tree.size
    ) {
      const { label, checkpoint: cp } = pending[next] as NumberedCheckpoint;
      root ??= toHex(tree.root());
      if (cp.root_hash !== root) {
        return {
          checkpoint: label,
          leaf_index: from,
          what:
            `its root_hash is not the root of the first ${cp.tree_size} leaves: a leaf among ${from}..${cp.tree_size - 1} ` +
            `was changed, dropped, inserted or reordered, or the history was forked`,
        };
      }
      verifiedSize = tree.size;
      next++;
    }
    return undefined;
  };

  const start = reach();
  if (start !== undefined) return start;
  return {
    add(leaf) {
      if (leaf.index !== tree.size)
        return { leaf_index: tree.size, what: `leaf ${leaf.index} came where ${tree.size} belongs` };
      const earlier = seen.get(leaf.record.job_id);
      if (earlier !== undefined) {
        return {
          leaf_index: leaf.index,
          job_id: leaf.record.job_id,
          what: `the job is already in the log at leaf ${earlier}`,
        };
      }
      seen.set(leaf.record.job_id, leaf.index);
      tree.append(leafHash(leaf.bytes));
      return reach();
    },
    finish() {
      const beyond = pending[next];
      if (beyond !== undefined) {
        return {
          checkpoint: beyond.label,
          leaf_index: tree.size,
          what: `it covers ${beyond.checkpoint.tree_size} leaves but the log holds ${tree.size}: leaves were dropped or the tail truncated`,
        };
      }
      if (verifiedSize < tree.size) {
        return {
          leaf_index: verifiedSize,
          what: `leaves ${verifiedSize}..${tree.size - 1} are not covered by any checkpoint (added without one, or a writer stopped before signing)`,
          uncovered_tail: true,
        };
      }
      return undefined;
    },
    get verifiedSize() {
      return verifiedSize;
    },
    get size() {
      return tree.size;
    },
  };
}
