// The appender's view of the committed log (docs/decisions.md "Audit log: the appender"): its size, the
// sealed segments' roots and the open segment's leaves, loaded from Redis when the lock is taken and
// kept up to date by the appender's own commits; and what a new holder does before its first commit —
// bring DATA_DIR/audit/index.jsonl up to Redis's state (a holder that died after a commit and before
// its index line loses nothing) and publish the public keys.
import { canonicalJson } from "../core/canonical-json.js";
import { publicJwk } from "../core/checkpoint.js";
import { fromHex, leafHash, segmentedSubtreeHashes, type Hash } from "../core/merkle.js";
import { createLru } from "../core/lru.js";
import type { AuditFiles } from "../infra/audit-files.js";
import type { AuditStore } from "../queues/audit-store.js";

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
      `audit log state is inconsistent: size ${head.size}, ${roots.length} roots, ${tail.length} tail leaves at segment size ${S}`,
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
 * What a new holder does before it appends: the index brought up to Redis's state, every public key
 * the files know (old ones too, so old checkpoints keep verifying) published for the JWKS route.
 * `check` is asked before the write to the files.
 * @throws AuditFilesAhead when the files hold more than Redis.
 */
export async function takeOver(
  view: AuditView,
  deps: {
    readonly store: Pick<AuditStore, "publishKeys">;
    readonly files: Pick<AuditFiles, "readIndex" | "appendIndex" | "jwks" | "signingKey">;
    readonly check: () => void;
  },
): Promise<{ readonly indexLines: number }> {
  const lines = missingIndexLines(view, await deps.files.readIndex());
  if (lines.length > 0) {
    deps.check();
    await deps.files.appendIndex(lines);
  }
  await publishAllKeys(deps);
  return { indexLines: lines.length };
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
