// A failover with REDIS_WAIT_REPLICAS off loses acknowledged jobs, and the reconciliation names every
// one of them (issue 15 items 2 and 4; README "Redis high availability (Sentinel)"). One primary, one
// replica and three sentinels (test/helpers/sentinel.ts); two `start --roles api`, two
// `start --roles worker` and one `start --roles pipeline` process reaching Redis through the
// sentinels, analytics off; a client submits steadily.
//
// The loss is made certain, not hoped for: the replica is frozen (SIGSTOP) and its replication link
// cut on the primary (`CLIENT KILL TYPE replica`: a frozen replica cannot reconnect), so every job
// admitted from then on exists on the primary alone — a replica that has fallen behind, at its
// extreme. Jobs are acknowledged (202) in that moment; then the primary is killed (kill -9), the
// replica thawed, and the sentinels promote it. The simulated GPU is frozen (SIGSTOP) before the cut
// and the follow-ups (ledger, audit log) left to catch up, so that nothing but admissions happens on
// the primary alone: a job that ended there, or was billed there, is another story (a lost
// completion runs again after its lease; docs/decisions.md "Redis high availability" says what a
// run without the frozen GPU showed).
//
// After the promotion and the settling, `render-gateway reconcile` (a process, over the sentinels)
// and the pipeline's scheduled compliance run both report: every 202'd job either completed or is
// named lost, each job acknowledged while the replica was cut off among the lost, none of the lost
// billed (no ledger line, no billing marker), the sources that are on (ledger, audit log) agreeing,
// analytics `off`.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditTailUncovered } from "../../src/core/audit-log-check.js";
import type { ReportSummary, SignedReport } from "../../src/core/reconcile-types.js";
import { readAuditLog } from "../../src/infra/audit-log-reader.js";
import { createKeys } from "../../src/queues/keys.js";
import {
  E2eHarness,
  call,
  foxRequest,
  readJob,
  token,
  until,
  waitForModel,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import { startSentinels, type SentinelDeployment } from "../helpers/sentinel.js";

/** How long the failover may take on a loaded machine (configurable, as every bound here). */
const FAILOVER_WITHIN_MS = Number(process.env.TEST_FAILOVER_WITHIN_MS ?? 30_000);
/** How long the jobs that survived may take to complete and reach the ledger and the audit log. */
const SETTLE_WITHIN_MS = Number(process.env.TEST_SETTLE_WITHIN_MS ?? 60_000);
/** Longest answer of any request: a hang would exceed it. */
const ANSWER_BOUND_MS = Number(process.env.TEST_FAILOVER_ANSWER_BOUND_MS ?? 6_000);
/** Jobs acknowledged while the replica is cut off: each must be named lost. */
const CUT_OFF_JOBS = 4;
const SUBMIT_EVERY_MS = 80;

let h: E2eHarness;
let dep: SentinelDeployment;
let apis: Gateway[] = [];
const workers: CliProcess[] = [];
let pipeline: CliProcess;
let sim: Gateway;
let bearer: string;
let env: Record<string, string | undefined>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...args: unknown[]) => console.log("[compliance-failover]", ...args);

beforeAll(async () => {
  h = new E2eHarness();
  dep = await startSentinels(h.tempDir(), { replicas: 1, downAfterMs: 1_000, failoverTimeoutMs: 3_000 });
  sim = await h.simBackend({ env: { SIM_STEP_MS: "10", SIM_CAPACITY: "32" } });
  env = {
    REDIS_URL: undefined,
    ...dep.env(),
    REDIS_COMMAND_TIMEOUT_MS: "1000",
    REDIS_RECONNECT_MAX_MS: "500",
    ADMIT_RESOLVE_MS: "1000",
    BACKENDS_FILE: h.backendsFile([{ id: "gpu-a", url: sim.url, capacity: 6, streaming: false }]),
    WORKER_CONCURRENCY: "2",
    LOCK_MS: "2000",
    STALLED_INTERVAL_MS: "300",
    PIPELINE_LOCK_MS: "2000",
    PIPELINE_CLAIM_MS: "1000",
    AUDIT_LOCK_MS: "2000",
    AUDIT_CHECKPOINT_MS: "200",
    ADMISSIONS_FLUSH_MS: "50",
    // the scheduled reconciliation: every second, up to now, judging every admission at once
    COMPLIANCE_EVERY_MS: "1000",
    COMPLIANCE_SETTLE_MS: "0",
    RECONCILE_LOST_AFTER_MS: "0",
    ANALYTICS: "off",
    LOG_LEVEL: "info",
  };
  const primary = dep.client(await dep.primary());
  const breakers = createKeys(h.prefix).breakers("gpu-a");
  for (let i = 1; i <= 2; i++) {
    const { proc } = await h.start("worker", { wait: "none", name: `worker ${i}`, env });
    await proc.waitUntil("the worker publishes its backend", async () =>
      (await primary.hkeys(breakers)).some((f) => f.includes(`-${proc.pid}-`)) ? true : undefined,
    );
    workers.push(proc);
  }
  pipeline = (await h.start("pipeline", { wait: "none", name: "pipeline", env })).proc;
  apis = [await h.start("api", { name: "api 1", env }), await h.start("api", { name: "api 2", env })];
  bearer = await token("failover-lost", { tier: "enterprise" });
  for (const api of apis) await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  sim?.proc.resume();
  await h?.cleanup();
  await dep?.stop();
});

/** One submit: when it was sent, its answer, and the job a 202 named. */
interface Submit {
  readonly sentAt: number;
  ms?: number;
  status?: number;
  code?: string;
  id?: string;
  failure?: string;
}

async function submit(api: Gateway, prompt: string): Promise<Submit> {
  const s: Submit = { sentAt: Date.now() };
  try {
    const res = await call(api.url, "/queue", {
      method: "POST",
      token: bearer,
      body: foxRequest(prompt, 4),
      signal: AbortSignal.timeout(ANSWER_BOUND_MS * 2),
    });
    const body = (await res.json()) as { id?: string; error?: string };
    s.status = res.status;
    if (res.status === 202 && body.id) s.id = body.id;
    if (body.error) s.code = body.error;
  } catch (err) {
    s.failure = String(err);
  }
  s.ms = Date.now() - s.sentAt;
  return s;
}

/** Ledger lines per job id, over every file of the deployment's DATA_DIR. */
function ledgerCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  const root = join(h.dataDir, "ledger");
  if (!existsSync(root)) return counts;
  for (const day of readdirSync(root))
    for (const f of readdirSync(join(root, day)))
      for (const line of readFileSync(join(root, day, f), "utf8").split("\n")) {
        if (line === "") continue;
        const id = (JSON.parse(line) as { job_id: string }).job_id;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
  return counts;
}

/** Job ids of the audit log under a checkpoint, read (and verified) as the reconciliation reads it. */
async function auditedIds(): Promise<Set<string>> {
  const ids = new Set<string>();
  try {
    for await (const { record } of readAuditLog(h.dataDir)) ids.add(record.job_id);
  } catch (err) {
    // a live log: its newest leaves are not under a checkpoint yet (every covered one was read)
    if (!(err instanceof AuditTailUncovered)) throw err;
  }
  return ids;
}

describe("a Redis primary killed (kill -9) with REDIS_WAIT_REPLICAS off and a replica cut off", () => {
  it("names every acknowledged job the failover lost; every other one completes, none lost is billed", async () => {
    const startedAt = Date.now();
    const submits: Submit[] = [];
    const running = new Set<Promise<void>>();
    let loadOn = true;
    const load = setInterval(() => {
      if (!loadOn) return;
      const p = submit(apis[submits.length % 2]!, `steady ${submits.length}`).then((s) => {
        submits.push(s);
      });
      running.add(p);
      void p.finally(() => running.delete(p));
    }, SUBMIT_EVERY_MS);

    try {
      // ---- steady state: jobs complete, reach the ledger and the audit log
      await until(
        "jobs billed and in the audit log before the cut",
        async () => {
          const billed = ledgerCounts();
          const done = submits.filter((s) => s.id !== undefined && billed.has(s.id));
          return done.length >= 5 && (await auditedIds()).size >= 5;
        },
        SETTLE_WITHIN_MS,
        200,
      );
      const old = await dep.primary();
      const replica = dep.nodes.find((n) => n !== old)!;
      const oldClient = dep.client(old);

      // ---- the GPU freezes, and the follow-ups catch up: from here on nothing finishes, so the
      // cut below loses admissions only (no completion, ledger line or audit leaf is in flight)
      sim.proc.pause();
      let caughtUp = 0;
      await until(
        "every finished job billed and in the audit log",
        async () => {
          const finished = await oldClient.zrange(createKeys(h.prefix).done, "0", "-1");
          const billed = ledgerCounts();
          const audited = await auditedIds();
          const all = finished.every((id) => billed.has(id) && audited.has(id));
          caughtUp = all ? caughtUp + 1 : 0;
          return caughtUp >= 2; // twice in a row: a reply the frozen GPU sent just before has landed
        },
        SETTLE_WITHIN_MS,
        200,
      );

      // ---- the replica falls behind for good: frozen, its link cut
      process.kill(replica.pid, "SIGSTOP");
      let thawed = false;
      const thaw = () => {
        if (thawed) return;
        thawed = true;
        process.kill(replica.pid, "SIGCONT");
        sim.proc.resume();
      };
      let cutOff: Submit[];
      let killAt: number;
      try {
        expect(Number(await oldClient.call("CLIENT", "KILL", "TYPE", "replica"))).toBe(1);
        const cutAt = Date.now();
        // acknowledged by the primary alone (both API processes)
        cutOff = [];
        for (let i = 0; i < CUT_OFF_JOBS; i++) cutOff.push(await submit(apis[i % 2]!, `cut off ${i}`));
        expect(cutOff.map((s) => s.status)).toEqual(cutOff.map(() => 202));
        // the primary holds them; the frozen replica does not (nothing reached it since the cut)
        const info = await oldClient.info("replication");
        expect(info).toMatch(/connected_slaves:0/);
        expect(cutOff.every((s) => s.sentAt >= cutAt)).toBe(true);
        // let the journals write them (ADMISSIONS_FLUSH_MS), as they would in any second
        await sleep(200);
        killAt = Date.now();
        await old.kill("SIGKILL");
      } finally {
        thaw();
      }
      const promoted = await dep.waitForFailover(old, FAILOVER_WITHIN_MS);
      const promotedAt = Date.now();
      const firstAck = await until(
        "a 202 to a request sent after the promotion",
        async () => submits.find((s) => s.status === 202 && s.sentAt > promotedAt),
        FAILOVER_WITHIN_MS,
        25,
      );
      await sleep(1_000);
      loadOn = false;
      clearInterval(load);
      while (running.size > 0) await Promise.all([...running]);

      // ---- never a 500, never a hang: 202, or 503 while no primary answers
      const all = [...submits, ...cutOff];
      const odd = all.filter((s) => s.status !== 202 && !(s.status === 503 && s.code === "unavailable"));
      expect(odd.map((s) => `${s.status ?? 0} ${s.code ?? ""} ${s.failure ?? ""}`)).toEqual([]);
      expect(Math.max(...all.map((s) => s.ms ?? 0))).toBeLessThan(ANSWER_BOUND_MS);
      const acked = all.filter((s) => s.id !== undefined).map((s) => s.id!);
      const cutOffIds = cutOff.map((s) => s.id!);

      // ---- settle: each acknowledged job is complete on the new primary (and billed and in the
      // audit log) or unknown to it
      const gone = new Set<string>();
      await until(
        "every acknowledged job complete or gone",
        async () => {
          for (const id of acked) {
            if (gone.has(id)) continue;
            const job = await readJob(apis[0]!.url, bearer, id);
            if (job === undefined) gone.add(id);
            else if (job.status !== "complete") return false;
          }
          return true;
        },
        SETTLE_WITHIN_MS,
        200,
      );
      const completed = acked.filter((id) => !gone.has(id));
      await until(
        "every completed job billed and in the audit log",
        async () => {
          const billed = ledgerCounts();
          if (!completed.every((id) => billed.has(id))) return false;
          const audited = await auditedIds();
          return completed.every((id) => audited.has(id));
        },
        SETTLE_WITHIN_MS,
        200,
      );
      const settledAt = Date.now();

      // ---- the reconciliation, on demand: `render-gateway reconcile` over the sentinels
      const cli = h.spawn(
        ["reconcile", "--from", new Date(startedAt).toISOString(), "--to", new Date(settledAt).toISOString()],
        { name: "reconcile", env: { ...env, LOG_LEVEL: "warn" } },
      );
      cli.awaited = true;
      const exit = await cli.wait(60_000);
      expect(exit.code, cli.describe()).toBe(3); // flagged: jobs were lost
      const report = JSON.parse(cli.stdout) as SignedReport;
      const lost = report.lost.jobs.map((j) => j.job_id);

      // every acknowledged job either completed or is named lost — never both, never neither
      expect(acked.filter((id) => gone.has(id) !== lost.includes(id))).toEqual([]);
      // the jobs acknowledged by the primary alone are among the lost: the loss was real
      expect(cutOffIds.filter((id) => !lost.includes(id))).toEqual([]);
      expect(report.lost.count).toBe(lost.length);
      expect(report.lost.omitted).toBe(0);
      // nothing lost was billed: no billing marker, no ledger line; every completed job billed once
      expect(report.lost.billed).toBe(0);
      expect(report.lost.jobs.filter((j) => j.redis !== "absent" || j.billed)).toEqual([]);
      expect(report.lost.jobs.every((j) => j.customer_id === "failover-lost")).toBe(true);
      const billed = ledgerCounts();
      expect(lost.filter((id) => billed.has(id))).toEqual([]);
      expect(completed.filter((id) => billed.get(id) !== 1)).toEqual([]);
      // the sources that are on agree about the rest; analytics are off, and say so
      expect(report.sources.ledger).toMatchObject({ status: "ok", jobs: completed.length, duplicates: 0 });
      expect(report.sources.audit).toMatchObject({ status: "ok", jobs: completed.length, duplicates: 0 });
      expect(report.sources.analytics.status).toBe("off");
      expect(report.discrepancies).toEqual([]);
      expect(report.admissions).toMatchObject({
        finished: completed.length,
        pending: 0,
        recent: 0,
      });
      // a journaled job is finished or lost (a 503'd request's job may be among the lost)
      expect(report.admissions.journaled).toBe(completed.length + lost.length);
      expect(cli.stderr).toContain(`FLAGGED`);
      expect(cli.stderr).toContain(`${lost.length} lost`);

      // ---- the scheduled compliance run (the pipeline's, every second) names the same jobs
      const admin = await token("ops", { admin: true });
      const summary = await until(
        "a scheduled report made after the settling",
        async () => {
          const res = await call(apis[1]!.url, "/admin/compliance/reports?limit=1", { token: admin });
          if (res.status !== 200) return undefined;
          const { reports } = (await res.json()) as { reports: (ReportSummary & { url: string })[] };
          const newest = reports[0];
          return newest && Date.parse(newest.to) >= settledAt ? newest : undefined;
        },
        SETTLE_WITHIN_MS,
        200,
      );
      const stored = await call(apis[1]!.url, `/admin/compliance/reports/${summary.digest}`, {
        token: admin,
      });
      expect(stored.status).toBe(200);
      const scheduled = (await stored.json()) as SignedReport;
      expect(scheduled.lost.jobs.map((j) => j.job_id).sort()).toEqual([...lost].sort());
      expect(scheduled.lost.billed).toBe(0);
      expect(scheduled.discrepancies).toEqual([]);
      expect(summary).toMatchObject({ flagged: true, lost: lost.length, mismatched_jobs: 0 });

      log(
        `kill -9 → promotion ${promotedAt - killAt} ms, first 202 after it ${firstAck.sentAt + (firstAck.ms ?? 0) - killAt} ms; ` +
          `${acked.length} jobs acknowledged, ${completed.length} completed, ${lost.length} named lost ` +
          `(${cutOffIds.length} acknowledged while the replica was cut off; ${lost.length - gone.size} lost without a 202); ` +
          `${all.filter((s) => s.status === 503).length} × 503; new primary :${promoted.port}`,
      );

      // ---- every process rode it out and stops cleanly
      for (const p of [...apis.map((a) => a.proc), ...workers, pipeline, sim.proc]) {
        expect(await p.stop(20_000), p.describe()).toEqual({ code: 0, signal: null, forced: false });
      }
    } finally {
      loadOn = false;
      clearInterval(load);
      await Promise.all([...running]);
    }
  }, 180_000);
});
