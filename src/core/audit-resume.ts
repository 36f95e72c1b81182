// What a read of the audit log keeps to resume from where it stopped (docs/decisions.md
// "Compliance"): the size verified and the tree's compact range there, where the index and the
// checkpoints were read to, and what the next read holds them to (the log id, the key set). A
// resumed read verifies only the leaves since, as a full read would (infra/audit-log-reader.ts).
import { fromHex, type Hash } from "./merkle.js";

/** A place in a .jsonl file after a complete line (infra/line-files.ts JsonlPosition). */
export interface FilePosition {
  readonly offset: number;
  readonly line: number;
  /** The text of the line that ends there ("" at the start of the file). */
  readonly last: string;
}

/** One line of index.jsonl. */
export interface ResumeSegment {
  readonly segment: number;
  readonly digest: string;
  readonly count: number;
}

export interface AuditResume {
  /** Leaves verified: the tree size of the newest checkpoint that matched. */
  readonly size: number;
  /** The compact range of those leaves (hex, largest subtree first). */
  readonly range: readonly string[];
  readonly segmentSize: number;
  /** The checkpoints' log id. */
  readonly logId: string;
  /** The id in the `log-id` file when read (absent: no file). */
  readonly logIdFile?: string;
  /** SHA-256 (hex) of the canonical JSON of the key set the checkpoints were held to. */
  readonly keys: string;
  /** Where checkpoints.jsonl and index.jsonl were read to. */
  readonly checkpoints: FilePosition;
  readonly index: FilePosition;
  /** The index lines that stand for the segments from the one holding leaf `size` on. */
  readonly segments: readonly ResumeSegment[];
}

/** The compact range of a resume point as hashes. */
export function resumeRange(r: AuditResume): Hash[] {
  return r.range.map(fromHex);
}

/** The first leaf a resumed read reads again: the first of the segment holding leaf `size`. */
export function replayFrom(r: AuditResume): number {
  return Math.floor(r.size / r.segmentSize) * r.segmentSize;
}

const HEX64 = /^[0-9a-f]{64}$/;
const DIGEST = /^sha256-[0-9a-f]{64}$/;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function isPosition(v: unknown): v is FilePosition {
  return (
    isRecord(v) &&
    isCount(v.offset) &&
    isCount(v.line) &&
    typeof v.last === "string" &&
    v.last.length < 65_536
  );
}

function isSegment(v: unknown): v is ResumeSegment {
  return (
    isRecord(v) &&
    isCount(v.segment) &&
    typeof v.digest === "string" &&
    DIGEST.test(v.digest) &&
    isCount(v.count)
  );
}

/** Ones bits of a safe integer. */
function ones(n: number): number {
  let c = 0;
  for (let rest = n; rest > 0; rest = Math.floor(rest / 2)) c += rest % 2;
  return c;
}

/**
 * A resume point read back from storage, checked for shape (the range fits the size, the segment
 * size is a power of two, a few segments at most); the reason as a string when it is not one.
 */
export function parseAuditResume(v: unknown): AuditResume | string {
  if (!isRecord(v)) return "not an object";
  const { size, range, segmentSize, logId, logIdFile, keys, checkpoints, index, segments } = v;
  if (!isCount(size) || size < 1) return "size must be a positive integer";
  if (!isCount(segmentSize) || segmentSize < 1 || ones(segmentSize) !== 1)
    return "segmentSize must be a power of two";
  if (
    !Array.isArray(range) ||
    range.length !== ones(size) ||
    !range.every((h) => typeof h === "string" && HEX64.test(h))
  )
    return "range must hold one hash per 1 bit of size";
  if (typeof logId !== "string" || logId.length === 0 || logId.length > 64) return "logId must be a string";
  if (logIdFile !== undefined && (typeof logIdFile !== "string" || logIdFile.length > 64))
    return "logIdFile must be a string";
  if (typeof keys !== "string" || !HEX64.test(keys)) return "keys must be a SHA-256 in hex";
  if (!isPosition(checkpoints) || !isPosition(index)) return "checkpoints and index must be file positions";
  if (!Array.isArray(segments) || segments.length > 64 || !segments.every(isSegment))
    return "segments must be a short list of index lines";
  return {
    size,
    range: range as string[],
    segmentSize,
    logId,
    ...(logIdFile === undefined ? {} : { logIdFile }),
    keys,
    checkpoints,
    index,
    segments,
  };
}
