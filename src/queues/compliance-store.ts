// What the compliance job keeps in Redis (docs/decisions.md "Compliance"): the list of stored reports
// (their CAS digests by time, each with a summary; compliance_add.lua), and what the reconciliation
// asks of the scheduler's state: where admitted jobs stand now, and whether they were billed.
import type { RedisClient } from "../infra/redis-client.js";
import type { LiveJob, LiveState, ReportSummary } from "../core/reconcile-types.js";
import { createKeys } from "./keys.js";
import { defineScripts } from "./scripts.js";

export interface ComplianceStore {
  /** Lists a report stored in the CAS; reports generated before `keepSinceMs` leave the list. */
  add(summary: ReportSummary, generatedMs: number, keepSinceMs: number): Promise<void>;
  /** Up to `limit` reports generated before `beforeMs` (default: any time), newest first. */
  list(limit: number, beforeMs?: number): Promise<{ summary: ReportSummary; generatedMs: number }[]>;
  /** The summary of a listed report, undefined when it is not listed. */
  get(digest: string): Promise<ReportSummary | undefined>;
  /** Where each job stands in Redis and whether its billing marker says billed (one pipeline). */
  liveJobs(ids: readonly string[]): Promise<Map<string, LiveJob>>;
}

const STATES: ReadonlySet<string> = new Set(["queued", "running", "complete", "error", "cancelled"]);
/** Old reports dropped per add at most (an add a period: the list never lags far behind). */
const DROP_PER_ADD = 100;

function parseSummary(raw: string | null): ReportSummary | undefined {
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw) as ReportSummary;
  } catch {
    return undefined;
  }
}

export function createComplianceStore(redis: RedisClient, prefix: string): ComplianceStore {
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix);
  return {
    async add(summary, generatedMs, keepSinceMs) {
      await run("compliance_add", keys.complianceReports, [
        summary.digest,
        Math.floor(generatedMs),
        JSON.stringify(summary),
        Math.floor(keepSinceMs),
        DROP_PER_ADD,
      ]);
    },

    async list(limit, beforeMs) {
      const max = beforeMs === undefined ? "+inf" : `(${Math.floor(beforeMs)}`;
      const flat = await redis.zrevrangebyscore(
        keys.complianceReports,
        max,
        "-inf",
        "WITHSCORES",
        "LIMIT",
        0,
        limit,
      );
      const digests: string[] = [];
      const scores: number[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        digests.push(flat[i]!);
        scores.push(Number(flat[i + 1]));
      }
      if (digests.length === 0) return [];
      const raw = await redis.hmget(keys.complianceSummaries, ...digests);
      return digests.flatMap((_, i) => {
        const summary = parseSummary(raw[i] ?? null);
        return summary === undefined ? [] : [{ summary, generatedMs: scores[i]! }];
      });
    },

    async get(digest) {
      return parseSummary(await redis.hget(keys.complianceSummaries, digest));
    },

    async liveJobs(ids) {
      const out = new Map<string, LiveJob>();
      if (ids.length === 0) return out;
      const pipe = redis.pipeline();
      for (const id of ids) {
        pipe.hget(keys.job(id), "status");
        pipe.get(keys.billed(id));
      }
      const replies = (await pipe.exec()) ?? [];
      ids.forEach((id, i) => {
        const [statusErr, status] = replies[2 * i] ?? [new Error("no reply"), null];
        const [markerErr, marker] = replies[2 * i + 1] ?? [new Error("no reply"), null];
        if (statusErr) throw statusErr;
        if (markerErr) throw markerErr;
        const state: LiveState =
          typeof status === "string" && STATES.has(status) ? (status as LiveState) : "absent";
        out.set(id, { state, billed: marker === "done" });
      });
      return out;
    },
  };
}
