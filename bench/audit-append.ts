// Bench 11 — audit append: how fast finished jobs' records enter the audit log, against how fast the
// workers finish jobs. Each round renders N jobs through our worker role on the simulated backend
// answering at once (SIM_STEP_MS=0, the fastest the render path goes) with no pipeline running; the
// outbox then holds their N terminal events. Two append figures follow, each over the render rate of
// the same round (target ≥ 2):
// - stage+append: the N records (auditRecordOf the events, as the relay makes them) staged by 32
//   concurrent callers of the staging script (as the `audit` queue's consumer does), while one
//   appender (this process; real Redis, real CAS, real DATA_DIR/audit files, default segment size
//   and checkpoint interval) appends them: first stage to the last record committed;
// - through a pipeline process: `start --roles pipeline` drains the outbox (relay → BullMQ `audit` →
//   staging → its appender, with billing and webhooks beside it): start to the last record committed.
//   npx tsx bench/audit-append.ts [--jobs 2000] [--concurrency 16] [--rounds 3]
import { join } from "node:path";
import { Redis } from "ioredis";
import { pino } from "pino";
import { auditRecordOf } from "../src/core/audit-record.js";
import { canonicalJson } from "../src/core/canonical-json.js";
import type { OutboxEvent } from "../src/core/outbox.js";
import { systemClock } from "../src/core/time.js";
import { openAuditFiles } from "../src/infra/audit-files.js";
import { createFsBlobStore } from "../src/infra/fs-blob-store.js";
import { createAuditAppender } from "../src/pipeline/audit-appender.js";
import { createAuditStore } from "../src/queues/audit-store.js";
import { createKeys, OUTBOX_GROUP } from "../src/queues/keys.js";
import { createOutboxStore } from "../src/queues/outbox-store.js";
import { createAdmitter, workerBody } from "./lib/admit.js";
import { benchTiers, startPipeline, startWorker, startZeroStepSim } from "./lib/gateway.js";
import { isMain, options, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { waitUntil } from "./lib/proc.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";

const PREFIX = "{bench}";
const CUSTOMER = "bench-audit";
/** Concurrent staging calls: the `audit` queue consumer's PIPELINE_CONCURRENCY default. */
const STAGERS = 32;
const SEGMENT_SIZE = 1024;
const CHECKPOINT_MS = 1000;

interface Round {
  side: "render" | "stage+append" | "pipeline";
  round: number;
  records: number;
  spanMs: number;
  perS: number;
}

/** The terminal events the outbox holds, as the relay reads them. */
async function terminalEvents(redis: Redis): Promise<OutboxEvent[]> {
  const outbox = createOutboxStore(redis, PREFIX);
  await outbox.ensureGroup();
  const events: OutboxEvent[] = [];
  for (;;) {
    const entries = await outbox.read("bench-reader", 1_000, 0);
    if (entries.length === 0) return events;
    for (const e of entries)
      if ("event" in e && ["complete", "error", "cancelled"].includes(e.event.event)) events.push(e.event);
  }
}

/** Deletes the audit log's Redis state (the two append sides each start from an empty log). */
async function dropAuditState(redis: Redis): Promise<void> {
  const keys = createKeys(PREFIX);
  await redis.del(
    keys.auditSize,
    keys.auditSegments,
    keys.auditRoots,
    keys.auditLeaf,
    keys.auditTail,
    keys.auditStaged,
    keys.auditStagedOrder,
    keys.auditLock,
    keys.auditCheckpoint,
    keys.auditCheckpoints,
    keys.auditKeys,
    keys.auditBlobs,
  );
}

/** Stages `records` with STAGERS callers while an appender runs; ms from the first stage to the last commit. */
async function stageAndAppend(
  ctx: BenchContext,
  round: number,
  records: readonly string[][],
): Promise<number> {
  const redis = new Redis(ctx.redis.url, { maxRetriesPerRequest: null });
  const appenderRedis = new Redis(ctx.redis.url, { maxRetriesPerRequest: null });
  const dataDir = join(ctx.dir, `append-${round}`);
  const appender = createAuditAppender({
    store: createAuditStore(appenderRedis, PREFIX),
    blobs: createFsBlobStore({ root: join(dataDir, "cas") }),
    files: openAuditFiles(dataDir),
    owner: `bench-${round}`,
    segmentSize: SEGMENT_SIZE,
    checkpointMs: CHECKPOINT_MS,
    lockMs: 10_000,
    clock: systemClock,
    logger: pino({ level: "warn" }),
  });
  void appender.run();
  await waitUntil("the appender holds the log", async () => appender.holding(), 10_000, 5);
  const store = createAuditStore(redis, PREFIX);
  const size = createKeys(PREFIX).auditSize;
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: STAGERS }, async () => {
      while (next < records.length) {
        const [id, record] = records[next++]!;
        await store.stage(id!, record!);
      }
    }),
  );
  await waitUntil(
    "every record appended",
    async () => Number(await redis.get(size)) >= records.length,
    120_000,
    2,
  );
  const span = Date.now() - started;
  await appender.stop();
  redis.disconnect();
  appenderRedis.disconnect();
  return span;
}

export const auditAppendBench: BenchDef = {
  name: "audit-append",
  title: "Bench 11 — audit log append vs render (sim at SIM_STEP_MS=0)",
  async run(ctx: BenchContext) {
    const { jobs, concurrency, rounds } = options({ jobs: 2000, concurrency: 16, rounds: 3 });
    const redis = ctx.redis.client;
    const { sim, backendsFile } = await startZeroStepSim(ctx.dir, ctx.logDir, concurrency);
    const admitter = createAdmitter({
      redis,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "admit"),
      body: workerBody(),
      customerId: CUSTOMER,
    });
    const tiers = benchTiers();
    const results: Round[] = [];
    const problems: string[] = [];
    let recordBytes = 0;
    const push = (side: Round["side"], round: number, records: number, spanMs: number) =>
      results.push({ side, round, records, spanMs, perS: (records / spanMs) * 1000 });
    try {
      for (let r = 1; r <= rounds; r++) {
        await ctx.redis.flush();
        const ids = await admitter.admit(jobs);
        const worker = await startWorker({
          name: `worker-${r}`,
          redisUrl: ctx.redis.url,
          prefix: PREFIX,
          dataDir: join(ctx.dir, `worker-${r}`),
          logDir: ctx.logDir,
          redis,
          extra: {
            BACKENDS_FILE: backendsFile,
            WORKER_CONCURRENCY: String(concurrency),
            JOB_RETENTION_COUNT: String(Math.max(100_000, jobs)),
          },
        });
        await waitUntil(
          "jobs to finish",
          async () => (await redis.zcard(`${PREFIX}:done`)) >= jobs,
          120_000,
          20,
          [worker],
        );
        let first = Infinity;
        let last = 0;
        for (const [started, completed] of await admitter.fields(ids, ["started", "completed"])) {
          if (started) first = Math.min(first, Number(started));
          if (completed) last = Math.max(last, Number(completed));
        }
        await worker.stop();
        push("render", r, jobs, last - first);

        // the records as the relay makes them (not timed: the relay's part is in the pipeline side)
        const events = await terminalEvents(redis);
        const records = events.flatMap((e) => {
          const record = auditRecordOf(e, tiers);
          return record === undefined ? [] : [[record.job_id, canonicalJson(record)]];
        });
        if (records.length !== jobs) problems.push(`round ${r}: ${records.length} records of ${jobs} jobs`);
        recordBytes = Math.round(records.reduce((n, [, rec]) => n + rec!.length, 0) / records.length);
        // the outbox's group starts again for the pipeline process
        await redis.xgroup("DESTROY", createKeys(PREFIX).outbox, OUTBOX_GROUP);
        push("stage+append", r, records.length, await stageAndAppend(ctx, r, records));

        await dropAuditState(redis);
        const pipeline = await startPipeline({
          name: `pipeline-${r}`,
          redisUrl: ctx.redis.url,
          prefix: PREFIX,
          dataDir: join(ctx.dir, `pipeline-${r}`),
          logDir: ctx.logDir,
          redis,
        });
        // timed from its start (process boot aside), over the records not appended by then
        const started = Date.now();
        const before = Number(await redis.get(createKeys(PREFIX).auditSize));
        await waitUntil(
          "the pipeline appends every record",
          async () => Number(await redis.get(createKeys(PREFIX).auditSize)) >= jobs,
          120_000,
          5,
          [pipeline],
        );
        push("pipeline", r, jobs - before, Date.now() - started);
        await pipeline.stop();
        const [render, direct, piped] = results.slice(-3) as [Round, Round, Round];
        ctx.log(
          `round ${r}: render ${fmt(render.perS)} jobs/s; stage+append ${fmt(direct.perS)} records/s; through a pipeline process ${fmt(piped.perS)} records/s`,
        );
      }
    } finally {
      await sim.close();
    }
    printTable(
      ["round", "side", "per s", "span ms"],
      results.map((r) => [String(r.round), r.side, fmt(r.perS), String(r.spanMs)]),
    );
    const against = (side: Round["side"], what: string) =>
      pairedFigure({
        what,
        unit: "per s",
        rows: results.filter((r) => r.side === side || r.side === "render"),
        isOurs: (r) => r.side === side,
        value: (r) => r.perS,
        names: [side, "render"],
        target: { op: ">=", value: 2 },
      });
    return {
      params: {
        jobs,
        concurrency,
        rounds,
        simStepMs: 0,
        stagers: STAGERS,
        segmentSize: SEGMENT_SIZE,
        checkpointMs: CHECKPOINT_MS,
        recordBytes,
      },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        against("stage+append", "audit stage+append vs render rate"),
        against("pipeline", "audit drain through a pipeline process vs render rate"),
      ],
      problems,
      notes: [
        "render: N jobs through one worker process (concurrency C) on the simulated backend answering at once, no pipeline running",
        `stage+append: the N records staged by ${STAGERS} concurrent callers of audit_stage.lua while one appender (in the bench process) appends them; first stage to the last commit`,
        "pipeline: `start --roles pipeline` draining the outbox (relay → audit queue → staging → appender, billing and webhooks beside it); from its relay's start to the last commit, over the records not appended by then",
        `segment size ${SEGMENT_SIZE}, checkpoints every ${CHECKPOINT_MS} ms (a partial segment is committed at most every 250 ms, a full one at once)`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(auditAppendBench);
