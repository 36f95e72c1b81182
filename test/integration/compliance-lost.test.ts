// The negative control of the reconciliation (issue 14; issue 15's promise of a 202): Redis emptied
// (FLUSHALL) after jobs were admitted loses them; the admissions journal still names them, so the
// report lists each one as lost — and nothing was billed for them — while the jobs that finished
// before are reconciled as usual. Also through `render-gateway reconcile`, which exits 3. On a
// redis-server of its own (FLUSHALL must not touch other tests' keys).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SignedReport } from "../../src/core/reconcile-types.js";
import { readAdmissions } from "../../src/infra/admission-journal.js";
import { createLedgerFiles } from "../../src/infra/ledger-files.js";
import { complianceAuditFor, complianceDepsFor } from "../../src/main/compliance.js";
import { makeReport } from "../../src/pipeline/compliance.js";
import { createKeys } from "../../src/queues/keys.js";
import { startTestPipeline, type TestPipeline } from "../helpers/pipeline.js";
import { CliProcess, spawnRedis, type SpawnedRedis } from "../helpers/processes.js";
import {
  FLUX_SCHNELL_512,
  queueJob,
  setSimDown,
  startSystem,
  waitFor,
  type TestSystem,
} from "../helpers/system.js";

let redisDir: string;
let server: SpawnedRedis;
let client: Redis;
let sys: TestSystem;
let pipeline: TestPipeline;
let env: Record<string, string>;
let startedAt = 0;

/** Job ids of every ledger line under the system's DATA_DIR (each line, duplicates kept). */
function ledgerIds(): string[] {
  const root = join(sys.dataDir, "ledger");
  const out: string[] = [];
  for (const day of readdirSync(root))
    for (const file of readdirSync(join(root, day)))
      for (const line of readFileSync(join(root, day, file), "utf8").split("\n"))
        if (line !== "") out.push((JSON.parse(line) as { job_id: string }).job_id);
  return out;
}

async function journaled(): Promise<number> {
  let n = 0;
  for await (const _ of readAdmissions(join(sys.dataDir, "admissions"), startedAt, Date.now() + 1)) n++;
  return n;
}

beforeAll(async () => {
  redisDir = mkdtempSync(join(tmpdir(), "rg-lost-redis-"));
  server = await spawnRedis(redisDir);
  client = new Redis(server.url, { maxRetriesPerRequest: null });
  env = {
    REDIS_URL: server.url,
    ANALYTICS: "off",
    SIM_STEP_MS: "0",
    ADMISSIONS_FLUSH_MS: "50",
    COMPLIANCE_EVERY_MS: "0",
    RECONCILE_LOST_AFTER_MS: "0",
  };
  sys = await startSystem({ env });
  pipeline = await startTestPipeline(sys, env);
  startedAt = Date.now();
}, 120_000);

afterAll(async () => {
  await pipeline?.close();
  await sys?.close();
  client?.disconnect();
  await server?.stop();
  rmSync(redisDir, { recursive: true, force: true });
});

describe("Redis emptied after admissions (FLUSHALL)", () => {
  it(
    "reports every acknowledged job it lost, by id, and nothing billed for them",
    { timeout: 120_000 },
    async () => {
      const token = await sys.token("flushed");
      const finished: string[] = [];
      for (let i = 0; i < 10; i++)
        finished.push(await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: `ok ${i}` }));
      const done = createKeys(sys.redis.prefix).done;
      await waitFor(async () => (await client.zcard(done)) >= finished.length, 60_000);
      await waitFor(async () => finished.every((id) => ledgerIds().includes(id)), 60_000);
      // … and in the audit log under a checkpoint (read as the reconciliation reads a live log)
      const auditLog = complianceAuditFor(sys.settings).log!;
      await waitFor(async () => {
        let n = 0;
        for await (const _ of auditLog()) n++;
        return n >= finished.length;
      }, 60_000);

      // the backend goes away: the next jobs are admitted (202) and stay queued
      await setSimDown(sys, true, client);
      const lost: string[] = [];
      for (let i = 0; i < 20; i++)
        lost.push(await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: `lost ${i}` }));
      await waitFor(async () => (await journaled()) >= 30, 30_000);
      await client.flushall();

      const ledger = createLedgerFiles({ dir: join(sys.dataDir, "ledger"), writerId: "test-reader" });
      let r: SignedReport;
      try {
        r = await makeReport(
          complianceDepsFor({
            env: sys.settings.env,
            dataDir: sys.dataDir,
            redis: client,
            clock: Date.now,
            ledger,
            audit: complianceAuditFor(sys.settings),
            analytics: undefined,
          }),
          startedAt,
          Date.now() + 1,
        );
      } finally {
        await ledger.close();
      }
      expect(r.flagged).toBe(true);
      expect(r.lost.count).toBe(20);
      expect(r.lost.jobs.map((j) => j.job_id).sort()).toEqual([...lost].sort());
      expect(r.lost.jobs.every((j) => j.redis === "absent" && !j.billed && j.customer_id === "flushed")).toBe(
        true,
      );
      expect(r.lost.billed).toBe(0);
      expect(r.admissions).toEqual({ journaled: 30, finished: 10, pending: 0, recent: 0 });
      // the jobs that finished before agree across the sources that are on
      expect(r.sources.ledger).toMatchObject({ status: "ok", jobs: 10 });
      expect(r.sources.audit).toMatchObject({ status: "ok", jobs: 10 });
      expect(r.sources.analytics.status).toBe("off");
      expect(r.discrepancies).toEqual([]);
      // nothing billed for the lost jobs: no ledger line
      const billed = new Set(ledgerIds());
      expect(lost.filter((id) => billed.has(id))).toEqual([]);
      expect(finished.every((id) => billed.has(id))).toBe(true);

      // the command line says the same and exits 3 (flagged)
      const cli = new CliProcess(
        "reconcile",
        [
          "reconcile",
          "--from",
          new Date(startedAt).toISOString(),
          "--to",
          new Date(Date.now() + 1).toISOString(),
        ],
        {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "",
          DATA_DIR: sys.dataDir,
          REDIS_URL: server.url,
          REDIS_PREFIX: sys.redis.prefix,
          ANALYTICS: "off",
          RECONCILE_LOST_AFTER_MS: "0",
          LOG_LEVEL: "warn",
        },
      );
      const exit = await cli.wait(60_000);
      expect(exit.code, cli.describe()).toBe(3);
      const printed = JSON.parse(cli.stdout) as SignedReport;
      expect(printed.lost.jobs.map((j) => j.job_id).sort()).toEqual([...lost].sort());
      expect(cli.stderr).toContain("FLAGGED");
      expect(cli.stderr).toContain("20 lost");
    },
  );
});
