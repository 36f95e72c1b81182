// Reading the audit log offline from DATA_DIR alone — index.jsonl, the segment blobs in the CAS, the
// checkpoints and the published keys; no Redis — and verifying it while reading (core/audit-log-check.ts
// decides). `render-gateway audit verify` and the reconciliation job read through here.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AuditLogBroken,
  auditLogError,
  createLogChecker,
  planSegments,
  segmentLeaves,
  type AuditBadEntry,
  type AuditLeaf,
  type NumberedCheckpoint,
} from "../core/audit-log-check.js";
import type { AuditRecord } from "../core/audit-record.js";
import type { SignedCheckpoint } from "../core/checkpoint.js";
import { BlobCorruptError } from "../core/ports.js";
import {
  CHECKPOINTS_FILE,
  INDEX_FILE,
  JsonlLineError,
  currentSegments,
  openAuditFiles,
  type AuditFiles,
} from "./audit-files.js";
import { hexOf, objectPath } from "./fs-blob-layout.js";
import { createFsBlobStore } from "./fs-blob-store.js";

/** What {@link readAuditLog} reads of the log's files. */
export type AuditLogFiles = Pick<AuditFiles, "readIndexLines" | "readCheckpointLines" | "readLogId" | "jwks">;

export interface ReadAuditLogOptions {
  /**
   * The key set to hold the checkpoints to; default DATA_DIR/audit/keys/jwks.json. Whoever can write
   * DATA_DIR can also replace that file, so an auditor passes the JWKS they trust (one fetched from
   * `/.well-known/render-gateway/keys` earlier, say).
   */
  readonly jwks?: unknown;
  /** Checkpoints kept elsewhere (by a customer, say) to hold the log to as well, with their labels. */
  readonly checkpoints?: readonly NumberedCheckpoint[];
  /** The configured segment size, when known (else read off the index). */
  readonly segmentSize?: number;
  /** The log's files; default `openAuditFiles(dataDir)` (tests interpose on the reads). */
  readonly files?: AuditLogFiles;
  /** Told what was tolerated (a torn last line of a .jsonl file, a stale index line). */
  readonly onNote?: (note: string) => void;
  /** Told the log's shape once the index is read. */
  readonly onPlan?: (plan: {
    segments: number;
    leaves: number;
    segmentSize: number | undefined;
    checkpoints: number;
  }) => void;
}

/** One verified record of the log. */
export interface AuditLogEntry {
  readonly index: number;
  readonly record: AuditRecord;
}

const fail = (entry: AuditBadEntry): never => {
  throw auditLogError(entry);
};

/** The bytes of a segment blob, or a bad entry naming why they cannot be had. */
async function segmentBytes(
  store: ReturnType<typeof createFsBlobStore>,
  casRoot: string,
  seg: { segment: number; digest: string; first: number; count: number },
): Promise<Uint8Array | AuditBadEntry> {
  const at = { segment: seg.segment, leaf_index: seg.first };
  try {
    const bytes = await store.get(seg.digest);
    if (bytes === undefined) return { ...at, what: `its blob ${seg.digest} is missing from the CAS` };
    return bytes;
  } catch (err) {
    if (!(err instanceof BlobCorruptError)) throw err;
  }
  // The stored bytes are not the ones indexed. Read them anyway, to name the leaf when it is the
  // one that no longer parses; otherwise the segment is what can be named.
  const raw = new Uint8Array(await readFile(objectPath(casRoot, hexOf(seg.digest))));
  const leaves = segmentLeaves(raw, seg);
  const what = `its blob's bytes do not hash to ${seg.digest} (changed where it is stored)`;
  if (!Array.isArray(leaves)) return { ...leaves, what: `${what}; ${leaves.what}` };
  return { ...at, what: `${what}; leaves ${seg.first}..${seg.first + seg.count - 1}` };
}

/**
 * The records of the audit log under `dataDir`, in order, each yielded only once a checkpoint that
 * covers it has matched the tree rebuilt from the leaves (so what comes out is verified, not merely
 * read). Checks everything `audit verify` does (docs/decisions.md "Audit log"); a torn last line of
 * index.jsonl or checkpoints.jsonl is tolerated and reported through `onNote`. Safe to run while an
 * appender writes: an append during the read never makes the log look broken; at most its newest
 * leaves are not under a checkpoint read yet (AuditTailUncovered).
 * @throws AuditLogBroken at the first bad entry — after the records before it were yielded, so a
 *   consumer treats a throw as the failure of the whole read; AuditTailUncovered (a subclass) when
 *   every leaf verified but the newest ones are under no checkpoint yet, after every covered record
 *   was yielded.
 */
export async function* readAuditLog(
  dataDir: string,
  opts: ReadAuditLogOptions = {},
): AsyncGenerator<AuditLogEntry, void, undefined> {
  const files = opts.files ?? openAuditFiles(dataDir);
  const casRoot = join(dataDir, "cas");
  const store = createFsBlobStore({ root: casRoot, verifiedCacheSize: 0 });
  const note = opts.onNote ?? (() => undefined);

  let index;
  let cpRead;
  try {
    // The checkpoints before the index (and the keys after both): the appender writes a segment's
    // index line before any checkpoint covering it (and publishes a key before signing with it), so
    // every checkpoint read here has its leaves in the index read next, whatever is appended in
    // between. Read the other way round, a checkpoint signed between the two reads covers leaves
    // the index read lacks, and a consistent log reads as a truncated one. Appended in between is
    // at most a tail no checkpoint read covers.
    cpRead = await files.readCheckpointLines();
    index = await files.readIndexLines();
  } catch (err) {
    if (err instanceof JsonlLineError) {
      const label = `${err.file}:${err.line}`;
      throw new AuditLogBroken(
        err.file === CHECKPOINTS_FILE ? { checkpoint: label, what: err.message } : { what: err.message },
      );
    }
    throw err;
  }
  if (index.torn !== undefined)
    note(
      `${INDEX_FILE} line ${index.torn.line}: a torn last line (${index.torn.bytes} bytes, from an interrupted append) was ignored`,
    );
  if (cpRead.torn !== undefined)
    note(
      `${CHECKPOINTS_FILE} line ${cpRead.torn.line}: a torn last line (${cpRead.torn.bytes} bytes) was ignored`,
    );

  const { segments: current, stale } = currentSegments(index.entries);
  for (const l of stale) {
    note(
      `${INDEX_FILE} line ${l.line}: segment ${l.segment} with ${l.count} leaves after a line with ${l.kept} (a stale writer's line) was passed over`,
    );
  }
  const plan = planSegments(current, opts.segmentSize);
  if (!("segments" in plan)) return fail(plan);

  const issued: NumberedCheckpoint[] = cpRead.entries.map((checkpoint: SignedCheckpoint, i) => ({
    label: `${CHECKPOINTS_FILE}:${i + 1}`,
    checkpoint,
  }));
  const kept = opts.checkpoints ?? [];
  const logId = await files.readLogId();
  const jwks = opts.jwks ?? (await files.jwks());
  const checker = await createLogChecker(issued, jwks, {
    held: kept,
    ...(logId === undefined ? {} : { logId }),
  });
  if (!("add" in checker)) return fail(checker);
  const last = plan.segments.at(-1);
  opts.onPlan?.({
    segments: plan.segments.length,
    leaves: last === undefined ? 0 : last.first + last.count,
    segmentSize: plan.segmentSize,
    checkpoints: issued.length + kept.length,
  });

  // leaves read but not yet covered by a checkpoint that matched
  let held: AuditLeaf[] = [];
  for (const seg of plan.segments) {
    const bytes = await segmentBytes(store, casRoot, seg);
    if (!(bytes instanceof Uint8Array)) return fail(bytes);
    const leaves = segmentLeaves(bytes, seg);
    if (!Array.isArray(leaves)) return fail(leaves);
    for (const leaf of leaves) {
      const bad = checker.add(leaf);
      if (bad !== undefined)
        return fail({ segment: segmentOf(plan.segments, bad.leaf_index) ?? seg.segment, ...bad });
      held.push(leaf);
      if (checker.verifiedSize > (held[0] as AuditLeaf).index) {
        const out = held.filter((l) => l.index < checker.verifiedSize);
        held = held.filter((l) => l.index >= checker.verifiedSize);
        for (const l of out) yield { index: l.index, record: l.record };
      }
    }
  }
  const bad = checker.finish();
  if (bad !== undefined) {
    const segment = segmentOf(plan.segments, bad.leaf_index);
    return fail(segment === undefined ? bad : { segment, ...bad });
  }
}

/** The segment holding leaf `index`, if any. */
function segmentOf(
  segments: readonly { segment: number; first: number; count: number }[],
  index: number | undefined,
): number | undefined {
  if (index === undefined) return undefined;
  return segments.find((s) => index >= s.first && index < s.first + s.count)?.segment;
}

/** What {@link verifyAuditLog} found. */
export interface AuditVerifyReport {
  readonly ok: boolean;
  /** Leaves verified (covered by a checkpoint that matched). */
  readonly verified: number;
  readonly leaves: number;
  readonly segments: number;
  readonly segmentSize: number | undefined;
  readonly checkpoints: number;
  /** Tolerated oddities (torn last lines, stale index lines). */
  readonly notes: readonly string[];
  /** The first bad entry, when not ok. */
  readonly bad?: AuditBadEntry;
}

/** Reads the whole log through {@link readAuditLog} and reports. */
export async function verifyAuditLog(
  dataDir: string,
  opts: ReadAuditLogOptions = {},
): Promise<AuditVerifyReport> {
  const notes: string[] = [];
  let shape = { segments: 0, leaves: 0, segmentSize: undefined as number | undefined, checkpoints: 0 };
  let verified = 0;
  const base = () => ({ verified, ...shape, notes });
  try {
    for await (const entry of readAuditLog(dataDir, {
      ...opts,
      onNote: (n) => {
        notes.push(n);
        opts.onNote?.(n);
      },
      onPlan: (p) => {
        shape = p;
        opts.onPlan?.(p);
      },
    })) {
      verified = entry.index + 1;
    }
  } catch (err) {
    if (err instanceof AuditLogBroken) return { ok: false, ...base(), bad: err.entry };
    throw err;
  }
  return { ok: true, ...base() };
}
