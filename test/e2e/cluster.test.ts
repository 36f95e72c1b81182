// The whole system on a Redis Cluster (issue 15, REDIS_CLUSTER_NODES): three masters with a replica
// each (test/helpers/cluster.ts), `start --roles api`, `start --roles worker`, `start --roles
// pipeline` (until the failover: see below) and the simulator, with the default single pool. Jobs queued before any worker runs get exact positions (FIFO within a
// priority), a worker with one slot then starts them in that order, and every key the system wrote
// is under the prefix's hash tag on the one master serving it (SCAN on every master). Then the master
// holding the prefix is killed (kill -9) under steady submits: while its replica is promoted every
// answer is a fast 503 (never a 500, never a hang), then 202s again; no process is restarted and every
// acknowledged job completes (docs/decisions.md "Redis Cluster"). The pipeline is stopped before the
// kill: after a Cluster failover its shutdown hung in 3 of 5 loaded runs (an open item there).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  foxRequest,
  token,
  until,
  waitForModel,
  waitTerminal,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import { startCluster, type RedisClusterDeployment } from "../helpers/cluster.js";
import { createKeys } from "../../src/queues/keys.js";

/** Longest answer of any request during the failover: a hang would exceed it (configurable). */
const ANSWER_BOUND_MS = Number(process.env.TEST_FAILOVER_ANSWER_BOUND_MS ?? 6_000);
/** How long the failover may take on a loaded machine. */
const FAILOVER_WITHIN_MS = Number(process.env.TEST_FAILOVER_WITHIN_MS ?? 30_000);
const N = 24;
const SUBMIT_EVERY_MS = 80;

let h: E2eHarness;
let dep: RedisClusterDeployment;
let api: Gateway;
let sim: Gateway;
let worker: CliProcess | undefined;
let pipeline: CliProcess;
let bearer: string;
let env: Record<string, string | undefined>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...args: unknown[]) => console.log("[cluster]", ...args);

beforeAll(async () => {
  h = new E2eHarness();
  dep = await startCluster(h.tempDir(), { masters: 3, replicas: 1 });
  sim = await h.simBackend({ env: { SIM_STEP_MS: "2", SIM_CAPACITY: "32" } });
  env = {
    REDIS_URL: undefined,
    ...dep.env(),
    REDIS_COMMAND_TIMEOUT_MS: "1000",
    REDIS_RECONNECT_MAX_MS: "500",
    ADMIT_RESOLVE_MS: "1000",
    BACKENDS_FILE: h.backendsFile([{ id: "gpu-a", url: sim.url, capacity: 1, streaming: false }]),
    WORKER_CONCURRENCY: "1",
    AGING_BOUND_S: "86400",
    LOG_LEVEL: "info",
  };
  api = await h.start("api", { name: "api", env });
  pipeline = (await h.start("pipeline", { wait: "none", name: "pipeline", env })).proc;
  bearer = await token("cluster", { tier: "enterprise" });
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
  await dep?.stop();
});

describe("the system on a 3-master Redis Cluster with the default pool", () => {
  it("gives exact positions, starts jobs in that order, and keeps every key under the prefix's hash tag", async () => {
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const res = await call(api.url, "/queue", {
        method: "POST",
        token: bearer,
        body: foxRequest(`job ${i}`, 2),
      });
      const body = (await res.json()) as { id: string; position: number };
      expect(res.status, JSON.stringify(body)).toBe(202);
      expect(body.position, `202 position of job ${i}`).toBe(i);
      ids.push(body.id);
    }
    for (const [i, id] of ids.entries()) {
      const body = (await (await call(api.url, `/jobs/${id}`, { token: bearer })).json()) as {
        position: number;
      };
      expect(body.position, `GET position of job ${i}`).toBe(i);
    }

    worker = (await h.start("worker", { wait: "none", name: "worker", env })).proc;
    await waitForModel(api.url, bearer, "flux/schnell");
    const jobs = await waitTerminal(api.url, bearer, ids, 90_000);
    expect(jobs.filter((j) => j.status !== "complete").map((j) => `${j.id} ${j.status}`)).toEqual([]);
    // One slot: each job started after the previous one completed, in position order.
    const byStart = [...jobs].sort((a, b) => Date.parse(a.started_at!) - Date.parse(b.started_at!));
    expect(byStart.map((j) => ids.indexOf(j.id))).toEqual([...Array(N).keys()]);

    // The pipeline relayed every finished job (billing, audit, webhooks through BullMQ queues).
    const admin = await token("ops", { admin: true });
    await until("the pipeline's relay has no outbox entry left", async () => {
      const ready = (await (await call(api.url, "/ready", { token: admin })).json()) as {
        pipeline: { outbox_entries: number };
      };
      return ready.pipeline.outbox_entries === 0 ? true : undefined;
    });

    // Every key of the cluster (SCAN on each master) is the system's, under the prefix's hash tag,
    // on the master serving that tag: scheduler, stores, BullMQ's queues, the pipeline's, metrics.
    const keys = await dep.allKeys();
    expect(keys.length).toBeGreaterThan(N);
    expect(keys.filter((k) => !k.startsWith(`${h.prefix}:`))).toEqual([]);
    const home = await dep.masterOf(createKeys(h.prefix).queue);
    for (const m of await dep.masters()) {
      if (m !== home) expect(await dep.keysOn(m), `keys on master :${m.port}`).toEqual([]);
    }
    // Stopped before the failover below: after one, its shutdown can hang (docs/decisions.md
    // "Redis Cluster", open item).
    expect(await pipeline.stop(20_000), pipeline.describe()).toEqual({
      code: 0,
      signal: null,
      forced: false,
    });
  }, 150_000);

  it("answers fast 503s while the prefix's master fails over, then 202s; every acknowledged job completes", async () => {
    expect(worker?.running).toBe(true);
    const answers: {
      sentAt: number;
      ms: number;
      status: number;
      code?: string;
      id?: string;
      failure?: string;
    }[] = [];
    const running = new Set<Promise<void>>();
    let n = 0;
    const submit = async () => {
      const sentAt = Date.now();
      try {
        const res = await call(api.url, "/queue", {
          method: "POST",
          token: bearer,
          body: foxRequest(`failover ${n++}`, 2),
          signal: AbortSignal.timeout(ANSWER_BOUND_MS * 2),
        });
        const body = (await res.json()) as { id?: string; error?: string };
        answers.push({
          sentAt,
          ms: Date.now() - sentAt,
          status: res.status,
          ...(body.error ? { code: body.error } : {}),
          ...(body.id ? { id: body.id } : {}),
        });
      } catch (err) {
        answers.push({ sentAt, ms: Date.now() - sentAt, status: 0, failure: String(err) });
      }
    };
    const load = setInterval(() => {
      const p = submit();
      running.add(p);
      void p.finally(() => running.delete(p));
    }, SUBMIT_EVERY_MS);
    let killAt = 0;
    try {
      await sleep(1_500);
      const old = await dep.masterOf(createKeys(h.prefix).queue);
      killAt = Date.now();
      await old.kill("SIGKILL");
      await until(
        "the prefix's slot served by the promoted replica",
        async () =>
          (await dep.masterOf(createKeys(h.prefix).queue).catch(() => old)) !== old ? true : undefined,
        FAILOVER_WITHIN_MS,
        50,
      );
      await until(
        "a 202 to a request sent after the kill",
        async () => (answers.some((a) => a.status === 202 && a.sentAt > killAt) ? true : undefined),
        FAILOVER_WITHIN_MS,
        25,
      );
      await sleep(1_500);
    } finally {
      clearInterval(load);
      await Promise.all([...running]);
    }
    const odd = answers.filter((a) => a.status !== 202 && a.status !== 503);
    expect(
      odd.map((a) => `${a.status} ${a.code ?? ""} ${a.failure ?? ""}`),
      api.proc.stdout
        .split("\n")
        .filter((l) => l.includes('"level":50'))
        .join("\n"),
    ).toEqual([]);
    for (const a of answers.filter((x) => x.status === 503)) expect(a.code).toBe("unavailable");
    const slowest = Math.max(...answers.map((a) => a.ms));
    expect(slowest).toBeLessThan(ANSWER_BOUND_MS);
    const refused = answers.filter((a) => a.status === 503);
    const acked = answers.filter((a) => a.status === 202).map((a) => a.id!);
    const firstAck = Math.min(
      ...answers.filter((a) => a.status === 202 && a.sentAt > killAt).map((a) => a.sentAt + a.ms),
    );

    // No process was restarted; every acknowledged job completes.
    expect([api.proc.running, worker!.running]).toEqual([true, true]);
    const jobs = await waitTerminal(api.url, bearer, acked, 90_000);
    expect(jobs.filter((j) => j.status !== "complete").map((j) => `${j.id} ${j.status}`)).toEqual([]);
    log(
      `kill -9 of the prefix's master → first 202 again ${firstAck - killAt} ms later; ${answers.length} submits: ` +
        `${acked.length} × 202 (all completed), ${refused.length} × 503; slowest answer ${slowest} ms`,
    );
    for (const p of [api.proc, worker!, sim.proc]) {
      expect(await p.stop(20_000), p.describe()).toEqual({ code: 0, signal: null, forced: false });
    }
  }, 180_000);
});
