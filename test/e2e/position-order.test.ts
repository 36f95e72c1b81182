// Position is a promise about start order (API.md §3 Job): with the API up and no worker, 50 jobs of
// mixed priorities (and models) are queued; each 202 position and each later GET position is checked
// against the scheduler's documented order (one tenant, with an aging bound far beyond the span of 50
// jobs, so the priority offsets are never passed: priority classes, FIFO inside a class; the mixed
// tenants and weights of fair share are test/integration/fair-share.test.ts's). Then one
// worker process with one backend of capacity 1 runs them, and the i-th job to start is the job whose
// position was i.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eHarness, call, token, until, type Gateway } from "../helpers/processes.js";

const N = 50;
const CLASS = { high: 0, normal: 1, low: 2 } as const;
type Priority = keyof typeof CLASS;
const MODELS = [
  ["flux", "schnell"],
  ["sdxl", "lcm"],
  ["zimage", "turbo"],
] as const;

let h: E2eHarness;
let api: Gateway;
let bearer: string;

beforeAll(async () => {
  h = new E2eHarness();
  api = await h.start("api", { env: { AGING_BOUND_S: "86400" } });
  bearer = await token("order-check", { tier: "pro" });
});
afterAll(async () => {
  await h?.cleanup();
});

interface Submitted {
  readonly index: number;
  readonly priority: Priority;
  readonly id: string;
  readonly admitPosition: number;
}

/** A fixed, irregular mix: every priority and model appears, in no sorted order. */
function priorityOf(i: number): Priority {
  const pattern: Priority[] = ["normal", "low", "high", "normal", "high", "low", "low", "normal", "high"];
  return pattern[(i * 7 + Math.floor(i / 9)) % pattern.length]!;
}

describe("position equals start order", () => {
  it("for 50 mixed-priority jobs run by one worker on one backend of capacity 1", async () => {
    const jobs: Submitted[] = [];
    for (let i = 0; i < N; i++) {
      const priority = priorityOf(i);
      const [family, model] = MODELS[i % MODELS.length]!;
      const res = await call(api.url, "/queue", {
        method: "POST",
        token: bearer,
        body: { modality: "image", family, model, task: "t2i", format: "512", prompt: `job ${i}`, priority },
      });
      const body = (await res.json()) as { id: string; position: number; status: string };
      expect(res.status, JSON.stringify(body)).toBe(202);
      expect(body.status).toBe("queued");
      jobs.push({ index: i, priority, id: body.id, admitPosition: body.position });
    }
    expect(new Set(jobs.map((j) => j.priority))).toEqual(new Set(["high", "normal", "low"]));

    // At admission, the jobs ahead were the earlier ones of a higher or the same class.
    for (const j of jobs) {
      const ahead = jobs.filter((k) => k.index < j.index && CLASS[k.priority] <= CLASS[j.priority]).length;
      expect(j.admitPosition, `202 position of job ${j.index} (${j.priority})`).toBe(ahead);
    }
    expect(jobs.at(-1)!.admitPosition).toBe(
      jobs.filter((k) => k.index < N - 1 && CLASS[k.priority] <= CLASS[jobs.at(-1)!.priority]).length,
    );

    // Now: GET each position; they are a permutation of 0..N-1 in (class, submission) order.
    const expected = [...jobs].sort((a, b) => CLASS[a.priority] - CLASS[b.priority] || a.index - b.index);
    const positions = new Map<string, number>();
    for (const j of jobs) {
      const r = await call(api.url, `/jobs/${j.id}`, { token: bearer });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { status: string; position: number };
      expect(body.status).toBe("queued");
      positions.set(j.id, body.position);
    }
    expect(expected.map((j) => positions.get(j.id))).toEqual([...Array(N).keys()]);

    // One worker, one slot, one backend of capacity 1 (the simulator).
    const sim = await h.start("sim", { wait: "sim", env: { SIM_STEP_MS: "2" } });
    const backends = h.writeFile(
      "backends.json",
      JSON.stringify({
        backends: [
          { id: "only", url: sim.url, engine: "nunchaku", capacity: 1, models: ["*"], streaming: true },
        ],
      }),
    );
    await h.start("worker", { wait: "none", env: { BACKENDS_FILE: backends, WORKER_CONCURRENCY: "1" } });

    const done = await until(
      "all 50 jobs complete",
      async () => {
        const all: Record<string, unknown>[] = [];
        for (const j of jobs) {
          const r = await call(api.url, `/jobs/${j.id}?redirect=false`, { token: bearer });
          const body = (await r.json()) as Record<string, unknown>;
          if (body.status === "error" || body.status === "cancelled")
            throw new Error(`job ${j.id} ended ${JSON.stringify(body)}`);
          if (body.status !== "complete") return false;
          all.push(body);
        }
        return all;
      },
      90_000,
      500,
    );

    const byStart = done
      .map((b) => ({
        id: String(b.id),
        started: Date.parse(String(b.started_at)),
        completed: Date.parse(String(b.completed_at)),
        attempts: Number(b.attempts),
        backend: String(b.backend),
      }))
      .sort((a, b) => a.started - b.started);
    for (const s of byStart) {
      expect(s.attempts).toBe(1);
      expect(s.backend).toBe("only");
    }
    // Capacity 1: each job started after the previous one completed, so the start order is strict.
    for (let i = 1; i < byStart.length; i++) {
      expect(byStart[i]!.started).toBeGreaterThanOrEqual(byStart[i - 1]!.completed);
    }
    // position i ↔ i-th started
    expect(byStart.map((s) => positions.get(s.id))).toEqual([...Array(N).keys()]);
  });
});
