// The compliance job on a whole gateway in this process (api, worker, simulated backend, pipeline) on
// the run's redis-server and a real clickhouse-server: 1,000 jobs through the system reconcile with no
// difference between the billing ledger, the audit log and ClickHouse; the scheduled runs store
// signed reports listed at GET /admin/compliance/reports and shown in GET /metrics; a row deleted from
// ClickHouse, a ledger entry altered and an audit record missing (a log built without it) are each
// found and named by job id.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@clickhouse/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPublicKey } from "../../src/core/checkpoint.js";
import { verifyReport } from "../../src/core/reconcile-report.js";
import type { SignedReport } from "../../src/core/reconcile-types.js";
import type { AnalyticsStore } from "../../src/infra/clickhouse-analytics.js";
import { createLedgerFiles } from "../../src/infra/ledger-files.js";
import { complianceAuditFor, complianceDepsFor, type ComplianceAudit } from "../../src/main/compliance.js";
import type { AuditRecord } from "../../src/core/audit-record.js";
import { buildAuditLog } from "../helpers/audit-log.js";
import { makeReport } from "../../src/pipeline/compliance.js";
import { createKeys } from "../../src/queues/keys.js";
import { startTestClickHouse, type TestClickHouse } from "../helpers/clickhouse.js";
import { startTestPipeline, type TestPipeline } from "../helpers/pipeline.js";
import { FLUX_SCHNELL_512, startSystem, waitFor, type TestSystem } from "../helpers/system.js";

const JOBS = 1_000;
const CUSTOMERS = ["acme", "globex", "initech", "umbrella"];
const MODELS = [FLUX_SCHNELL_512, { ...FLUX_SCHNELL_512, family: "zimage", model: "turbo" }];

let ch: TestClickHouse;
let store: AnalyticsStore;
let sys: TestSystem;
let pipeline: TestPipeline;
let env: Record<string, string>;
let startedAt = 0;
const ids: string[] = [];

/** The report of [startedAt, now] with the system's own sources (or another audit log's records). */
async function report(audit: Partial<ComplianceAudit> = {}): Promise<SignedReport> {
  const ledger = createLedgerFiles({ dir: join(sys.dataDir, "ledger"), writerId: "test-reader" });
  try {
    const deps = complianceDepsFor({
      env: sys.settings.env,
      dataDir: sys.dataDir,
      redis: sys.redis.client,
      clock: Date.now,
      ledger,
      audit: { ...complianceAuditFor(sys.settings), ...audit },
      analytics: store,
    });
    return await makeReport(deps, startedAt, Date.now() + 1);
  } finally {
    await ledger.close();
  }
}

const findings = (r: SignedReport) => r.discrepancies.flatMap((b) => b.job_ids);

beforeAll(async () => {
  ch = await startTestClickHouse();
  const database = ch.uniqueDatabase();
  env = {
    ...ch.env(database),
    SIM_STEP_MS: "0",
    ANALYTICS_FLUSH_MS: "100",
    ADMISSIONS_FLUSH_MS: "50",
    COMPLIANCE_EVERY_MS: "500",
    COMPLIANCE_SETTLE_MS: "0",
    RECONCILE_LOST_AFTER_MS: "60000",
    PIPELINE_LOCK_MS: "5000",
  };
  sys = await startSystem({ env });
  pipeline = await startTestPipeline(sys, env);
  store = ch.store(database);
  startedAt = Date.now();
}, 120_000);

afterAll(async () => {
  await pipeline?.close();
  await sys?.close();
  await ch?.stop();
});

describe("compliance", () => {
  it("reports no difference after 1,000 jobs through the system", { timeout: 300_000 }, async () => {
    const tokens = await Promise.all(CUSTOMERS.map((c) => sys.token(c)));
    for (let i = 0; i < JOBS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, JOBS - i) }, async (_, k) => {
          const n = i + k;
          const res = await sys.call("/queue", {
            method: "POST",
            token: tokens[n % tokens.length]!,
            body: JSON.stringify({
              ...MODELS[Math.floor(n / tokens.length) % MODELS.length],
              prompt: `job ${n}`,
              steps: 1 + (n % 4),
            }),
          });
          expect(res.status).toBe(202);
          return ((await res.json()) as { id: string }).id;
        }),
      );
      ids.push(...batch);
    }
    const done = createKeys(sys.redis.prefix).done;
    await waitFor(async () => (await sys.redis.client.zcard(done)) >= JOBS, 240_000, 250);
    // the follow-ups drain: the ledger (usage) and ClickHouse hold every job
    await waitFor(
      async () => (await store.jobIdsInWindow({ fromMs: startedAt, toMs: Date.now() + 1 })).size >= JOBS,
      120_000,
      250,
    );
    // … and the audit log's checkpoints cover every record
    const r = await waitFor(
      async () => {
        const got = await report();
        return got.sources.ledger.jobs >= JOBS && got.sources.audit.jobs >= JOBS ? got : undefined;
      },
      120_000,
      500,
    );
    for (const source of ["ledger", "audit", "analytics"] as const) {
      expect(r.sources[source]).toMatchObject({ status: "ok", jobs: JOBS, duplicates: 0 });
      expect(r.sources[source].gpu_ms).toBe(r.sources.ledger.gpu_ms);
    }
    expect(r.sources.ledger.gpu_ms).toBeGreaterThan(0);
    expect(r.discrepancies).toEqual([]);
    expect(r.mismatched_jobs).toBe(0);
    expect(r.max_discrepancy).toBe(0);
    expect(r.admissions).toEqual({ journaled: JOBS, finished: JOBS, pending: 0, recent: 0 });
    expect(r.lost.count).toBe(0);
    expect(r.flagged).toBe(false);
    // 4 customers × 2 models, in one or two UTC hours
    expect(r.buckets).toBeGreaterThanOrEqual(8);
  });

  it("stores signed reports on schedule, lists them for admins and shows the newest in /metrics", async () => {
    const admin = await sys.token("ops", { admin: true });
    const drained = Date.now();
    type Listed = { digest: string; generated_at: string; flagged: boolean; url: string };
    const page = await waitFor(
      async () => {
        const res = await sys.call("/admin/compliance/reports?limit=2", { token: admin });
        expect(res.status).toBe(200);
        const body = (await res.json()) as { reports: Listed[]; next: string | null };
        return body.reports.length === 2 && Date.parse(body.reports[1]!.generated_at) > drained
          ? body
          : undefined;
      },
      60_000,
      250,
    );
    const [newest, older] = page.reports as [Listed, Listed];
    expect(Date.parse(newest.generated_at)).toBeGreaterThanOrEqual(Date.parse(older.generated_at));
    expect(newest.flagged).toBe(false);
    expect(page.next).toContain("/admin/compliance/reports?limit=2&before=");
    const res = await fetch(newest.url, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    const stored = new Uint8Array(await res.arrayBuffer());
    const signed = JSON.parse(new TextDecoder().decode(stored)) as SignedReport;
    expect(signed.sources.ledger.jobs).toBe(JOBS);
    // the report verifies with the audit log's public key of its key_id
    const jwks: unknown = JSON.parse(readFileSync(join(sys.dataDir, "audit", "keys", "jwks.json"), "utf8"));
    const publicKey = findPublicKey(jwks, signed.key_id);
    expect(publicKey).toBeDefined();
    expect(await verifyReport(signed, publicKey!)).toBe(true);
    expect(await verifyReport({ ...signed, flagged: true }, publicKey!)).toBe(false);

    const metrics = await (await sys.call("/metrics")).text();
    expect(metrics).toMatch(/^rg_compliance_max_discrepancy 0$/m);
    expect(metrics).toMatch(/^rg_compliance_lost_jobs 0$/m);
    expect(metrics).toMatch(/^rg_compliance_flagged 0$/m);

    // admins only; an unknown report is 404; bounds are checked
    const customer = await sys.token("acme");
    expect((await sys.call("/admin/compliance/reports", { token: customer })).status).toBe(403);
    expect((await fetch(newest.url, { headers: { authorization: `Bearer ${customer}` } })).status).toBe(403);
    expect((await sys.call("/admin/compliance/reports")).status).toBe(401);
    const unknown = `/admin/compliance/reports/sha256-${"0".repeat(64)}`;
    expect((await sys.call(unknown, { token: admin })).status).toBe(404);
    expect((await sys.call("/admin/compliance/reports/x", { token: admin })).status).toBe(404);
    expect((await sys.call("/admin/compliance/reports?limit=0", { token: admin })).status).toBe(400);
    expect((await sys.call("/admin/compliance/reports?before=yesterday", { token: admin })).status).toBe(400);
  });

  it("names the job whose record an audit log lacks (a log built without it)", async () => {
    const missing = ids[321]!;
    const records: AuditRecord[] = [];
    for await (const { record } of complianceAuditFor(sys.settings).log!())
      if (record.job_id !== missing) records.push(record);
    expect(records).toHaveLength(JOBS - 1);
    const other = mkdtempSync(join(tmpdir(), "rg-compliance-audit-"));
    try {
      await buildAuditLog(other, { segmentSize: sys.settings.env.AUDIT_SEGMENT_SIZE, records });
      const { log } = complianceAuditFor({ ...sys.settings, dataDir: other });
      const r = await report({ log: log! });
      expect(r.flagged).toBe(true);
      expect(r.sources.audit, r.sources.audit.error).toMatchObject({ status: "ok", jobs: JOBS - 1 });
      expect(findings(r)).toEqual([
        expect.objectContaining({ job_id: missing, reasons: ["missing"], missing_from: ["audit"] }),
      ]);
      const bucket = r.discrepancies[0]!;
      expect(bucket.jobs.audit).toBe(bucket.jobs.ledger! - 1);
      expect(bucket.flagged).toBe(true);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("names a job whose ClickHouse row was deleted and one whose ledger entry was altered", async () => {
    const [deleted, altered] = [ids[17]!, ids[404]!];
    // ALTER … DELETE is a mutation: applied in the background, so wait until the row is gone
    const client = createClient({ url: ch.url, username: ch.username, password: ch.password });
    try {
      await client.command({
        query: `ALTER TABLE ${store.database}.inference_events DELETE WHERE job_id = '${deleted}'`,
      });
    } finally {
      await client.close();
    }
    await waitFor(
      async () => !(await store.jobIdsInWindow({ fromMs: startedAt, toMs: Date.now() + 1 })).has(deleted),
      30_000,
      100,
    );
    let original = 0;
    const root = join(sys.dataDir, "ledger");
    for (const day of readdirSync(root)) {
      for (const file of readdirSync(join(root, day))) {
        const path = join(root, day, file);
        const lines = readFileSync(path, "utf8").split("\n");
        const i = lines.findIndex((l) => l.includes(`"job_id":"${altered}"`));
        if (i < 0) continue;
        const entry = JSON.parse(lines[i]!) as { gpu_ms: number };
        original = entry.gpu_ms;
        lines[i] = JSON.stringify({ ...entry, gpu_ms: entry.gpu_ms + 1_000 });
        writeFileSync(path, lines.join("\n"));
      }
    }
    expect(original).toBeGreaterThan(0);

    const r = await report();
    expect(r.flagged).toBe(true);
    expect(r.mismatched_jobs).toBe(2);
    const byId = new Map(findings(r).map((f) => [f.job_id, f]));
    expect(byId.get(deleted)).toMatchObject({ reasons: ["missing"], missing_from: ["analytics"] });
    expect(byId.get(altered)).toMatchObject({ reasons: ["gpu_ms"], missing_from: [] });
    expect(byId.get(altered)!.seen.ledger!.gpu_ms).toBe(original + 1_000);
    expect(byId.get(altered)!.seen.analytics!.gpu_ms).toBe(original);
    expect(r.sources.analytics.jobs).toBe(JOBS - 1);
    expect(r.max_discrepancy).toBeGreaterThan(0);
  });
});
