// The outbox stream on the relay's side: read through one consumer group, acknowledge, claim what a
// dead relay left pending, trim what has been handed off, and measure the lag (docs/decisions.md
// "Outbox"). The entries are written by the scheduler's Lua (lib.lua add_event).
import type { RedisClient } from "../infra/redis-client.js";
import type { OutboxEvent } from "../core/outbox.js";
import { createKeys, OUTBOX_GROUP } from "./keys.js";

/** An outbox entry: its stream id and the event, or why the entry could not be read. */
export type OutboxEntry =
  | { readonly streamId: string; readonly event: OutboxEvent }
  | { readonly streamId: string; readonly malformed: string };

export interface OutboxStore {
  /** Creates the consumer group (from the stream's start) unless it exists. */
  ensureGroup(): Promise<void>;
  /** New entries for `consumer`, waiting up to `blockMs` (0: no wait) for at least one. */
  read(consumer: string, count: number, blockMs: number): Promise<OutboxEntry[]>;
  /** Entries pending longer than `idleMs` on any consumer (a relay that died), now `consumer`'s. */
  claim(consumer: string, idleMs: number, count: number): Promise<OutboxEntry[]>;
  ack(streamIds: readonly string[]): Promise<void>;
  /**
   * Deletes the entries every reader is done with: those before the oldest pending entry, or before
   * the last delivered when none is pending. Returns how many were deleted.
   */
  trim(): Promise<number>;
  /**
   * The relay's lag: entries not yet handed off (undelivered + pending) and the age (ms) of the
   * oldest of them, 0 when there is none.
   */
  lag(now: number): Promise<{ readonly entries: number; readonly oldestMs: number }>;
}

type RawEntry = [id: string, fields: string[]];

/** XINFO GROUPS replies: one flat field/value list per group. */
function groupInfos(reply: unknown): Record<string, string | number | null>[] {
  return ((reply as unknown[][] | null) ?? []).map((g) => {
    const info: Record<string, string | number | null> = {};
    for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1] as string | number | null;
    return info;
  });
}

/** Milliseconds of a stream id `<ms>-<seq>`. */
function streamMs(id: string): number {
  return Number(id.slice(0, id.indexOf("-")));
}

function decode([streamId, fields]: RawEntry): OutboxEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  try {
    const data: unknown = JSON.parse(f.data ?? "{}");
    const record: unknown = JSON.parse(f.rec ?? "{}");
    const seq = Number(f.seq);
    const at = Number(f.at);
    if (!f.id || !f.ev || !Number.isSafeInteger(seq) || !Number.isFinite(at))
      throw new Error("missing fields");
    if (typeof data !== "object" || data === null || typeof record !== "object" || record === null)
      throw new Error("data and rec must be objects");
    return {
      streamId,
      event: {
        jobId: f.id,
        event: f.ev,
        seq,
        at,
        data: data as Record<string, unknown>,
        record: record as Record<string, string>,
      },
    };
  } catch (err) {
    return { streamId, malformed: err instanceof Error ? err.message : String(err) };
  }
}

export function createOutboxStore(redis: RedisClient, prefix: string): OutboxStore {
  const stream = createKeys(prefix).outbox;
  return {
    async ensureGroup() {
      try {
        await redis.xgroup("CREATE", stream, OUTBOX_GROUP, "0", "MKSTREAM");
      } catch (err) {
        if (!String((err as Error).message).includes("BUSYGROUP")) throw err;
      }
    },

    async read(consumer, count, blockMs) {
      const res = (
        blockMs > 0
          ? await redis.xreadgroup(
              "GROUP",
              OUTBOX_GROUP,
              consumer,
              "COUNT",
              count,
              "BLOCK",
              blockMs,
              "STREAMS",
              stream,
              ">",
            )
          : await redis.xreadgroup("GROUP", OUTBOX_GROUP, consumer, "COUNT", count, "STREAMS", stream, ">")
      ) as [string, RawEntry[]][] | null;
      return (res?.[0]?.[1] ?? []).map(decode);
    },

    async claim(consumer, idleMs, count) {
      const res = (await redis.call(
        "XAUTOCLAIM",
        stream,
        OUTBOX_GROUP,
        consumer,
        idleMs,
        "0",
        "COUNT",
        count,
      )) as [string, (RawEntry | null)[]];
      // entries deleted while pending come back as nil (Redis 7 lists their ids apart): nothing to do
      return res[1].filter((e): e is RawEntry => Array.isArray(e)).map(decode);
    },

    async ack(streamIds) {
      if (streamIds.length > 0) await redis.xack(stream, OUTBOX_GROUP, ...streamIds);
    },

    async trim() {
      let floor: string | undefined;
      for (const info of groupInfos(await redis.call("XINFO", "GROUPS", stream))) {
        const last = String(info["last-delivered-id"] ?? "0-0");
        let bound = last;
        if (Number(info.pending ?? 0) > 0) {
          const oldest = (await redis.xpending(stream, String(info.name), "-", "+", 1)) as [
            string,
            ...unknown[],
          ][];
          if (oldest[0]) bound = oldest[0][0];
        } else {
          // nothing pending: everything up to the last delivered is done; MINID keeps ids >= bound
          const [ms, seq] = last.split("-").map(Number) as [number, number];
          bound = `${ms}-${seq + 1}`;
        }
        if (floor === undefined || compareIds(bound, floor) < 0) floor = bound;
      }
      if (floor === undefined) return 0;
      return (await redis.call("XTRIM", stream, "MINID", floor)) as number;
    },

    async lag(now) {
      const info = groupInfos(await redis.call("XINFO", "GROUPS", stream).catch(() => []))[0] ?? {};
      const pending = Number(info.pending ?? 0);
      const last = String(info["last-delivered-id"] ?? "0-0");
      let oldest: string | undefined;
      if (pending > 0) {
        const p = (await redis.xpending(stream, OUTBOX_GROUP, "-", "+", 1)) as [string, ...unknown[]][];
        oldest = p[0]?.[0];
      }
      const next = (await redis.xrange(stream, `(${last}`, "+", "COUNT", 1)) as RawEntry[];
      oldest ??= next[0]?.[0];
      // Redis 7 counts the undelivered entries itself (`lag`; nil when it cannot tell: then the
      // stream's length, an upper bound)
      const undelivered =
        info.lag === null || info.lag === undefined ? await redis.xlen(stream) : Number(info.lag);
      return {
        entries: pending + undelivered,
        oldestMs: oldest === undefined ? 0 : Math.max(0, now - streamMs(oldest)),
      };
    },
  };
}

/** Stream id order. */
function compareIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am !== bm ? am - bm : as - bs;
}
