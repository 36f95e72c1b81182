// Helpers of the e2e tests of sync attempts run in their worker process without BullMQ
// (docs/decisions.md "Sync attempts skip BullMQ"): one simulator per worker process, so that a
// simulator's counters (`active`, `peak_active`, `aborted`) are those of one process; the sync
// call in flight; where an attempt went.
import { ATTEMPT_ID_SEPARATOR } from "../../src/core/attempt-id.js";
import { createKeys } from "../../src/queues/keys.js";
import { call, simStats, until, type CliProcess, type E2eHarness, type Gateway } from "./processes.js";

/** A worker process and the simulator only it calls (its BACKENDS_FILE names backend `gpu-a` there). */
export interface OwnGpuWorker {
  readonly name: string;
  readonly sim: Gateway;
  proc: CliProcess;
  /** Starts the worker process (again, after a kill or a stop) with the same environment. */
  restart(env?: Readonly<Record<string, string>>): Promise<CliProcess>;
}

/**
 * A simulator and a `start --roles worker` process whose only backend, `gpu-a` (the same id in every
 * such worker, so the scheduler sees one backend of `capacity` slots), is that simulator.
 */
export async function ownGpuWorker(
  h: E2eHarness,
  name: string,
  o: { capacity: number; stepMs: number; env: Readonly<Record<string, string>> },
): Promise<OwnGpuWorker> {
  const sim = await h.simBackend({
    name: `sim of ${name}`,
    env: { SIM_STEP_MS: String(o.stepMs), SIM_CAPACITY: "16" },
  });
  const backendsFile = h.backendsFile([
    { id: "gpu-a", url: sim.url, capacity: o.capacity, streaming: false },
  ]);
  const w: OwnGpuWorker = {
    name,
    sim,
    proc: undefined as unknown as CliProcess,
    async restart(env = {}) {
      w.proc = await h.startWorker("gpu-a", { name, env: { ...o.env, ...env, BACKENDS_FILE: backendsFile } });
      return w.proc;
    },
  };
  await w.restart();
  return w;
}

/** The worker whose simulator has a call in flight, once exactly one of them has (and one call). */
export async function runningOn(workers: readonly OwnGpuWorker[], timeoutMs = 30_000): Promise<OwnGpuWorker> {
  return until(
    "one call in flight, at one worker's simulator",
    async () => {
      const active = await Promise.all(workers.map(async (w) => (await simStats(w.sim.url)).active));
      const busy = workers.filter((_, i) => active[i]! > 0);
      return busy.length === 1 && active.reduce((a, b) => a + b, 0) === 1 ? busy[0] : undefined;
    },
    timeoutMs,
    20,
  );
}

/** A sync call (`POST /image/flux/schnell/t2i`) in flight; `abort()` disconnects the client. */
export interface SyncCall {
  readonly answer: Promise<{ status: number; headers: Headers; bytes: Buffer; ms: number }>;
  abort(): void;
}

export function syncCall(
  base: string,
  bearer: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): SyncCall {
  const controller = new AbortController();
  const t0 = Date.now();
  const answer = call(base, "/image/flux/schnell/t2i", {
    method: "POST",
    token: bearer,
    body,
    headers,
    signal: controller.signal,
  }).then(async (res) => ({
    status: res.status,
    headers: res.headers,
    bytes: Buffer.from(await res.arrayBuffer()),
    ms: Date.now() - t0,
  }));
  // A test that fails before it reads the answer leaves no unhandled rejection behind.
  answer.catch(() => undefined);
  return { answer, abort: () => controller.abort() };
}

/** The jobs holding a slot lease of `backend` now (from the lease members, `<job id>|<token>`). */
export async function leasedJobs(h: E2eHarness, backend = "gpu-a"): Promise<string[]> {
  const members = await h.redis().zrange(createKeys(h.prefix).lease(backend), "0", "-1");
  return members.map((m) => m.slice(0, m.lastIndexOf(ATTEMPT_ID_SEPARATOR)));
}

/**
 * The jobs whose attempts the worker process `proc` ran in its process without BullMQ, in order,
 * from its debug log (the worker must run with LOG_LEVEL=debug).
 */
export function directRuns(proc: CliProcess): string[] {
  const ids: string[] = [];
  for (const line of proc.stdout.split("\n")) {
    if (!line.includes(DIRECT_RUN_MESSAGE)) continue;
    const entry = JSON.parse(line) as { msg?: string; job?: string };
    if (entry.msg === DIRECT_RUN_MESSAGE && entry.job !== undefined) ids.push(entry.job);
  }
  return ids;
}

/** What the attempt runner logs (debug) when it runs a sync attempt in its process (attempt-runner.ts). */
const DIRECT_RUN_MESSAGE = "sync attempt runs in this process, without BullMQ";
