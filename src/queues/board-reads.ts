// Bounded pages of the scheduler's Redis structures for the admin board (src/admin): the order
// (queued), the tenants' held sets, the backoff set, the backend leases (running) and the newest
// finished jobs. Every job is read with the job store's `read` (read.lua): its position is the one
// `GET /jobs/{id}` shows, read in the same step as its record.
import type { RedisClient } from "../infra/redis-client.js";
import { parseAttemptId } from "../core/attempt-id.js";
import type { JobRecord } from "../core/job.js";
import type { JobStore } from "./job-store.js";
import { createKeys } from "./keys.js";

/** The board's views of the scheduler (src/admin/scheduler-job.ts maps them to Bull Board statuses). */
export type BoardView = "queued" | "held" | "backoff" | "running" | "completed" | "failed";

/** One job as the board shows it. */
export interface BoardJob {
  readonly job: JobRecord;
  /** Jobs ahead of it in the order (0 = next); -1 unless queued. */
  readonly position: number;
  /** Held back only by its tenant's running-at-once limit (`held: "concurrency_limit"`). */
  readonly held: boolean;
  /** When a queued job waiting for its retry backoff may start (ms); absent when it does not wait. */
  readonly notBefore?: number;
}

export type BoardCounts = Readonly<Record<BoardView, number>>;

export interface BoardReads {
  /** How many jobs each view holds; `completed` and `failed` count the newest finished window. */
  counts(): Promise<BoardCounts>;
  /**
   * Jobs `start`..`end` (0-based, inclusive) of a view: queued and held in the order (lowest key
   * first; held grouped by tenant), backoff by the time they may start, running by backend, finished
   * newest first. At most {@link BOARD_PAGE_MAX} jobs; jobs that ended between the reads are left out.
   */
  page(view: BoardView, start: number, end: number): Promise<BoardJob[]>;
  /** One job, or undefined when there is none. */
  job(id: string): Promise<BoardJob | undefined>;
}

/** Most jobs one page reads, whatever the board asks for. */
export const BOARD_PAGE_MAX = 100;
/** The finished jobs the board looks at: the newest ones of the retention index (`done`). */
export const RECENT_FINISHED = 1_000;
/** Highest offset a page may start at (keeps Redis's range arguments small integers). */
const MAX_START = 10_000_000;

/** `[start, end]` clamped to at most BOARD_PAGE_MAX items; undefined when it is empty. */
export function clampPage(start: number, end: number): { start: number; end: number } | undefined {
  const s = Number.isFinite(start) ? Math.min(MAX_START, Math.max(0, Math.floor(start))) : 0;
  const e = Number.isFinite(end) ? Math.min(s + BOARD_PAGE_MAX - 1, Math.floor(end)) : s + BOARD_PAGE_MAX - 1;
  return e < s ? undefined : { start: s, end: e };
}

/**
 * The parts of groups of `count` items each (in the given order) that fall in `[start, end]` of
 * their concatenation, as `[group, from, to]` within the group.
 */
export function sliceGroups(
  groups: readonly (readonly [string, number])[],
  start: number,
  end: number,
): [string, number, number][] {
  const out: [string, number, number][] = [];
  let offset = 0;
  for (const [name, count] of groups) {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end - offset, count - 1);
    if (from <= to) out.push([name, from, to]);
    offset += count;
    if (offset > end) break;
  }
  return out;
}

const isFailed = (status: string | null) => status === "error" || status === "cancelled";

export function createBoardReads(
  redis: RedisClient,
  prefix: string,
  store: Pick<JobStore, "read">,
): BoardReads {
  const keys = createKeys(prefix);

  /** The active tenants (sorted) with the size of each one's held set. */
  async function heldGroups(): Promise<[string, number][]> {
    const tenants = (await redis.smembers(keys.activeTenants)).sort();
    if (tenants.length === 0) return [];
    const pipe = redis.pipeline();
    for (const t of tenants) pipe.zcard(keys.held(t));
    const res = (await pipe.exec()) ?? [];
    return tenants.map((t, i) => [t, Number(res[i]?.[1] ?? 0)]);
  }

  /** Backends holding leases (sorted) with their lease counts. */
  async function leaseGroups(): Promise<[string, number][]> {
    const backends = (await redis.smembers(keys.leaseBackends)).sort();
    if (backends.length === 0) return [];
    const pipe = redis.pipeline();
    for (const b of backends) pipe.zcard(keys.lease(b));
    const res = (await pipe.exec()) ?? [];
    return backends.map((b, i) => [b, Number(res[i]?.[1] ?? 0)]);
  }

  /** The ids of the newest finished jobs, split by how they ended (one pipeline of HGETs). */
  async function finishedWindow(): Promise<{ completed: string[]; failed: string[] }> {
    const ids = await redis.zrevrange(keys.done, 0, RECENT_FINISHED - 1);
    const out = { completed: [] as string[], failed: [] as string[] };
    if (ids.length === 0) return out;
    const pipe = redis.pipeline();
    for (const id of ids) pipe.hget(keys.job(id), "status");
    const res = (await pipe.exec()) ?? [];
    ids.forEach((id, i) => {
      const status = (res[i]?.[1] ?? null) as string | null;
      if (status === "complete") out.completed.push(id);
      else if (isFailed(status)) out.failed.push(id);
    });
    return out;
  }

  /** Reads `ids` in order (a job gone meanwhile is left out), with their backoff times. */
  async function readAll(ids: readonly string[]): Promise<BoardJob[]> {
    if (ids.length === 0) return [];
    const pipe = redis.pipeline();
    for (const id of ids) pipe.zscore(keys.backoff, id);
    const [reads, scores] = await Promise.all([Promise.all(ids.map((id) => store.read(id))), pipe.exec()]);
    const out: BoardJob[] = [];
    reads.forEach((r, i) => {
      if (r === undefined) return;
      const score = scores?.[i]?.[1];
      const notBefore = r.job.status === "queued" && score != null ? Number(score) : undefined;
      out.push({ ...r, ...(notBefore === undefined ? {} : { notBefore }) });
    });
    return out;
  }

  /** The members of sorted sets for `[group, from, to]` parts, in order. */
  async function membersOf(
    parts: readonly [string, number, number][],
    keyOf: (group: string) => string,
  ): Promise<string[]> {
    if (parts.length === 0) return [];
    const pipe = redis.pipeline();
    for (const [group, from, to] of parts) pipe.zrange(keyOf(group), String(from), String(to));
    const res = (await pipe.exec()) ?? [];
    return res.flatMap(([, members]) => (members ?? []) as string[]);
  }

  async function ids(view: BoardView, start: number, end: number): Promise<string[]> {
    switch (view) {
      case "queued":
        return redis.zrange(keys.queue, String(start), String(end));
      case "backoff":
        return redis.zrange(keys.backoff, String(start), String(end));
      case "held":
        return membersOf(sliceGroups(await heldGroups(), start, end), (t) => keys.held(t));
      case "running": {
        const attempts = await membersOf(sliceGroups(await leaseGroups(), start, end), (b) => keys.lease(b));
        // a lease member is an attempt id `<job id>|<token>`; one job holds one lease at a time
        return [...new Set(attempts.map((a) => parseAttemptId(a)?.id).filter((id) => id !== undefined))];
      }
      case "completed":
      case "failed":
        return (await finishedWindow())[view].slice(start, end + 1);
    }
  }

  return {
    async counts() {
      const [queued, backoff, held, leases, finished] = await Promise.all([
        redis.zcard(keys.queue),
        redis.zcard(keys.backoff),
        heldGroups(),
        leaseGroups(),
        finishedWindow(),
      ]);
      const sum = (groups: [string, number][]) => groups.reduce((n, [, c]) => n + c, 0);
      return {
        queued,
        held: sum(held),
        backoff,
        running: sum(leases),
        completed: finished.completed.length,
        failed: finished.failed.length,
      };
    },

    async page(view, start, end) {
      const range = clampPage(start, end);
      if (range === undefined) return [];
      return readAll(await ids(view, range.start, range.end));
    },

    async job(id) {
      return (await readAll([id]))[0];
    },
  };
}
