// The appender's view of the committed log (docs/decisions.md "Audit log: the appender"): its size, the
// sealed segments' roots and the open segment's leaves, loaded from Redis when the lock is taken and
// kept up to date by the appender's own commits; and what a new holder does before its first commit —
// put back leaves the files hold and Redis lost (Redis restarted from an AOF short of its last
// writes), bring DATA_DIR/audit/index.jsonl up to Redis's state (a holder that died after a commit
// and before its index line loses nothing) and publish the public keys.
import { segmentLeaves } from "../core/audit-log-check.js";
import { canonicalJson } from "../core/canonical-json.js";
import { publicJwk } from "../core/checkpoint.js";
import {
  equalHashes,
  fromHex,
  leafHash,
  rootOf,
  segmentedSubtreeHashes,
  toHex,
  type Hash,
} from "../core/merkle.js";
import { createLru } from "../core/lru.js";
import type { BlobStore } from "../core/ports.js";
import type { AuditFiles } from "../infra/audit-files.js";
import { MAX_COMMIT_RECORDS, type AuditStore } from "../queues/audit-store.js";
import { AuditLockLost } from "./audit-lease.js";

const utf8 = new TextEncoder();

/** The leaf hash of a canonical record (a leaf's bytes are its UTF-8). */
export const leafOf = (canonical: string): Hash => leafHash(utf8.encode(canonical));

/** The blob of a segment: each leaf's bytes followed by "\n". */
export function segmentBlob(records: readonly string[]): Uint8Array {
  return utf8.encode(records.length === 0 ? "" : `${records.join("\n")}\n`);
}

/** The files under DATA_DIR say more than Redis does: appending now would fork the log. */
export class AuditFilesAhead extends Error {
  constructor(detail: string) {
    super(`DATA_DIR/audit is ahead of Redis (${detail}): not appending; restore Redis or the files`);
    this.name = "AuditFilesAhead";
  }
}

/** What the appender knows of the committed log. */
export interface AuditView {
  readonly segmentSize: number;
  size: number;
  /** Roots of the sealed segments, in order. */
  readonly sealedRoots: Hash[];
  /** The open segment's records (canonical JSON) and their leaf hashes. */
  tail: string[];
  tailHashes: Hash[];
  /** The segment digests as committed (index k), for the index lines. */
  readonly segments: string[];
  /** The size of the latest checkpoint published in Redis (0 when none). */
  checkpointSize: number;
  /** MTH of the whole committed tree. */
  root(): Promise<Hash>;
}

/**
 * The view after a commit of `records`/`hashes` (the open segment k's leaves so far) in the blob
 * `digest`; `sealedRoot` when the commit filled the segment.
 */
export function applyCommit(
  view: AuditView,
  c: {
    readonly size: number;
    readonly digest: string;
    readonly records: string[];
    readonly hashes: Hash[];
    readonly sealedRoot: Hash | undefined;
  },
): void {
  const k = Math.floor(view.size / view.segmentSize);
  view.size = c.size;
  if (k < view.segments.length) view.segments[k] = c.digest;
  else view.segments.push(c.digest);
  if (c.sealedRoot !== undefined) {
    view.sealedRoots.push(c.sealedRoot);
    view.tail = [];
    view.tailHashes = [];
  } else {
    view.tail = c.records;
    view.tailHashes = c.hashes;
  }
}

/** Sealed-only subtree hashes a view's root computations remember (they never change). */
const ROOT_MEMO = 4_096;

function viewOf(segmentSize: number, state: Omit<AuditView, "root" | "segmentSize">): AuditView {
  const memo = createLru<string, Hash>(ROOT_MEMO);
  const view: AuditView = {
    segmentSize,
    ...state,
    root() {
      const src = segmentedSubtreeHashes({
        segmentSize,
        sealedRoot: (k) => Promise.resolve(view.sealedRoots[k]),
        segmentLeaves: (k) => Promise.resolve(k < view.sealedRoots.length ? [] : view.tailHashes),
        cache: memo,
      });
      return src.hash(0, view.size);
    },
  };
  return view;
}

/**
 * Loads the committed log from Redis.
 * @throws Error when Redis's lists disagree with its size (a state no commit leaves).
 */
export async function loadView(
  store: Pick<AuditStore, "head" | "roots" | "segments" | "tail">,
  segmentSize: number,
): Promise<AuditView> {
  const head = await store.head();
  const S = segmentSize;
  const sealed = Math.floor(head.size / S);
  const open = head.size - sealed * S;
  const [roots, segments, tail] = await Promise.all([
    store.roots(0, sealed + 1),
    store.segments(0, sealed + 1),
    store.tail(0, S + 1),
  ]);
  if (head.sealed !== sealed || roots.length !== sealed || tail.length !== open) {
    throw new Error(
      `audit log state is inconsistent: size ${head.size}, ${roots.length} roots, ${tail.length} tail leaves at segment size ${S}` +
        " (AUDIT_SEGMENT_SIZE is fixed for a log's life: every process must have the one the log began with)",
    );
  }
  if (segments.length !== sealed + (open > 0 ? 1 : 0)) {
    throw new Error(`audit log state is inconsistent: size ${head.size}, ${segments.length} segments`);
  }
  let checkpointSize = 0;
  if (head.checkpoint !== undefined) {
    checkpointSize = Number((JSON.parse(head.checkpoint) as { tree_size?: unknown }).tree_size) || 0;
  }
  return viewOf(S, {
    size: head.size,
    sealedRoots: roots.map(fromHex),
    tail,
    tailHashes: tail.map(leafOf),
    segments,
    checkpointSize,
  });
}

type Index = ReadonlyMap<number, { readonly digest: string; readonly count: number }>;

/** Whether the index names leaves Redis does not have. */
function filesAhead(view: Pick<AuditView, "size" | "segmentSize">, index: Index): boolean {
  for (const [segment, entry] of index) {
    if (entry.count > Math.max(0, view.size - segment * view.segmentSize)) return true;
  }
  return false;
}

export interface RestoreDeps {
  readonly store: Pick<AuditStore, "restore">;
  readonly blobs: Pick<BlobStore, "get" | "put">;
  readonly owner: string;
  readonly fence: number;
  readonly check: () => void;
}

/**
 * Puts back the leaves the index and the CAS hold beyond Redis's size (Redis lost its last writes),
 * segment by segment through audit_restore.lua, after checking that what both hold is the same.
 * Returns the leaves put back.
 * @throws AuditFilesAhead when the files cannot be put back (a blob missing or broken, a history
 *   that differs from Redis's: a fork); AuditLockLost when the lock was lost meanwhile.
 */
export async function restoreFromFiles(view: AuditView, index: Index, deps: RestoreDeps): Promise<number> {
  const S = view.segmentSize;
  view.sealedRoots.forEach((_, k) => {
    const entry = index.get(k);
    if (entry !== undefined && entry.count === S && entry.digest !== view.segments[k]) {
      throw new AuditFilesAhead(
        `segment ${k} is ${entry.digest} in index.jsonl but ${view.segments[k]} in Redis`,
      );
    }
  });
  let restored = 0;
  for (let k = Math.floor(view.size / S); ; k++) {
    const entry = index.get(k);
    const have = view.size - k * S;
    if (entry === undefined || entry.count <= have) break;
    const blob = await deps.blobs.get(entry.digest);
    if (blob === undefined)
      throw new AuditFilesAhead(`segment ${k}'s blob ${entry.digest} is not in the CAS`);
    const leaves = segmentLeaves(blob, {
      segment: k,
      digest: entry.digest,
      count: entry.count,
      first: k * S,
    });
    if (!Array.isArray(leaves)) throw new AuditFilesAhead(`segment ${k}: ${leaves.what}`);
    const lines = leaves.map((l) => canonicalJson(l.record));
    const hashes = lines.map(leafOf);
    for (let i = 0; i < have; i++) {
      if (!equalHashes(hashes[i]!, view.tailHashes[i]!)) {
        throw new AuditFilesAhead(`leaf ${k * S + i} differs between index.jsonl's segment ${k} and Redis`);
      }
    }
    // in pieces a script call takes; a piece short of the whole blob names a blob of its own leaves
    for (let from = have; from < entry.count; from += MAX_COMMIT_RECORDS) {
      const to = Math.min(entry.count, from + MAX_COMMIT_RECORDS);
      const digest =
        to === entry.count ? entry.digest : await deps.blobs.put(segmentBlob(lines.slice(0, to)));
      const sealedRoot = to === S ? rootOf(hashes) : undefined;
      deps.check();
      const result = await deps.store.restore({
        owner: deps.owner,
        fence: deps.fence,
        expectedSize: view.size,
        segmentSize: S,
        digest,
        jobIds: leaves.slice(from, to).map((l) => l.record.job_id),
        records: lines.slice(from, to),
        ...(sealedRoot === undefined ? {} : { root: toHex(sealedRoot) }),
      });
      if (result === "fenced") throw new AuditLockLost("a restore was refused");
      if (typeof result !== "number")
        throw new AuditFilesAhead(`restoring segment ${k} was refused (${result})`);
      applyCommit(view, {
        size: result,
        digest,
        records: lines.slice(0, to),
        hashes: hashes.slice(0, to),
        sealedRoot,
      });
      restored += to - from;
    }
    if (entry.count < S) break;
  }
  return restored;
}

/** The index lines that bring `index` (the file's last line per segment) up to the view. */
export function missingIndexLines(
  view: Pick<AuditView, "size" | "segmentSize" | "segments">,
  index: ReadonlyMap<number, { readonly digest: string; readonly count: number }>,
): { segment: number; digest: string; count: number }[] {
  const S = view.segmentSize;
  const lines: { segment: number; digest: string; count: number }[] = [];
  for (const [segment, entry] of index) {
    if (segment >= view.segments.length) {
      throw new AuditFilesAhead(`index.jsonl names segment ${segment}; Redis has ${view.segments.length}`);
    }
    const count = Math.min(S, view.size - segment * S);
    if (entry.count > count) {
      throw new AuditFilesAhead(
        `index.jsonl has ${entry.count} leaves in segment ${segment}; Redis ${count}`,
      );
    }
  }
  view.segments.forEach((digest, segment) => {
    const count = Math.min(S, view.size - segment * S);
    const have = index.get(segment);
    if (have === undefined || have.digest !== digest || have.count !== count) {
      lines.push({ segment, digest, count });
    }
  });
  return lines;
}

/**
 * What a new holder does before it appends: leaves the files hold beyond Redis put back, the index
 * brought up to Redis's state, every public key the files know (old ones too, so old checkpoints
 * keep verifying) published for the JWKS route. `check` is asked before each write.
 * @throws AuditFilesAhead when the files hold more than Redis and cannot be put back.
 */
export async function takeOver(
  view: AuditView,
  deps: RestoreDeps & {
    readonly store: Pick<AuditStore, "publishKeys" | "restore">;
    readonly files: Pick<AuditFiles, "readIndex" | "appendIndex" | "jwks" | "signingKey">;
  },
): Promise<{ readonly indexLines: number; readonly restored: number }> {
  const index = await deps.files.readIndex();
  const restored = filesAhead(view, index) ? await restoreFromFiles(view, index, deps) : 0;
  const lines = missingIndexLines(view, index);
  if (lines.length > 0) {
    deps.check();
    await deps.files.appendIndex(lines);
  }
  await publishAllKeys(deps);
  return { indexLines: lines.length, restored };
}

/** Publishes the current signing key's JWK and every key of the files' JWKS. */
async function publishAllKeys(deps: {
  readonly store: Pick<AuditStore, "publishKeys">;
  readonly files: Pick<AuditFiles, "jwks" | "signingKey">;
}): Promise<void> {
  const current = await deps.files.signingKey();
  const keys = new Map<string, string>();
  for (const jwk of (await deps.files.jwks()).keys) keys.set(jwk.kid, canonicalJson(jwk));
  if (!keys.has(current.kid)) keys.set(current.kid, canonicalJson(await publicJwk(current.publicKey)));
  await deps.store.publishKeys(keys);
}
