// Bench 13 — reconcile: the time of one reconciliation of N finished jobs (default 100,000) against
// the time it takes just to read its sources. The sources are made for the run, as the gateway lays
// them out: N ledger lines (DATA_DIR/ledger), an audit log of N records (segments in the CAS, index,
// signed checkpoints — verified while read), N rows in a clickhouse-server of this run (Debian's
// 18.16 here; the source is left out, and said so, when none is installed), and an admissions
// journal of the N jobs plus `--lost` admitted jobs found nowhere (reported lost after asking
// Redis). Ours: makeReport (pipeline/compliance.ts) — every source read at once, compared per
// customer × model × hour and job by job, signed. The bound: the same reads at once, records only
// counted (the ledger reader, readAuditLog, the ClickHouse window query, the journal reader). The
// figure is bound ÷ ours per round (target ≥ 0.5: the comparison costs at most as much as the reads).
// Then the scheduled runs' resumed audit read (pipeline/audit-window.ts): a first run (the audit log
// read in full, its state stored) and a second after `--more` records were appended (only those
// verified), both as makeReport; the figures are second ÷ first per round, of the whole run (whose
// ledger and ClickHouse reads of the window's jobs stay) and of its audit source (target ≤ 0.2).
//   npx tsx bench/reconcile.ts [--jobs 100000] [--lost 100] [--rounds 3] [--more 1000]
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { InferenceEvent } from "../src/core/analytics-event.js";
import type { AuditRecord } from "../src/core/audit-record.js";
import type { LedgerEntry } from "../src/core/billing.js";
import type { Admission } from "../src/core/reconcile-types.js";
import { rfc3339, utcDay } from "../src/core/time.js";
import { readAdmissions } from "../src/infra/admission-journal.js";
import { readAuditLog } from "../src/infra/audit-log-reader.js";
import { createAnalyticsStore, type AnalyticsStore } from "../src/infra/clickhouse-analytics.js";
import { findClickHouseServer, spawnClickHouseServer } from "../src/infra/clickhouse-server.js";
import { createLedgerFiles } from "../src/infra/ledger-files.js";
import { complianceAuditFor, complianceDepsFor } from "../src/main/compliance.js";
import { loadSettings } from "../src/main/settings.js";
import { createLogger } from "../src/infra/logger.js";
import { makeReport } from "../src/pipeline/compliance.js";
import { buildAuditLog } from "../test/helpers/audit-log.js";
import { isMain, options, sidesOf, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";

const PREFIX = "{bench}";
const HOUR = 3_600_000;
/** The window: six UTC hours of a past day. */
const FROM = Date.UTC(2026, 11, 1, 6);
const TO = FROM + 6 * HOUR;
/** The reconciliation's time: its horizon (ledger and ClickHouse are read up to it) is 20 min past TO. */
const NOW = TO + 20 * 60_000;
const CUSTOMERS = 50;
const MODELS = [
  ["flux", "schnell"],
  ["flux", "dev"],
  ["sdxl", "base"],
  ["zimage", "turbo"],
] as const;

interface Round {
  side: "ours" | "raw";
  round: number;
  ms: number;
  jobsPerS: number;
}

/** Job `i` as every source records it. */
function job(i: number, jobs: number) {
  const [family, model] = MODELS[i % MODELS.length]!;
  const completed = FROM + Math.floor((i * (TO - FROM)) / jobs);
  const gpuMs = 500 + ((i * 7_919) % 20_000);
  const cost = Math.floor((gpuMs * 400 + 500) / 1000);
  return {
    id: `job_${i.toString(36).padStart(12, "0")}`,
    customer: `cust_${i % CUSTOMERS}`,
    family,
    model,
    completed,
    created: completed - 2_000,
    gpuMs,
    cost,
  };
}

function ledgerEntry(j: ReturnType<typeof job>): LedgerEntry {
  return {
    job_id: j.id,
    customer_id: j.customer,
    tier: "pro",
    modality: "image",
    model: `${j.family}/${j.model}`,
    task: "t2i",
    status: "complete",
    gpu_ms: j.gpuMs,
    gpu_source: "reported",
    price_micro_usd_per_gpu_s: 400,
    cost_micro_usd: j.cost,
    completed_at: j.completed,
  };
}

function auditRecord(j: ReturnType<typeof job>): AuditRecord {
  return {
    job_id: j.id,
    customer_id: j.customer,
    modality: "image",
    family: j.family,
    model: j.model,
    task: "t2i",
    backend: "sim-nunchaku",
    status: "complete",
    attempts: 1,
    created_at: rfc3339(j.created),
    started_at: rfc3339(j.created + 100),
    completed_at: rfc3339(j.completed),
    gpu_ms: j.gpuMs,
    price_micro_usd: j.cost,
    input_digest: `sha256-${"a".repeat(64)}`,
    output_digests: [`sha256-${"b".repeat(64)}`],
  };
}

function analyticsRow(j: ReturnType<typeof job>): InferenceEvent {
  return {
    event_id: `${j.id}.3`,
    job_id: j.id,
    customer_id: j.customer,
    tier: "pro",
    priority: "normal",
    modality: "image",
    model: `${j.family}/${j.model}`,
    task: "t2i",
    status: "complete",
    error_code: "",
    backend: "sim-nunchaku",
    attempts: 1,
    gpu_ms: j.gpuMs,
    price_micro_usd: j.cost,
    price_micro_usd_per_gpu_s: 400,
    queue_wait_ms: 100,
    run_ms: 1_900,
    created_at: Math.floor(j.created / 1000),
    started_at: Math.floor((j.created + 100) / 1000),
    completed_at: Math.floor(j.completed / 1000),
    completed_ms: j.completed,
  };
}

/** The audit log's index and checkpoints as they stood before the last `more` records were appended. */
interface Stages {
  readonly before: { index: string; checkpoints: string };
  readonly after: { index: string; checkpoints: string };
}

/** Writes the ledger, the journal and the audit log under `dataDir`, and the rows to `store`. */
async function makeSources(
  ctx: BenchContext,
  dataDir: string,
  jobs: number,
  lost: number,
  store: AnalyticsStore | undefined,
  more: number,
): Promise<Stages> {
  const all = Array.from({ length: jobs }, (_, i) => job(i, jobs));
  const byDay = (lines: Map<string, string[]>, ms: number, line: string) => {
    const day = utcDay(ms);
    if (!lines.has(day)) lines.set(day, []);
    lines.get(day)!.push(line);
  };
  const ledger = new Map<string, string[]>();
  const journal = new Map<string, string[]>();
  for (const j of all) {
    byDay(ledger, j.completed, JSON.stringify(ledgerEntry(j)));
    const a: Admission = {
      job_id: j.id,
      customer_id: j.customer,
      model: `${j.family}/${j.model}`,
      admitted_at: j.created,
    };
    byDay(journal, j.created, JSON.stringify(a));
  }
  for (let i = 0; i < lost; i++) {
    const at = FROM + Math.floor((i * (TO - FROM)) / Math.max(1, lost));
    const a: Admission = {
      job_id: `job_lost${i}`,
      customer_id: "cust_0",
      model: "flux/schnell",
      admitted_at: at,
    };
    byDay(journal, at, JSON.stringify(a));
  }
  for (const [dir, files] of [
    ["ledger", ledger],
    ["admissions", journal],
  ] as const) {
    for (const [day, lines] of files) {
      mkdirSync(join(dataDir, dir, day), { recursive: true });
      writeFileSync(join(dataDir, dir, day, "bench.jsonl"), `${lines.join("\n")}\n`);
    }
  }
  ctx.log(`ledger and journal written (${jobs} jobs, ${lost} lost admissions)`);
  // `more` records after the N: finished after the window (in no other source, as records the
  // window does not compare), appended with the last checkpoint
  const extra = Array.from({ length: more }, (_, i) => job(jobs + i, jobs));
  const cuts = Array.from({ length: Math.floor(jobs / 8_192) }, (_, i) => (i + 1) * 8_192);
  await buildAuditLog(dataDir, {
    segmentSize: 1_024,
    records: [...all, ...extra].map(auditRecord),
    checkpointAt: [...cuts, jobs, jobs + more],
  });
  const file = (name: string) => readFileSync(join(dataDir, "audit", name), "utf8");
  const after = { index: file("index.jsonl"), checkpoints: file("checkpoints.jsonl") };
  const cut = (text: string, drop: number) => {
    const lines = text.split("\n").filter((l) => l !== "");
    return `${lines.slice(0, lines.length - drop).join("\n")}\n`;
  };
  // the last append touched the segments from the one holding leaf `jobs` to the last
  const lastLines = Math.ceil((jobs + more) / 1_024) - Math.floor(jobs / 1_024);
  const before = {
    index: cut(after.index, more > 0 ? lastLines : 0),
    checkpoints: cut(after.checkpoints, more > 0 ? 1 : 0),
  };
  ctx.log("audit log built");
  if (store !== undefined) {
    await store.ensureSchema();
    for (let i = 0; i < all.length; i += 10_000)
      await store.insertUnchecked(all.slice(i, i + 10_000).map(analyticsRow));
    ctx.log("ClickHouse rows inserted");
  }
  return { before, after };
}

/** The audit log's files at a stage. */
function setStage(dataDir: string, stage: { index: string; checkpoints: string }): void {
  writeFileSync(join(dataDir, "audit", "index.jsonl"), stage.index);
  writeFileSync(join(dataDir, "audit", "checkpoints.jsonl"), stage.checkpoints);
}

export const reconcileBench: BenchDef = {
  name: "reconcile",
  title: "Bench 13 — reconciliation of 100,000 jobs (ledger, audit log, ClickHouse, journal) vs reading them",
  async run(ctx: BenchContext) {
    const { jobs, lost, rounds, more } = options({ jobs: 100_000, lost: 100, rounds: 3, more: 1_000 });
    const dataDir = join(ctx.dir, "data");
    const notes: string[] = [];
    const problems: string[] = [];
    let ch: Awaited<ReturnType<typeof spawnClickHouseServer>> | undefined;
    if (findClickHouseServer() !== undefined) {
      ch = await spawnClickHouseServer({ dir: join(ctx.dir, "clickhouse") });
      const killOnExit = () => void ch?.kill("SIGKILL");
      process.once("exit", killOnExit);
    } else {
      notes.push("no clickhouse-server installed: the analytics source is left out (off)");
    }
    const store =
      ch === undefined
        ? undefined
        : createAnalyticsStore({
            url: ch.url,
            username: "default",
            password: ch.password,
            database: "bench",
          });
    const results: Round[] = [];
    const resumed: { side: "first" | "second"; round: number; ms: number; auditMs: number }[] = [];
    try {
      const stages = await makeSources(ctx, dataDir, jobs, lost, store, more);
      setStage(dataDir, stages.before);
      const settings = loadSettings({
        DATA_DIR: dataDir,
        REDIS_URL: ctx.redis.url,
        REDIS_PREFIX: PREFIX,
        AUDIT_SEGMENT_SIZE: "1024",
        RECONCILE_LOST_AFTER_MS: "60000",
      });
      const ledger = createLedgerFiles({ dir: join(dataDir, "ledger"), writerId: "bench-reader" });
      const deps = complianceDepsFor({
        env: settings.env,
        dataDir,
        redis: ctx.redis.client,
        clock: () => NOW,
        ledger,
        audit: complianceAuditFor(settings),
        analytics: store,
      });
      const raw = async (): Promise<number> => {
        let n = 0;
        const count = async (xs: AsyncIterable<unknown>) => {
          for await (const _ of xs) n++;
        };
        await Promise.all([
          count(ledger.read(FROM, NOW)),
          count(readAuditLog(dataDir, { segmentSize: 1_024 })),
          count(readAdmissions(join(dataDir, "admissions"), FROM, TO)),
          store === undefined
            ? undefined
            : store.jobsInWindow({ fromMs: FROM, toMs: NOW }).then((r) => (n += r.length)),
        ]);
        return n;
      };
      for (let r = 0; r <= rounds; r++) {
        for (const side of sidesOf(Math.max(1, r))) {
          const t0 = performance.now();
          if (side === "ours") {
            const report = await makeReport(deps, FROM, TO);
            const ok =
              report.discrepancies.length === 0 &&
              report.lost.count === lost &&
              report.sources.ledger.jobs === jobs &&
              report.sources.audit.jobs === jobs &&
              (store === undefined || report.sources.analytics.jobs === jobs);
            if (!ok)
              problems.push(
                `round ${r}: the report is not the expected one (${JSON.stringify(report.sources)})`,
              );
          } else {
            await raw();
          }
          const ms = performance.now() - t0;
          // round 0 warms the caches (page cache, ClickHouse's marks): not counted
          if (r === 0) continue;
          results.push({ side, round: r, ms, jobsPerS: (jobs / ms) * 1000 });
          ctx.log(`round ${r} ${side}: ${fmt(ms)} ms (${fmt((jobs / ms) * 1000)} jobs/s)`);
        }
      }

      // the scheduled runs' reader: a first run reads the log in full, the next only what was appended
      const audit = complianceAuditFor(settings, { resume: { logger: createLogger({ level: "warn" }) } });
      const scheduled = complianceDepsFor({
        env: settings.env,
        dataDir,
        redis: ctx.redis.client,
        clock: () => NOW,
        ledger,
        audit,
        analytics: store,
      });
      for (let r = 0; r <= rounds; r++) {
        setStage(dataDir, stages.before);
        rmSync(join(dataDir, "compliance"), { recursive: true, force: true });
        for (const side of ["first", "second"] as const) {
          if (side === "second") setStage(dataDir, stages.after);
          let auditMs = 0;
          const timed = {
            ...scheduled,
            auditJobs: async function* (from: number, to: number) {
              const t = performance.now();
              const got = [];
              for await (const j of audit.window!.jobs(from, to)) got.push(j);
              auditMs = performance.now() - t;
              yield* got;
            },
          };
          const t0 = performance.now();
          const report = await makeReport(timed, FROM, TO);
          const ms = performance.now() - t0;
          if (report.sources.audit.jobs !== jobs || report.discrepancies.length > 0)
            problems.push(`resume round ${r} ${side}: the report is not the expected one`);
          if (r === 0) continue;
          resumed.push({ side, round: r, ms, auditMs });
          ctx.log(`resume round ${r} ${side}: ${fmt(ms)} ms (audit source ${fmt(auditMs)} ms)`);
        }
      }
      await ledger.close();
    } finally {
      await store?.close();
      await ch?.stop();
    }
    printTable(
      ["round", "side", "ms", "jobs/s"],
      results.map((r) => [String(r.round), r.side, fmt(r.ms), fmt(r.jobsPerS)]),
    );
    printTable(
      ["round", "scheduled run", "ms", "audit source ms"],
      resumed.map((r) => [String(r.round), r.side, fmt(r.ms), fmt(r.auditMs)]),
    );
    return {
      params: {
        jobs,
        lost,
        rounds,
        clickhouse: store !== undefined,
        segmentSize: 1_024,
        hours: 6,
        customers: CUSTOMERS,
        more,
      },
      rounds: [...results, ...resumed] as unknown as Record<string, unknown>[],
      figures: [
        pairedFigure({
          what: `reconciliation time, ${fmt(jobs)} jobs`,
          unit: "ms",
          rows: results,
          isOurs: (x) => x.side === "ours",
          value: (x) => x.ms,
          inverse: true,
          names: ["reconcile", "reads"],
          target: { op: ">=", value: 0.5 },
        }),
        pairedFigure({
          what: `scheduled run after +${fmt(more)} records vs the first (full audit read), ${fmt(jobs)} jobs`,
          unit: "ms",
          rows: resumed,
          isOurs: (x) => x.side === "second",
          value: (x) => x.ms,
          names: ["second", "first"],
        }),
        pairedFigure({
          what: `audit source of that run vs the first's`,
          unit: "ms",
          rows: resumed,
          isOurs: (x) => x.side === "second",
          value: (x) => x.auditMs,
          names: ["second", "first"],
          target: { op: "<=", value: 0.2 },
        }),
      ],
      problems,
      notes: [
        ...notes,
        "ours: makeReport — ledger, audit log (verified: Merkle tree rebuilt, checkpoints' signatures), ClickHouse and the journal read at once, compared per customer x model x hour and job by job, lost admissions asked of Redis, report signed",
        "reads: the same four reads at once, records only counted",
        `scheduled runs: makeReport with the resumed audit reader; first = no state (the log read in full, ${fmt(jobs)} records in the window kept); second = after ${fmt(more)} records appended (leaves from the segment holding leaf ${fmt(jobs)} read; the state, which holds every record of this window, loaded and stored again)`,
        `${jobs} jobs over 6 UTC hours, ${CUSTOMERS} customers x ${MODELS.length} models (1,200 buckets); round 0 (warm-up) not counted`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(reconcileBench);
