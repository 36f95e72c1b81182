// A Redis failover under load (issue 15 items 1, 2 and 4): one primary, one replica and three
// sentinels (test/helpers/sentinel.ts), two `start --roles api` and three `start --roles worker`
// processes reaching Redis through the sentinels, with REDIS_WAIT_REPLICAS=1 (a 202 only once the
// replica holds the job), and a client that submits steadily, each job with an Idempotency-Key,
// resending on 503 as README "Redis high availability" tells it to.
//
// The primary is killed (kill -9); the sentinels promote the replica; the killed server comes back
// and becomes the new primary's replica (a 202 needs one; on a loaded machine the sentinels may then
// fail over once more, back to it: the test takes whichever primary they settle on). Meanwhile every
// answer is a fast 503 (or the 409 of a key whose admission is being settled): never a 500, never a
// hang. The processes follow the promotion by themselves (none restarted), and every job
// acknowledged with 202 completes, each key with one job. The gap (kill → the first 202 to a request
// sent after it) is printed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  foxRequest,
  token,
  until,
  waitForModel,
  waitLeasesZero,
  waitTerminal,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import { startSentinels, type SentinelDeployment } from "../helpers/sentinel.js";
import { createKeys } from "../../src/queues/keys.js";

/** Longest answer of any request during the failover: a hang would exceed it (configurable). */
const ANSWER_BOUND_MS = Number(process.env.TEST_FAILOVER_ANSWER_BOUND_MS ?? 6_000);
/** How long the failover (and the old primary's return as a replica) may take on a loaded machine. */
const FAILOVER_WITHIN_MS = Number(process.env.TEST_FAILOVER_WITHIN_MS ?? 30_000);
const SUBMIT_EVERY_MS = 60;
const RETRY_PAUSE_MS = 200;

let h: E2eHarness;
let dep: SentinelDeployment;
let apis: Gateway[] = [];
const workers: CliProcess[] = [];
let sim: Gateway;
let bearer: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...args: unknown[]) => console.log("[sentinel-failover]", ...args);

beforeAll(async () => {
  h = new E2eHarness();
  dep = await startSentinels(h.tempDir(), { replicas: 1, downAfterMs: 1_000, failoverTimeoutMs: 3_000 });
  sim = await h.simBackend({ env: { SIM_STEP_MS: "10", SIM_CAPACITY: "32" } });
  const env = {
    REDIS_URL: undefined,
    ...dep.env(),
    REDIS_WAIT_REPLICAS: "1",
    REDIS_WAIT_MS: "500",
    REDIS_COMMAND_TIMEOUT_MS: "1000",
    REDIS_RECONNECT_MAX_MS: "500",
    ADMIT_RESOLVE_MS: "1000",
    IDEMPOTENCY_HOLD_MS: "2000",
    BACKENDS_FILE: h.backendsFile([{ id: "gpu-a", url: sim.url, capacity: 6, streaming: false }]),
    WORKER_CONCURRENCY: "2",
    LOCK_MS: "2000",
    STALLED_INTERVAL_MS: "300",
    LOG_LEVEL: "info",
  };
  const primary = dep.client(await dep.primary());
  const breakers = createKeys(h.prefix).breakers("gpu-a");
  for (let i = 1; i <= 3; i++) {
    const { proc } = await h.start("worker", { wait: "none", name: `worker ${i}`, env });
    await proc.waitUntil("the worker publishes its backend", async () =>
      (await primary.hkeys(breakers)).some((f) => f.includes(`-${proc.pid}-`)) ? true : undefined,
    );
    workers.push(proc);
  }
  apis = [await h.start("api", { name: "api 1", env }), await h.start("api", { name: "api 2", env })];
  bearer = await token("failover", { tier: "enterprise" });
  for (const api of apis) await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
  await dep?.stop();
});

/** One answer to one request of a submit. */
interface Answer {
  readonly sentAt: number;
  readonly ms: number;
  readonly status: number;
  readonly code?: string;
  /** `details.outcome` of a 503 (`unreplicated`, `unknown`). */
  readonly outcome?: string;
  /** The job a 202 or a 503 named. */
  readonly jobId?: string;
  readonly failure?: string;
}

/** One job the client wants: its key, and every answer until the 202. */
interface Submit {
  readonly key: string;
  readonly answers: Answer[];
  id?: string;
}

describe("a Redis primary killed (kill -9) under load, with REDIS_WAIT_REPLICAS=1", () => {
  it("answers 503 only while no primary holds the job twice; every job acknowledged completes", async () => {
    const pids = [...apis.map((a) => a.proc.pid), ...workers.map((w) => w.pid)];
    const submits: Submit[] = [];
    let stopAt = Number.POSITIVE_INFINITY;
    const resend = async (s: Submit, api: Gateway) => {
      for (;;) {
        const sentAt = Date.now();
        let answer: Answer;
        try {
          const res = await call(api.url, "/queue", {
            method: "POST",
            token: bearer,
            headers: { "idempotency-key": s.key },
            body: foxRequest(s.key, 4),
            signal: AbortSignal.timeout(ANSWER_BOUND_MS * 2),
          });
          const body = (await res.json()) as {
            id?: string;
            error?: string;
            details?: { outcome?: string; job_id?: string };
          };
          const jobId = body.id ?? body.details?.job_id;
          answer = {
            sentAt,
            ms: Date.now() - sentAt,
            status: res.status,
            ...(body.error ? { code: body.error } : {}),
            ...(body.details?.outcome ? { outcome: body.details.outcome } : {}),
            ...(jobId ? { jobId } : {}),
          };
        } catch (err) {
          answer = { sentAt, ms: Date.now() - sentAt, status: 0, failure: String(err) };
        }
        s.answers.push(answer);
        if (answer.status === 202) {
          if (answer.jobId !== undefined) s.id = answer.jobId;
          return;
        }
        // 503 (and the 409 of a key still being settled) are resent; anything else is a finding.
        if ((answer.status !== 503 && answer.status !== 409) || Date.now() > stopAt) return;
        await sleep(RETRY_PAUSE_MS);
      }
    };
    const running = new Set<Promise<void>>();
    let loadOn = true;
    const load = setInterval(() => {
      if (!loadOn) return;
      const s: Submit = { key: `failover-${submits.length}`, answers: [] };
      submits.push(s);
      const p = resend(s, apis[submits.length % 2]!);
      running.add(p);
      void p.finally(() => running.delete(p));
    }, SUBMIT_EVERY_MS);

    try {
      await sleep(3_000);
      const old = await dep.primary();
      expect(submits.some((s) => s.id)).toBe(true);

      // ---- kill -9 the primary; the sentinels promote the replica
      const killAt = Date.now();
      await old.kill("SIGKILL");
      const promoted = await dep.waitForFailover(old, FAILOVER_WITHIN_MS);
      const promotedAt = Date.now();
      // ---- the old primary returns as the new primary's replica
      await dep.rejoin(old, promoted);
      // (Sentinel's business, not the gateway's: under load the sentinels can fail over once more.)
      const settledOn = await dep.waitSettled(FAILOVER_WITHIN_MS);
      const replicaAt = Date.now();
      const firstAck = await until(
        "a 202 to a request sent after the kill",
        async () => {
          const acks = submits.flatMap((s) => s.answers.filter((a) => a.status === 202 && a.sentAt > killAt));
          return acks.length === 0 ? undefined : Math.min(...acks.map((a) => a.sentAt + a.ms));
        },
        FAILOVER_WITHIN_MS,
        25,
      );
      await sleep(2_000);
      loadOn = false;
      clearInterval(load);
      stopAt = Date.now() + FAILOVER_WITHIN_MS;
      while (running.size > 0) await Promise.all([...running]);

      const answers = submits.flatMap((s) => s.answers);
      // ---- never a 500, never a hang: 202, or 503 / 409 to resend
      const odd = answers.filter((a) => ![202, 503, 409].includes(a.status));
      expect(odd.map((a) => `${a.status} ${a.code ?? ""} ${a.failure ?? ""}`)).toEqual([]);
      const slowest = Math.max(...answers.map((a) => a.ms));
      expect(slowest).toBeLessThan(ANSWER_BOUND_MS);
      const refused = answers.filter((a) => a.status !== 202);
      expect(refused.length).toBeGreaterThan(0);
      for (const a of refused.filter((x) => x.status === 503)) expect(a.code).toBe("unavailable");
      const unanswered = submits.filter((s) => s.id === undefined);
      expect(unanswered.slice(0, 3), apis.map((a) => a.proc.describe()).join("\n")).toEqual([]);
      expect(
        unanswered.map(
          (s) =>
            `${s.key}: ${s.answers
              .slice(-4)
              .map((a) => `${a.status} ${a.code ?? ""} ${a.outcome ?? ""} ${a.ms}ms`)
              .join(", ")} (${s.answers.length} answers)`,
        ),
      ).toEqual([]);

      // ---- every process rode it out
      expect([...apis.map((a) => a.proc.pid), ...workers.map((w) => w.pid)]).toEqual(pids);
      expect([...apis.map((a) => a.proc.running), ...workers.map((w) => w.running)]).toEqual(
        Array(5).fill(true),
      );

      // ---- every job acknowledged completes; each key has one job (a 503 "unreplicated" named the
      // job its resend was then answered for, unless the failover took that job: then a new one)
      const ids = submits.map((s) => s.id!);
      expect(new Set(ids).size).toBe(ids.length);
      const jobs = await waitTerminal(apis[0]!.url, bearer, ids, 90_000);
      expect(jobs.filter((j) => j.status !== "complete").map((j) => `${j.id} ${j.status}`)).toEqual([]);
      const unreplicated = refused.filter((a) => a.outcome === "unreplicated");
      let namedThenReplaced = 0;
      for (const s of submits) {
        for (const a of s.answers.filter((x) => x.outcome === "unreplicated")) {
          if (a.jobId !== s.id) namedThenReplaced++;
        }
      }
      const primaryClient = dep.client(await dep.primary());
      expect(await waitLeasesZero(primaryClient, h.prefix, 30_000)).toMatchObject({ total: 0 });

      log(
        `failover: kill -9 → promotion seen ${promotedAt - killAt} ms, deployment whole again ` +
          `${replicaAt - killAt} ms, first 202 again ${firstAck - killAt} ms (the gap); ` +
          `${submits.length} jobs submitted and completed, ${answers.length} requests: ` +
          `${refused.filter((a) => a.status === 503).length} × 503 (${unreplicated.length} unreplicated, ` +
          `${namedThenReplaced} of whose jobs the failover took), ${refused.filter((a) => a.status === 409).length} × 409; ` +
          `slowest answer ${slowest} ms` +
          (settledOn === promoted ? "" : `; the sentinels then failed over again, to :${settledOn.port}`),
      );

      // ---- everything stops cleanly
      for (const p of [...apis.map((a) => a.proc), ...workers, sim.proc]) {
        expect(await p.stop(20_000), p.describe()).toEqual({ code: 0, signal: null, forced: false });
      }
    } finally {
      loadOn = false;
      clearInterval(load);
      stopAt = 0;
      await Promise.all([...running]);
    }
  }, 180_000);
});
