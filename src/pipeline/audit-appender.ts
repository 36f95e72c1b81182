// The audit log's single appender (docs/decisions.md "Audit log: the appender"). Every pipeline process
// runs one; the one holding the Redis lock appends: it takes the staged records up to the end of the
// open segment, puts the segment's new blob in the CAS, commits with one fenced script call, appends
// the index line to DATA_DIR/audit/index.jsonl and, at most every AUDIT_CHECKPOINT_MS while the log
// grows, signs a checkpoint (written to checkpoints.jsonl, then published in Redis). A crash anywhere
// leaves no gap and no duplicate: the blob is only referenced by a commit, a commit is all or nothing,
// and the next holder brings the index up to Redis's state before it appends.
import type { Logger } from "pino";
import { canonicalJson } from "../core/canonical-json.js";
import { publicJwk, signCheckpoint } from "../core/checkpoint.js";
import { rootOf, toHex } from "../core/merkle.js";
import type { BlobStore } from "../core/ports.js";
import { rfc3339, type Clock } from "../core/time.js";
import type { AuditFiles } from "../infra/audit-files.js";
import { MAX_COMMIT_RECORDS, type AuditStore } from "../queues/audit-store.js";
import { AuditLockLost, takeLease, type AuditLease } from "./audit-lease.js";
import {
  AuditFilesAhead,
  applyCommit,
  leafOf,
  loadView,
  segmentBlob,
  takeOver,
  type AuditView,
} from "./audit-view.js";

/** The appender's fault points (PIPELINE_FAULT, crash tests). */
export type AuditFault = "audit_after_blob" | "audit_after_commit" | "audit_after_index";

export interface AuditAppenderOptions {
  readonly store: AuditStore;
  readonly blobs: Pick<BlobStore, "put" | "get">;
  readonly files: AuditFiles;
  /** This process's id: the lock's owner. */
  readonly owner: string;
  /** AUDIT_SEGMENT_SIZE. */
  readonly segmentSize: number;
  /** AUDIT_CHECKPOINT_MS: at most one checkpoint per this long while the log grows. */
  readonly checkpointMs: number;
  /** AUDIT_LOCK_MS. */
  readonly lockMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called between the steps (PIPELINE_FAULT). */
  readonly fault?: (point: AuditFault) => void;
  /** How often an idle holder looks for staged records, and a waiting process for a free lock (ms). */
  readonly idleMs?: number;
  /** Recent checkpoints kept in Redis. */
  readonly recentCheckpoints?: number;
}

export interface AuditAppender {
  /** Runs until {@link AuditAppender.stop}. */
  run(): Promise<void>;
  /**
   * Stops, and releases the lock so that another process takes over at once; waits for a step in
   * progress at most `waitMs` (default 5 s). Idempotent.
   */
  stop(waitMs?: number): Promise<void>;
  /** Whether this process holds the lock now. */
  holding(): boolean;
  /** Records this process appended. */
  appended(): number;
}

/**
 * The shortest time between two commits that leave the segment open: each writes the whole open
 * segment to the CAS again and adds an index line, while a full segment is committed at once.
 * Receipts wait for a checkpoint anyway, so a quarter of its interval (at most 250 ms) costs them
 * little and bounds the rewrites.
 */
export const partialCommitGapMs = (checkpointMs: number): number =>
  Math.min(250, Math.floor(checkpointMs / 4));

export function createAuditAppender(o: AuditAppenderOptions): AuditAppender {
  const S = o.segmentSize;
  const idleMs = o.idleMs ?? 50;
  const gapMs = partialCommitGapMs(o.checkpointMs);
  const keep = o.recentCheckpoints ?? 1_000;
  const log = o.logger.child({ component: "audit-appender" });
  let stopped = false;
  let running: Promise<void> | undefined;
  let lease: AuditLease | undefined;
  let view: AuditView | undefined;
  let appended = 0;
  let lastPartialAt = 0;
  let lastCheckpointAt = 0;
  let logId = "";
  /** Key ids this holder published (takeOver publishes the current one and the files' JWKS). */
  const publishedKids = new Set<string>();
  let wake: (() => void) | undefined;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function drop(release: boolean): Promise<void> {
    view = undefined;
    const l = lease;
    lease = undefined;
    await l?.end(release);
  }

  /** Takes the lock if free and brings the files up to Redis's state. False: another holds it. */
  async function acquire(): Promise<boolean> {
    lease = await takeLease({
      store: o.store,
      owner: o.owner,
      lockMs: o.lockMs,
      clock: o.clock,
      logger: log,
    });
    if (lease === undefined) return false;
    const l = lease;
    view = await loadView(o.store, S);
    const { indexLines, restored } = await takeOver(view, {
      store: o.store,
      files: o.files,
      blobs: o.blobs,
      owner: o.owner,
      fence: l.fence,
      check: () => l.check(),
    });
    if (restored > 0) log.warn({ restored }, "audit leaves Redis had lost were put back from DATA_DIR/audit");
    // the first checkpoint of a holder comes at once when the log grew past the last one
    lastCheckpointAt = 0;
    logId = await o.files.logId();
    publishedKids.clear();
    publishedKids.add((await o.files.signingKey()).kid);
    log.info({ fence: l.fence, size: view.size, indexLines, restored }, "audit appender holds the log");
    return true;
  }

  /** Signs and writes a checkpoint of the whole committed log when one is due. */
  async function maybeCheckpoint(v: AuditView, l: AuditLease): Promise<void> {
    if (v.size === v.checkpointSize || o.clock() - lastCheckpointAt < o.checkpointMs) return;
    const key = await o.files.signingKey();
    const now = o.clock();
    const checkpoint = await signCheckpoint(
      {
        log_id: logId,
        tree_size: v.size,
        root_hash: toHex(await v.root()),
        timestamp: rfc3339(now),
        key_id: key.kid,
      },
      key.seed,
    );
    if (!publishedKids.has(key.kid)) {
      // a rotated key is published before any checkpoint it signs is
      await o.store.publishKeys(new Map([[key.kid, canonicalJson(await publicJwk(key.publicKey))]]));
      publishedKids.add(key.kid);
    }
    l.check();
    // the file first: every checkpoint a customer can get from Redis is in checkpoints.jsonl
    await o.files.appendCheckpoint(checkpoint);
    const published = await o.store.publishCheckpoint(
      { owner: o.owner, fence: l.fence, treeSize: v.size, json: JSON.stringify(checkpoint) },
      keep,
    );
    if (published === "fenced") throw new AuditLockLost("a checkpoint was refused");
    lastCheckpointAt = now;
    v.checkpointSize = v.size;
  }

  /**
   * One batch: the staged records up to the end of the open segment. Returns 0 when it appended, else
   * how long to wait before the next look (nothing staged, or a partial commit that is not due yet).
   */
  async function appendBatch(v: AuditView, l: AuditLease): Promise<number> {
    const k = Math.floor(v.size / S);
    const room = (k + 1) * S - v.size;
    const batch = await o.store.staged(Math.min(room, MAX_COMMIT_RECORDS));
    if (batch.length === 0) return idleMs;
    const fills = batch.length === room;
    const due = lastPartialAt + gapMs - o.clock();
    if (!fills && due > 0) return Math.min(idleMs, due);
    const records = [...v.tail, ...batch.map((r) => r.record)];
    const hashes = [...v.tailHashes, ...batch.map((r) => leafOf(r.record))];
    const digest = await o.blobs.put(segmentBlob(records));
    o.fault?.("audit_after_blob");
    const sealedRoot = fills ? rootOf(hashes) : undefined;
    const root = sealedRoot === undefined ? undefined : toHex(sealedRoot);
    const result = await o.store.commit({
      owner: o.owner,
      fence: l.fence,
      expectedSize: v.size,
      segmentSize: S,
      digest,
      jobIds: batch.map((r) => r.jobId),
      ...(root === undefined ? {} : { root }),
    });
    if (result === "fenced") throw new AuditLockLost("a commit was refused");
    if (typeof result !== "number") {
      // not what this holder expected: read the log again before the next batch
      throw new Error(`audit commit refused (${result}); reloading the log`);
    }
    o.fault?.("audit_after_commit");
    applyCommit(v, { size: result, digest, records, hashes, sealedRoot });
    if (sealedRoot === undefined) lastPartialAt = o.clock();
    appended += batch.length;
    l.check();
    await o.files.appendIndex([{ segment: k, digest, count: v.size - k * S }]);
    o.fault?.("audit_after_index");
    return 0;
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (!stopped) {
      try {
        if (lease === undefined && !(await acquire())) {
          await sleep(Math.max(idleMs, Math.floor(o.lockMs / 4)));
          continue;
        }
        const l = lease!;
        const v = view!;
        l.check();
        const wait = await appendBatch(v, l);
        await maybeCheckpoint(v, l);
        failures = 0;
        if (wait > 0) await sleep(wait);
      } catch (err) {
        if (stopped) break;
        failures++;
        if (err instanceof AuditLockLost) {
          log.warn({ err: err.message }, "audit appender stops: it no longer holds the log");
          await drop(false);
        } else if (err instanceof AuditFilesAhead) {
          log.error({ err: err.message }, "audit appender refuses to append");
          await drop(true);
          await sleep(Math.max(1_000, o.lockMs));
        } else {
          if (failures <= 3 || failures % 100 === 0) log.warn({ err }, "audit append step failed; retrying");
          // the view may be behind what Redis committed (a lost reply): loaded again next time
          await drop(true);
          await sleep(Math.min(5_000, 100 * failures));
        }
      }
    }
  }

  return {
    run() {
      running ??= loop();
      return running;
    },
    async stop(waitMs = 5_000) {
      stopped = true;
      wake?.();
      // a step stuck on an unreachable Redis must not hold up a shutdown (its lock then expires)
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise((r) => (bound = setTimeout(r, waitMs)))]);
      clearTimeout(bound);
      await Promise.race([drop(true), new Promise((r) => (bound = setTimeout(r, 1_000)))]);
      clearTimeout(bound);
    },
    holding: () => lease?.valid() ?? false,
    appended: () => appended,
  };
}
