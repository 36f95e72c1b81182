// The audit log's state in Redis (docs/decisions.md "Audit log: the appender"): staged records, the
// appender's lock and fencing token, the committed tree (size, segment digests, sealed roots, leaf
// indexes, the open segment's tail), signed checkpoints and the public keys. Every change is one
// script (audit_*.lua); the reads are plain commands. Checkpoints and keys are stored as the JSON the
// caller made: this layer does not look inside them.
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys } from "./keys.js";
import { refusalOf } from "./script-codes.js";
import { defineScripts } from "./scripts.js";

/** Most records one commit may carry (one script call; Lua's unpack takes a few thousand values). */
export const MAX_COMMIT_RECORDS = 2_000;

/** What the log holds now, read in one step. */
export interface AuditHead {
  /** Leaves committed. */
  readonly size: number;
  /** Sealed segments (each exactly S leaves). */
  readonly sealed: number;
  /** The latest signed checkpoint (JSON), when one was published. */
  readonly checkpoint: string | undefined;
  /** The leaf index of the job asked about, when it is in the log. */
  readonly leaf: number | undefined;
}

/** A staged record: the job id and its canonical JSON. */
export interface StagedRecord {
  readonly jobId: string;
  readonly record: string;
}

/** One commit of the appender (see audit_commit.lua). */
export interface AuditCommit {
  readonly owner: string;
  readonly fence: number;
  /** The size the appender's view has: the commit is refused (`moved`) when Redis's differs. */
  readonly expectedSize: number;
  readonly segmentSize: number;
  /** The digest of the segment's new blob (its leaves so far), already in the CAS. */
  readonly digest: string;
  /** The segment's hex root when this commit fills it. */
  readonly root?: string;
  /** The job ids, the next staged ones in order. */
  readonly jobIds: readonly string[];
}

export interface AuditStore {
  /** Stages a record once per job id: false when it was staged or appended before. */
  stage(jobId: string, canonical: string): Promise<boolean>;
  /** Takes the lock when free: the fencing token drawn, 0 when another holds it. */
  acquire(owner: string, lockMs: number): Promise<number>;
  /** Extends the lock while it is still this holder's (false: lost). */
  renew(owner: string, fence: number, lockMs: number): Promise<boolean>;
  /** Releases the lock when it is still this holder's. */
  release(owner: string, fence: number): Promise<void>;
  /** Up to `limit` staged records, oldest first. */
  staged(limit: number): Promise<StagedRecord[]>;
  /** How many records are staged. */
  stagedCount(): Promise<number>;
  /**
   * The appender's backlog: records staged, and when the oldest of them finished (its record's
   * `completed_at`, ms), undefined when none is staged.
   */
  backlog(): Promise<{ staged: number; oldestAt: number | undefined }>;
  /** One commit: the new size, or why nothing changed. */
  commit(c: AuditCommit): Promise<number | "fenced" | "moved" | "unstaged">;
  /**
   * Puts leaves that the files hold and Redis lost back (audit_restore.lua): like a commit, with the
   * records given (`records[i]` of `jobIds[i]`) instead of staged ones.
   */
  restore(
    c: AuditCommit & { readonly records: readonly string[] },
  ): Promise<number | "fenced" | "moved" | "appended">;
  /**
   * Publishes a signed checkpoint of `treeSize` leaves (at most the committed size): true when it is
   * the latest now, false when a newer one was published already.
   */
  publishCheckpoint(
    c: { readonly owner: string; readonly fence: number; readonly treeSize: number; readonly json: string },
    keep: number,
  ): Promise<boolean | "fenced" | "moved">;
  /** Adds public keys (key id → JWK JSON) to those the JWKS route serves. */
  publishKeys(keys: ReadonlyMap<string, string>): Promise<void>;
  /** Every published public key (JWK JSON), in no particular order. */
  keys(): Promise<string[]>;
  /** Size, sealed segments, the latest checkpoint and, when given, `jobId`'s leaf index: one step. */
  head(jobId?: string): Promise<AuditHead>;
  /** The digests of segments `from`.. (at most `count`). */
  segments(from: number, count: number): Promise<string[]>;
  /** The hex roots of sealed segments `from`.. (at most `count`). */
  roots(from: number, count: number): Promise<string[]>;
  /** The open segment's leaves (canonical records) `from`.. (at most `count`). */
  tail(from: number, count: number): Promise<string[]>;
  /**
   * The first `count` leaves of segment k while it is the open one, read in one step with the sealed
   * count; undefined when segment k is sealed (its blob holds them).
   */
  openTail(k: number, count: number): Promise<string[] | undefined>;
  /** Up to `count` segments from `from` on (digests, and roots of the sealed ones) and the size: one step. */
  segmentPage(from: number, count: number): Promise<{ size: number; digests: string[]; roots: string[] }>;
  /** Recent checkpoints (JSON), newest first. */
  recentCheckpoints(): Promise<string[]>;
}

/** The replies of a MULTI, or its first error. */
async function exec(m: ReturnType<RedisClient["multi"]>): Promise<unknown[]> {
  const replies = (await m.exec()) ?? [];
  const failed = replies.find(([err]) => err !== null);
  if (failed) throw failed[0] as Error;
  return replies.map(([, v]) => v);
}

/** The leaf index of a stored reply, undefined when absent. */
const indexOf = (v: string | null | undefined): number | undefined =>
  v === null || v === undefined ? undefined : Number(v);

export function createAuditStore(redis: RedisClient, prefix: string): AuditStore {
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix);
  // the routing key of every script: the scheduler's (all keys share the prefix's hash tag)
  const at = keys.queue;
  const range = (key: string, from: number, count: number) =>
    count <= 0 ? Promise.resolve([]) : redis.lrange(key, from, from + count - 1);

  return {
    async stage(jobId, canonical) {
      return Number(await run("audit_stage", at, [jobId, canonical])) === 1;
    },

    async acquire(owner, lockMs) {
      return Number(await run("audit_lock", at, [owner, Math.max(1, Math.floor(lockMs)), 0]));
    },

    async renew(owner, fence, lockMs) {
      return Number(await run("audit_lock", at, [owner, Math.max(1, Math.floor(lockMs)), fence])) === fence;
    },

    async release(owner, fence) {
      await run("audit_lock", at, [owner, 0, fence]);
    },

    async staged(limit) {
      const ids = await redis.lrange(keys.auditStagedOrder, 0, Math.max(0, limit - 1));
      if (ids.length === 0) return [];
      const records = await redis.hmget(keys.auditStaged, ...ids);
      const out: StagedRecord[] = [];
      for (let i = 0; i < ids.length; i++) {
        const record = records[i];
        // (only a commit removes staged records, and only the appender commits)
        if (record === null || record === undefined) break;
        out.push({ jobId: ids[i]!, record });
      }
      return out;
    },

    stagedCount: () => redis.llen(keys.auditStagedOrder),

    async backlog() {
      const [staged, first] = (await exec(
        redis.multi().llen(keys.auditStagedOrder).lindex(keys.auditStagedOrder, 0),
      )) as [number, string | null];
      if (first === null) return { staged, oldestAt: undefined };
      const record = await redis.hget(keys.auditStaged, first);
      const at =
        record === null
          ? NaN
          : Date.parse((JSON.parse(record) as { completed_at?: string }).completed_at ?? "");
      return { staged, oldestAt: Number.isFinite(at) ? at : undefined };
    },

    async commit(c) {
      if (c.jobIds.length === 0 || c.jobIds.length > MAX_COMMIT_RECORDS) {
        throw new RangeError(`a commit carries 1..${MAX_COMMIT_RECORDS} records`);
      }
      const code = Number(
        await run("audit_commit", at, [
          c.owner,
          c.fence,
          c.expectedSize,
          c.segmentSize,
          c.digest,
          c.root ?? "",
          ...c.jobIds,
        ]),
      );
      return refusalOf("audit_commit", code) ?? code;
    },

    async restore(c) {
      if (
        c.jobIds.length === 0 ||
        c.jobIds.length > MAX_COMMIT_RECORDS ||
        c.records.length !== c.jobIds.length
      ) {
        throw new RangeError(`a restore carries 1..${MAX_COMMIT_RECORDS} records, one per job id`);
      }
      const pairs = c.jobIds.flatMap((id, i) => [id, c.records[i]!]);
      const code = Number(
        await run("audit_restore", at, [
          c.owner,
          c.fence,
          c.expectedSize,
          c.segmentSize,
          c.digest,
          c.root ?? "",
          ...pairs,
        ]),
      );
      return refusalOf("audit_restore", code) ?? code;
    },

    async publishCheckpoint(c, keep) {
      const code = Number(
        await run("audit_checkpoint", at, [c.owner, c.fence, c.treeSize, c.json, Math.max(1, keep)]),
      );
      return refusalOf("audit_checkpoint", code) ?? code === 1;
    },

    async publishKeys(jwks) {
      if (jwks.size > 0) await redis.hset(keys.auditKeys, Object.fromEntries(jwks));
    },

    async keys() {
      return redis.hvals(keys.auditKeys);
    },

    async head(jobId) {
      const [size, sealed, checkpoint, leaf] = (await exec(
        redis
          .multi()
          .get(keys.auditSize)
          .llen(keys.auditRoots)
          .get(keys.auditCheckpoint)
          .hget(keys.auditLeaf, jobId ?? ""),
      )) as [string | null, number, string | null, string | null];
      return {
        size: Number(size ?? 0),
        sealed,
        checkpoint: checkpoint ?? undefined,
        leaf: jobId === undefined ? undefined : indexOf(leaf),
      };
    },

    segments: (from, count) => range(keys.auditSegments, from, count),
    roots: (from, count) => range(keys.auditRoots, from, count),
    tail: (from, count) => range(keys.auditTail, from, count),

    async openTail(k, count) {
      const [sealed, tail] = (await exec(
        redis
          .multi()
          .llen(keys.auditRoots)
          .lrange(keys.auditTail, 0, Math.max(0, count - 1)),
      )) as [number, string[]];
      return sealed === k ? tail.slice(0, count) : undefined;
    },

    async segmentPage(from, count) {
      const last = from + Math.max(1, count) - 1;
      const [size, digests, roots] = (await exec(
        redis
          .multi()
          .get(keys.auditSize)
          .lrange(keys.auditSegments, from, last)
          .lrange(keys.auditRoots, from, last),
      )) as [string | null, string[], string[]];
      return count <= 0
        ? { size: Number(size ?? 0), digests: [], roots: [] }
        : { size: Number(size ?? 0), digests, roots };
    },
    recentCheckpoints: () => redis.lrange(keys.auditCheckpoints, 0, -1),
  };
}
