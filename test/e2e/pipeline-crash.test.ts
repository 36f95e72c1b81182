// The follow-up pipeline survives kill -9 (issue 11): a pipeline process killed between reading the
// outbox and handing the entries off, or between writing a ledger line and recording it, leaves
// every finished job billed exactly once after another pipeline process takes over — one ledger
// line per job, usage counts that agree — with real processes on the run's redis-server.
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  foxRequest,
  submitJob,
  token,
  until,
  waitForModel,
  waitTerminal,
  type Gateway,
} from "../helpers/processes.js";

let h: E2eHarness;
let gw: Gateway;
const PIPELINE_ENV = { PIPELINE_CLAIM_MS: "400", PIPELINE_LOCK_MS: "600" };

/** Ledger lines per job id, over every file of every pipeline process. */
function ledgerCounts(dataDir: string): Map<string, number> {
  const counts = new Map<string, number>();
  const root = join(dataDir, "ledger");
  if (!existsSync(root)) return counts;
  for (const day of readdirSync(root)) {
    for (const f of readdirSync(join(root, day))) {
      for (const line of readFileSync(join(root, day, f), "utf8").split("\n")) {
        if (line === "") continue;
        const id = (JSON.parse(line) as { job_id: string }).job_id;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
  }
  return counts;
}

beforeAll(async () => {
  h = new E2eHarness();
  gw = await h.start("api,worker,sim", { env: { SIM_STEP_MS: "2" } });
  await waitForModel(gw.url, await token("warmup", { tier: "pro" }), "flux/schnell");
});
afterAll(async () => {
  await h.stopAll();
});

describe.each(["after_read", "after_ledger"] as const)("a pipeline killed %s", (fault) => {
  it("leaves every finished job billed once after another pipeline takes over", async () => {
    const customer = `crash-${fault}`;
    const bearer = await token(customer, { tier: "pro" });
    const doomed = await h.start("pipeline", {
      wait: "none",
      name: `pipeline (${fault})`,
      env: { ...PIPELINE_ENV, PIPELINE_FAULT: fault },
    });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await submitJob(gw.url, bearer, foxRequest(`job ${i}`, 4))).id);
    const jobs = await waitTerminal(gw.url, bearer, ids);
    // the faulty process killed itself (SIGKILL) at its fault point
    const died = await doomed.proc.exited;
    expect(died.signal).toBe("SIGKILL");
    await doomed.proc.kill();
    const admin = await token("ops", { admin: true });
    const lag = async () => {
      const res = await call(gw.url, "/ready", { token: admin });
      return ((await res.json()) as { pipeline: { outbox_entries: number; outbox_oldest_ms: number } })
        .pipeline;
    };
    // entries read and never handed off show as the relay's lag until someone takes them over
    if (fault === "after_read") expect((await lag()).outbox_entries).toBeGreaterThan(0);
    const heir = await h.start("pipeline", { wait: "none", name: "pipeline (heir)", env: PIPELINE_ENV });
    const usage = await until(
      "every job in the usage",
      async () => {
        const res = await call(gw.url, "/usage?group_by=model", { token: bearer });
        const body = (await res.json()) as { total: { jobs: number; gpu_seconds: number } };
        return body.total.jobs >= ids.length ? body : undefined;
      },
      30_000,
    );
    expect(usage.total.jobs).toBe(ids.length);
    // the same through a window of whole hours: the usage counts in Redis alone, not the ledger
    const hour = 3_600_000;
    const from = new Date(Math.floor(Date.now() / hour) * hour - hour).toISOString();
    const to = new Date(Math.ceil(Date.now() / hour) * hour + hour).toISOString();
    // (the part-hours above come from the ledger, written before the counts: wait for the counts too)
    const whole = await until(
      "every job in the usage counts",
      async () => {
        const res = await call(gw.url, `/usage?from=${from}&to=${to}`, { token: bearer });
        const body = (await res.json()) as { total: { jobs: number; gpu_seconds: number } };
        return body.total.jobs >= ids.length ? body : undefined;
      },
      30_000,
    );
    expect(whole.total).toEqual(usage.total);
    const counts = ledgerCounts(h.dataDir);
    expect(ids.map((id) => counts.get(id) ?? 0)).toEqual(ids.map(() => 1));
    const gpuMs = jobs.reduce((sum, j) => sum + (j.status === "complete" ? Number(j.gpu_ms ?? 0) : 0), 0);
    expect(Math.round(usage.total.gpu_seconds * 1000)).toBe(gpuMs);
    await until("no outbox lag", async () => (await lag()).outbox_entries === 0);
    await heir.proc.stop();
    // processes start, die and take over on a shared 2-core machine: each wait above is bounded itself
  }, 120_000);
});
