// Bench — a Redis failover through Sentinel under steady submits: one primary, two replicas and three
// sentinels (test/helpers/sentinel.ts, down-after-milliseconds 1000), one worker and two API
// processes — one with WAIT off, one with REDIS_WAIT_REPLICAS=1 — each sent a POST /queue every
// `--interval-ms`. Each round kills the primary (kill -9), measures kill → the sentinels naming the
// new primary (the floor), kill → the first reply to a plain ioredis Sentinel client (the raw bound:
// `new Redis({ sentinels, name })`, defaults) and kill → each API's first 202 to a request sent after
// the kill (the gap), counts the acknowledged jobs the failover lost, then brings the killed server
// back as a replica for the next round.
//   npx tsx bench/failover.ts [--rounds 3] [--interval-ms 20] [--down-after-ms 1000]
import { join } from "node:path";
import { Redis } from "ioredis";
import { workerBody } from "./lib/admit.js";
import { mintToken, startApi, startWorker, startZeroStepSim, writeBenchTiers } from "./lib/gateway.js";
import { isMain, options, standalone, type BenchDef } from "./lib/harness.js";
import { sleep, waitUntil } from "./lib/proc.js";
import { figure, median, printTable } from "./lib/report.js";
import { startSentinels } from "../test/helpers/sentinel.js";

const PREFIX = "{bench}";
/** Longest an answer may take: a hang beyond it is a problem. */
const ANSWER_BOUND_MS = 5_000;

interface Sent {
  readonly sentAt: number;
  doneAt?: number;
  status?: number;
  id?: string;
}

interface Round {
  round: number;
  /** kill → every sentinel names the new primary. */
  promotionMs: number;
  /** kill → first reply to a plain ioredis Sentinel client's command sent after the kill. */
  rawClientMs: number;
  /** kill → first 202 to a request sent after the kill, WAIT off / WAIT 1. */
  gapMs: number;
  gapWaitMs: number;
  /** Jobs acknowledged (202) before the kill that the failover lost (404 after it), WAIT off / WAIT 1. */
  lost: number;
  lostWait: number;
  acked: number;
  ackedWait: number;
  /** Answers other than 202 and 503, or slower than the bound. */
  odd: number;
  slowestMs: number;
}

/** Sends a POST /queue every `intervalMs` until stopped; every answer is kept. */
function steadySubmits(url: string, token: string, intervalMs: number) {
  const sent: Sent[] = [];
  const inflight = new Set<Promise<void>>();
  let n = 0;
  const timer = setInterval(() => {
    const s: Sent = { sentAt: Date.now() };
    sent.push(s);
    const p = fetch(`${url}/queue`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ ...workerBody(2), prompt: `failover ${n++}` }),
      signal: AbortSignal.timeout(ANSWER_BOUND_MS * 2),
    })
      .then(async (res) => {
        const body = (await res.json()) as { id?: string };
        s.status = res.status;
        if (res.status === 202 && body.id) s.id = body.id;
      })
      .catch(() => {
        s.status = 0;
      })
      .finally(() => {
        s.doneAt = Date.now();
        inflight.delete(p);
      });
    inflight.add(p);
  }, intervalMs);
  return {
    sent,
    async stop() {
      clearInterval(timer);
      await Promise.all([...inflight]);
    },
    firstAckAfter(t: number): number | undefined {
      const acks = sent.filter((s) => s.status === 202 && s.sentAt > t).map((s) => s.doneAt!);
      return acks.length === 0 ? undefined : Math.min(...acks);
    },
  };
}

/** GET /jobs/{id}: whether the job exists. */
async function exists(url: string, token: string, id: string): Promise<boolean> {
  const res = await fetch(`${url}/jobs/${id}?redirect=false`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  if (res.status !== 200 && res.status !== 404) throw new Error(`GET /jobs/${id}: ${res.status}`);
  return res.status === 200;
}

export const failoverBench: BenchDef = {
  name: "failover",
  title: "Bench — Redis failover gap through Sentinel (kill -9 → first 202), WAIT off and WAIT 1",
  async run(ctx) {
    const { rounds, intervalMs, downAfterMs } = options({ rounds: 3, intervalMs: 20, downAfterMs: 1_000 });
    const dep = await startSentinels(join(ctx.dir, "sentinel"), {
      replicas: 2,
      downAfterMs,
      failoverTimeoutMs: 3 * downAfterMs,
    });
    const raw = new Redis({ sentinels: [...dep.sentinels], name: dep.name, lazyConnect: false });
    raw.on("error", () => undefined);
    try {
      const { backendsFile } = await startZeroStepSim(ctx.dir, ctx.logDir, 8);
      const common = { redisUrl: "", prefix: PREFIX, logDir: ctx.logDir };
      // The bench tiers: quotas far above what the bench sends (the lost-job reads included).
      const env = { ...dep.env(), BACKENDS_FILE: backendsFile, TIERS_FILE: writeBenchTiers(ctx.dir) };
      await startWorker({ ...common, dataDir: join(ctx.dir, "worker"), redis: raw, extra: env });
      const api = await startApi({ ...common, name: "api", dataDir: join(ctx.dir, "api"), extra: env });
      const apiWait = await startApi({
        ...common,
        name: "api-wait",
        dataDir: join(ctx.dir, "api-wait"),
        extra: { ...env, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_MS: "1000" },
      });
      const token = await mintToken("bench-failover", "pro");
      const results: Round[] = [];
      for (let r = 1; r <= rounds; r++) {
        await dep.waitSettled(60_000);
        const load = steadySubmits(api.url, token, intervalMs);
        const loadWait = steadySubmits(apiWait.url, token, intervalMs);
        let killAt = 0;
        let rawFirst = 0;
        const rawProbe = setInterval(() => {
          const sentAt = Date.now();
          raw.set(`${PREFIX}:raw-probe`, String(sentAt)).then(
            () => {
              if (sentAt > killAt && rawFirst === 0 && killAt > 0) rawFirst = Date.now();
            },
            () => undefined,
          );
        }, intervalMs);
        try {
          await sleep(2_000);
          const old = await dep.primary();
          killAt = Date.now();
          await old.kill("SIGKILL");
          const promoted = await dep.waitForFailover(old, 60_000);
          const promotionMs = Date.now() - killAt;
          const gaps = await waitUntil(
            "a 202 from both APIs after the kill",
            () => {
              const a = load.firstAckAfter(killAt);
              const b = loadWait.firstAckAfter(killAt);
              return Promise.resolve(a !== undefined && b !== undefined && rawFirst > 0 ? [a, b] : undefined);
            },
            60_000,
            20,
          );
          await sleep(1_000);
          await Promise.all([load.stop(), loadWait.stop()]);
          clearInterval(rawProbe);
          const lostOf = async (sent: Sent[], url: string) => {
            const acked = sent.filter((s) => s.status === 202 && s.doneAt! <= killAt);
            let lost = 0;
            for (const s of acked) if (!(await exists(url, token, s.id!))) lost++;
            return { acked: acked.length, lost };
          };
          const [plain, waited] = [
            await lostOf(load.sent, api.url),
            await lostOf(loadWait.sent, apiWait.url),
          ];
          const all = [...load.sent, ...loadWait.sent];
          const row: Round = {
            round: r,
            promotionMs,
            rawClientMs: rawFirst - killAt,
            gapMs: gaps[0]! - killAt,
            gapWaitMs: gaps[1]! - killAt,
            lost: plain.lost,
            lostWait: waited.lost,
            acked: plain.acked,
            ackedWait: waited.acked,
            odd: all.filter(
              (s) => (s.status !== 202 && s.status !== 503) || s.doneAt! - s.sentAt > ANSWER_BOUND_MS,
            ).length,
            slowestMs: Math.max(...all.map((s) => s.doneAt! - s.sentAt)),
          };
          results.push(row);
          ctx.log(
            `round ${r}: promotion ${row.promotionMs} ms, plain client ${row.rawClientMs} ms, gap ${row.gapMs} ms (WAIT 1: ${row.gapWaitMs} ms); lost ${row.lost}/${row.acked} acknowledged (WAIT 1: ${row.lostWait}/${row.ackedWait}); odd answers ${row.odd}, slowest ${row.slowestMs} ms`,
          );
          // The killed server comes back as a replica of the new primary.
          await dep.rejoin(old, promoted);
        } finally {
          clearInterval(rawProbe);
          await Promise.all([load.stop(), loadWait.stop()]);
        }
      }
      printTable(
        [
          "round",
          "promotion ms",
          "plain client ms",
          "gap ms",
          "gap ms WAIT 1",
          "lost/acked",
          "lost/acked WAIT 1",
          "odd",
          "slowest ms",
        ],
        results.map((r) => [
          String(r.round),
          String(r.promotionMs),
          String(r.rawClientMs),
          String(r.gapMs),
          String(r.gapWaitMs),
          `${r.lost}/${r.acked}`,
          `${r.lostWait}/${r.ackedWait}`,
          String(r.odd),
          String(r.slowestMs),
        ]),
      );
      const problems: string[] = [];
      for (const r of results) {
        if (r.odd > 0)
          problems.push(
            `round ${r.round}: ${r.odd} answers neither 202 nor 503, or slower than ${ANSWER_BOUND_MS} ms`,
          );
        if (r.lostWait > 0) problems.push(`round ${r.round}: WAIT 1 lost ${r.lostWait} acknowledged jobs`);
      }
      const med = (f: (r: Round) => number) => median(results.map(f));
      const gapFigure = (
        what: string,
        value: (r: Round) => number,
        bound: (r: Round) => number,
        of: string,
      ) =>
        figure({
          what,
          unit: "ms",
          ours: med(value),
          bound: med(bound),
          ratioOf: of,
          ratio: median(results.map((r) => value(r) / bound(r))),
          pairedRatios: results.map((r) => value(r) / bound(r)),
          ratioOfMedians: med(value) / med(bound),
        });
      return {
        params: {
          rounds,
          intervalMs,
          downAfterMs,
          replicas: 2,
          sentinels: 3,
          failoverTimeoutMs: 3 * downAfterMs,
        },
        rounds: results as unknown as Record<string, unknown>[],
        figures: [
          gapFigure(
            "failover gap (kill → first 202), WAIT off",
            (r) => r.gapMs,
            (r) => r.promotionMs,
            "gap/promotion",
          ),
          gapFigure(
            "failover gap vs a plain ioredis Sentinel client",
            (r) => r.gapMs,
            (r) => r.rawClientMs,
            "ours/plain",
          ),
          gapFigure(
            "failover gap, WAIT 1",
            (r) => r.gapWaitMs,
            (r) => r.gapMs,
            "WAIT 1/WAIT off",
          ),
          figure({
            what: "acknowledged jobs lost per failover, WAIT off",
            unit: "jobs",
            ours: med((r) => r.lost),
            bound: med((r) => r.acked),
            ratioOf: "lost/acked",
            ratio: median(results.map((r) => r.lost / Math.max(1, r.acked))),
            pairedRatios: results.map((r) => r.lost / Math.max(1, r.acked)),
            ratioOfMedians:
              med((r) => r.lost) /
              Math.max(
                1,
                med((r) => r.acked),
              ),
          }),
        ],
        problems,
        notes: [
          `sentinels: down-after-milliseconds ${downAfterMs}, failover-timeout ${3 * downAfterMs}, quorum 2 of 3; data nodes without persistence, all on this machine`,
          "gap: kill -9 of the primary → the first 202 to a POST /queue sent after the kill; promotion: → every sentinel names the new primary (the floor); plain client: → first reply to a SET sent after the kill by `new Redis({ sentinels, name })` with ioredis's defaults",
          "lost: jobs answered 202 before the kill that GET /jobs/{id} no longer finds after it (asynchronous replication's window; WAIT 1 must lose none)",
          "the killed server is brought back as a replica of the new primary between rounds",
        ],
      };
    } finally {
      raw.disconnect();
      await dep.stop();
    }
  },
};

if (isMain(import.meta.url)) standalone(failoverBench);
