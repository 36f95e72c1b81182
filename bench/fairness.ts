// Bench 7 — fair share (issue 9 §7): how a saturated fleet is split between two tenants of weights 3
// and 1, and how long a `low` job waits under a permanent `high` flood against AGING_BOUND_S. One sim
// (20 ms per step), one backend of `slots` slots serving three models, our worker (WORKER_CONCURRENCY
// = slots) and API; every job goes through POST /queue. Per round:
//   split  tenant heavy (weight 3, 40-step flux/schnell jobs) and tenant light (weight 1, 10-step
//          sdxl/lcm jobs) each keep 12 jobs queued; over the window from light's 20%-th start to its
//          last counted one, the slot time each tenant's attempts held (leases clipped to the window)
//          gives the split; the bound is the weights' 3:1.
//   aging  a tenant keeps `high` jobs (zimage/turbo) queued; once they wait, a `low` job comes from
//          another tenant, then (after the queue drained) from the flooding tenant itself; its delay
//          from admission to start against the configured bound, and the fleet time of the newer high
//          work that passed it.
// Until the cost model lands a job's cost is its route's measured service time, so the two tenants of
// the split use different models (a model's jobs all cost the same whatever their steps).
//   npx tsx bench/fairness.ts [--rounds 3] [--aging 3] [--slots 4] [--light-jobs 110]
import { join } from "node:path";
import { Pool } from "undici";
import type { Tier } from "../src/core/tiers.js";
import { createKeys } from "../src/queues/keys.js";
import {
  mintToken,
  startApi,
  startSim,
  startWorker,
  writeBackendsFile,
  writeBenchTiers,
} from "./lib/gateway.js";
import { isMain, options, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { sleep, waitUntil } from "./lib/proc.js";
import { figure, fmt, median, printTable } from "./lib/report.js";

const PREFIX = "{bench}";
const STEP_MS = 20;
const HEAVY = { tier: "w3", family: "flux", model: "schnell", steps: 40 } as const;
const LIGHT = { tier: "w1", family: "sdxl", model: "lcm", steps: 10 } as const;
/** The aging rounds' jobs: a model of their own, so that its measured service time is theirs. */
const FLOOD = { family: "zimage", model: "turbo", steps: 10 } as const;

interface SplitRound {
  round: number;
  windowS: number;
  heavySlotMs: number;
  lightSlotMs: number;
  /** heavy ÷ light slot time in the window. */
  split: number;
  /** Slot time held in the window ÷ (slots × window). */
  busy: number;
  /** gpu_ms (the sim's own time) of the jobs that started in the window, heavy ÷ light. */
  gpuSplit: number;
  heavyJobs: number;
  lightJobs: number;
  minQueued: [number, number];
}

interface AgingRound {
  round: number;
  variant: "other tenant" | "own tenant";
  /** Admission to start of the low job, s. */
  delayS: number;
  /** From when only newer work was ahead of it (its tenant's older high jobs had started) to its start, s. */
  newerOnlyS: number;
  /** Slot time of the newer high jobs that started before it ÷ slots, s. */
  passedFleetS: number;
  passedJobs: number;
  /** High jobs admitted before its start that started after it (the flood had not run dry). */
  floodWaiting: number;
}

interface JobRow {
  created: number;
  started: number;
  attempts: [number, number][];
  gpuMs: number;
}

export const fairnessBench: BenchDef = {
  name: "fairness",
  title: "Bench 7 — fair share: weighted split (3:1) and the aging delay under a high flood",
  async run(ctx: BenchContext) {
    const { rounds, aging, slots, lightJobs } = options({ rounds: 3, aging: 3, slots: 4, lightJobs: 110 });
    const redis = ctx.redis.client;
    const keys = createKeys(PREFIX);
    const tier = (weight: number): Tier => ({
      submits_per_min: null,
      reads_per_s: null,
      max_running: null,
      max_queued: null,
      priorities: ["high", "normal", "low"],
      weight,
      sync: true,
    });
    const extraTiers = { w3: tier(3), w1: tier(1) };
    const tierNames = ["free", "pro", "enterprise", "unlimited", "w3", "w1"];
    const env = {
      TIERS_FILE: writeBenchTiers(ctx.dir, extraTiers),
      AGING_BOUND_S: String(aging),
      DEFAULT_SERVICE_MS: "500",
    };
    const sim = await startSim({
      name: "sim",
      stepMs: STEP_MS,
      capacity: slots * 2,
      dataDir: join(ctx.dir, "sim"),
      logDir: ctx.logDir,
    });
    const backends = writeBackendsFile(ctx.dir, [
      { id: "gpu", url: sim.url, capacity: slots, models: ["flux/schnell", "sdxl/lcm", "zimage/turbo"] },
    ]);
    const common = { redisUrl: ctx.redis.url, prefix: PREFIX, logDir: ctx.logDir };
    await startWorker({
      ...common,
      name: "worker",
      dataDir: join(ctx.dir, "worker"),
      redis,
      extra: { ...env, BACKENDS_FILE: backends, WORKER_CONCURRENCY: String(slots) },
    });
    const api = await startApi({ ...common, name: "api", dataDir: join(ctx.dir, "api"), extra: env });
    const pool = new Pool(api.url, { connections: 8 });
    const bearers = new Map<string, string>();
    const bearer = async (customer: string, tierName: string) => {
      let t = bearers.get(customer);
      if (!t) bearers.set(customer, (t = await mintToken(customer, tierName, { tiers: tierNames })));
      return t;
    };
    const problems: string[] = [];

    const post = async (
      customer: string,
      tierName: string,
      body: Record<string, unknown>,
    ): Promise<string> => {
      const res = await pool.request({
        method: "POST",
        path: "/queue",
        headers: {
          authorization: `Bearer ${await bearer(customer, tierName)}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode !== 202) throw new Error(`POST /queue (${customer}): ${res.statusCode} ${text}`);
      return (JSON.parse(text) as { id: string }).id;
    };
    const job = (prompt: string, family: string, model: string, steps: number, priority = "normal") => ({
      modality: "image",
      family,
      model,
      task: "t2i",
      format: "512",
      prompt,
      steps,
      seed: 5,
      priority,
    });
    const queuedOf = async (customer: string) => Number((await redis.hget(keys.tenant(customer), "q")) ?? 0);
    const drained = () =>
      waitUntil(
        "the queue to drain",
        async () => (await redis.zcard(keys.queue)) === 0 && (await redis.scard(keys.activeTenants)) === 0,
        120_000,
        50,
      );
    const rows = async (ids: readonly string[]): Promise<JobRow[]> => {
      const pipe = redis.pipeline();
      for (const id of ids) pipe.hmget(keys.job(id), "created", "started", "alog", "gpu_ms", "status");
      const out: JobRow[] = [];
      for (const [err, v] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        const [created, started, alog, gpu, status] = v as (string | null)[];
        if (status === "error" || status === "cancelled") problems.push(`a job ended ${status}`);
        const log = JSON.parse(alog ?? "[]") as { started_at: number; ended_at?: number }[];
        out.push({
          created: Number(created),
          started: started === null ? Number.POSITIVE_INFINITY : Number(started),
          attempts: log.map((a) => [a.started_at, a.ended_at ?? Date.now()]),
          gpuMs: Number(gpu ?? 0),
        });
      }
      return out;
    };
    const slotMs = (jobs: readonly JobRow[], from: number, to: number) =>
      jobs.reduce(
        (sum, j) =>
          sum + j.attempts.reduce((s, [a, b]) => s + Math.max(0, Math.min(b, to) - Math.max(a, from)), 0),
        0,
      );
    /** Keeps `customer`'s queue at `target` until stopped; returns the ids and the fewest seen queued. */
    const feed = (
      customer: string,
      tierName: string,
      target: number,
      body: (i: number) => Record<string, unknown>,
    ) => {
      const ids: string[] = [];
      let stopped = false;
      let primed = false;
      let minQueued = Number.POSITIVE_INFINITY;
      const loop = (async () => {
        while (!stopped) {
          const q = await queuedOf(customer);
          if (primed) minQueued = Math.min(minQueued, q);
          if (q >= target) {
            primed = true;
            await sleep(20);
            continue;
          }
          const n = Math.min(target - q, 4);
          ids.push(
            ...(await Promise.all(
              Array.from({ length: n }, () => post(customer, tierName, body(ids.length))),
            )),
          );
        }
      })();
      return {
        ids,
        primed: () => primed,
        async stop() {
          stopped = true;
          await loop;
          return minQueued;
        },
      };
    };

    // Every route measured before anything is costed by it.
    for (const t of [HEAVY, LIGHT, FLOOD])
      for (let i = 0; i < 2; i++) await post("warm-up", "w1", job(`warm ${i}`, t.family, t.model, t.steps));
    await drained();

    const splits: SplitRound[] = [];
    const agings: AgingRound[] = [];
    const splitRound = async (round: number) => {
      const heavy = `heavy-${round}`;
      const light = `light-${round}`;
      // the same number of jobs queued for each (first come, first served would split by job cost)
      const fh = feed(heavy, HEAVY.tier, 12, (i) =>
        job(`heavy ${i}`, HEAVY.family, HEAVY.model, HEAVY.steps),
      );
      const fl = feed(light, LIGHT.tier, 12, (i) =>
        job(`light ${i}`, LIGHT.family, LIGHT.model, LIGHT.steps),
      );
      await waitUntil(
        `light has ${lightJobs} jobs started`,
        async () => fl.ids.length - (await queuedOf(light)) >= lightJobs,
        300_000,
        100,
      );
      const minQueued: [number, number] = [await fh.stop(), await fl.stop()];
      await drained();
      const h = await rows(fh.ids);
      const l = await rows(fl.ids);
      const starts = l.map((j) => j.started).sort((a, b) => a - b);
      const from = starts[Math.max(0, Math.round(lightJobs * 0.2) - 1)]!;
      const to = starts[lightJobs - 1]!;
      const heavySlotMs = slotMs(h, from, to);
      const lightSlotMs = slotMs(l, from, to);
      const gpuIn = (jobs: JobRow[]) =>
        jobs.filter((j) => j.started >= from && j.started < to).reduce((s, j) => s + j.gpuMs, 0);
      const row: SplitRound = {
        round,
        windowS: (to - from) / 1000,
        heavySlotMs,
        lightSlotMs,
        split: heavySlotMs / lightSlotMs,
        busy: (heavySlotMs + lightSlotMs) / (slots * (to - from)),
        gpuSplit: gpuIn(h) / gpuIn(l),
        heavyJobs: h.filter((j) => j.started >= from && j.started < to).length,
        lightJobs: l.filter((j) => j.started >= from && j.started < to).length,
        minQueued,
      };
      if (Math.min(...minQueued) <= 0) problems.push(`round ${round}: a tenant of the split ran dry`);
      splits.push(row);
      ctx.log(
        `round ${round} split: ${fmt(row.split, 3)} over ${fmt(row.windowS, 1)} s (fleet busy ${fmt(row.busy * 100, 1)}%), gpu_ms ${fmt(row.gpuSplit, 3)}`,
      );
    };
    const agingRound = async (round: number, variant: AgingRound["variant"]) => {
      const flooder = `flood-${round}-${variant === "own tenant" ? "own" : "other"}`;
      const patient = variant === "own tenant" ? flooder : `patient-${round}`;
      const svc = Number(await redis.hget(keys.stats, `svc:${FLOOD.family}/${FLOOD.model}`));
      const limitJobs = Math.ceil((3 * aging * 1000 * slots) / Math.max(1, svc));
      const ff = feed(flooder, "w1", 3 * slots, (i) =>
        job(`flood ${i}`, FLOOD.family, FLOOD.model, FLOOD.steps, "high"),
      );
      await waitUntil("the flood is queued", async () => ff.primed(), 30_000, 20);
      const low = await post(patient, "w1", job("patient", FLOOD.family, FLOOD.model, FLOOD.steps, "low"));
      const before = ff.ids.length;
      await waitUntil(
        "the low job starts (or three times the bound's worth of newer high work does)",
        async () =>
          (await redis.hget(keys.job(low), "started")) !== null ||
          ff.ids.length - (await queuedOf(flooder)) - before >= limitJobs,
        300_000,
        25,
      );
      await ff.stop();
      await drained();
      const [l] = await rows([low]);
      const flood = await rows(ff.ids);
      const newer = flood.filter((j) => j.created > l!.created && j.started < l!.started);
      const olderStarted = flood
        .filter((j) => j.created < l!.created && j.started < l!.started)
        .map((j) => j.started);
      const row: AgingRound = {
        round,
        variant,
        delayS: (l!.started - l!.created) / 1000,
        newerOnlyS: (l!.started - Math.max(l!.created, ...olderStarted)) / 1000,
        passedFleetS: slotMs(newer, 0, Number.POSITIVE_INFINITY) / slots / 1000,
        passedJobs: newer.length,
        floodWaiting: flood.filter((j) => j.created < l!.started && j.started > l!.started).length,
      };
      if (row.floodWaiting === 0)
        problems.push(`round ${round} ${variant}: the flood ran dry before the low job started`);
      agings.push(row);
      ctx.log(
        `round ${round} aging (${variant}): ${fmt(row.delayS, 2)} s from admission, ${fmt(row.newerOnlyS, 2)} s behind newer work only, ${fmt(row.passedFleetS, 2)} fleet s passed it (bound ${aging} s)`,
      );
    };

    try {
      for (let r = 1; r <= rounds; r++) {
        await splitRound(r);
        await agingRound(r, "other tenant");
        await agingRound(r, "own tenant");
      }
    } finally {
      await pool.close();
    }

    printTable(
      [
        "round",
        "window s",
        "heavy slot ms",
        "light slot ms",
        "split",
        "fleet busy",
        "gpu_ms split",
        "jobs heavy/light",
      ],
      splits.map((s) => [
        String(s.round),
        fmt(s.windowS, 1),
        fmt(s.heavySlotMs),
        fmt(s.lightSlotMs),
        fmt(s.split, 3),
        `${fmt(s.busy * 100, 1)}%`,
        fmt(s.gpuSplit, 3),
        `${s.heavyJobs} / ${s.lightJobs}`,
      ]),
    );
    printTable(
      [
        "round",
        "flood from",
        "delay s",
        "behind newer only s",
        "newer work passed (fleet s)",
        "newer jobs",
        "flood waiting",
      ],
      agings.map((a) => [
        String(a.round),
        a.variant,
        fmt(a.delayS, 2),
        fmt(a.newerOnlyS, 2),
        fmt(a.passedFleetS, 2),
        String(a.passedJobs),
        String(a.floodWaiting),
      ]),
    );
    const ratios = splits.map((s) => s.split / 3);
    const worstSide = ratios.map((r) => Math.min(r, 1 / r));
    const delays = (v: AgingRound["variant"], k: "delayS" | "newerOnlyS") =>
      agings.filter((a) => a.variant === v).map((a) => a[k]);
    const agingFigure = (what: string, xs: number[], target: boolean) =>
      figure({
        what,
        unit: "s",
        ours: median(xs),
        bound: aging,
        ratioOf: "delay/bound",
        ratio: median(xs.map((x) => x / aging)),
        pairedRatios: xs.map((x) => x / aging),
        ratioOfMedians: median(xs) / aging,
        ...(target ? { target: { op: "<=" as const, value: 1 } } : {}),
      });
    return {
      params: { rounds, agingBoundS: aging, slots, lightJobs, stepMs: STEP_MS, heavy: HEAVY, light: LIGHT },
      rounds: [
        ...splits.map((s) => ({ ...s, kind: "split" })),
        ...agings.map((a) => ({ ...a, kind: "aging" })),
      ],
      figures: [
        figure({
          what: "slot-time split heavy:light (weights 3:1)",
          unit: ":1",
          ours: median(splits.map((s) => s.split)),
          bound: 3,
          ratioOf: "split/weights",
          ratio: median(ratios),
          pairedRatios: ratios,
          ratioOfMedians: median(splits.map((s) => s.split)) / 3,
        }),
        figure({
          what: "the less-served side of the split, min(r, 1/r)",
          unit: "",
          ours: median(worstSide),
          bound: 1,
          ratioOf: "measured/entitled",
          ratio: median(worstSide),
          pairedRatios: worstSide,
          target: { op: ">=", value: 0.9 },
        }),
        agingFigure(
          "aging delay, low job under another tenant's high flood",
          delays("other tenant", "delayS"),
          true,
        ),
        agingFigure(
          "aging delay, low job under its own tenant's high flood",
          delays("own tenant", "delayS"),
          false,
        ),
        agingFigure(
          "same, from when only newer work was ahead of it",
          delays("own tenant", "newerOnlyS"),
          false,
        ),
        figure({
          what: "fleet time of the newer high work that passed it, own tenant's flood",
          unit: "s",
          ours: median(agings.filter((a) => a.variant === "own tenant").map((a) => a.passedFleetS)),
          bound: aging,
          ratioOf: "passed/bound",
          ratio: median(agings.filter((a) => a.variant === "own tenant").map((a) => a.passedFleetS / aging)),
          pairedRatios: agings.filter((a) => a.variant === "own tenant").map((a) => a.passedFleetS / aging),
        }),
      ],
      problems,
      notes: [
        `one backend of ${slots} slots (WORKER_CONCURRENCY ${slots}), sim ${STEP_MS} ms per step; every job through POST /queue`,
        "split: slot time = each attempt's lease (start to settle) clipped to the window, the time the fair share divides (a job's cost is its route's measured service time, the same measure)",
        "split window: from light's 20%-th start to its last counted start, both tenants backlogged throughout (fewest queued in the table's rounds JSON)",
        "aging: the bound is in fleet time (docs: newer higher-priority work passes a job for at most its offset's worth); a low job of the flooding tenant also waits for that tenant's older high jobs (its virtual start is after them), so its delay from admission is the bound plus that backlog: no target on it; newer work passes it for the bound's worth of estimated fleet time by design, so that figure sits at 1 ± the cost estimate's error",
        "aging under another tenant's flood: both tenants share the fleet while the low job waits (W = 2), so the flood's newer jobs advance their tenant's virtual time twice as fast and the low job starts after about half the bound",
        "until the cost model lands a job's cost is its route's service time: the split's tenants use different models",
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(fairnessBench);
