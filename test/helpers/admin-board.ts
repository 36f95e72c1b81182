// A system whose scheduler holds a bit of everything for the admin board's tests: finished jobs
// (two completed, one cancelled), three running attempts that never end (the simulator hangs every
// call once they started), a job held at its tenant's running limit, and queued jobs of three
// tenants of weights 3 and 1 at every priority. Every job carries a prompt, a negative prompt and a
// webhook URL that no board answer may show.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { fairTier } from "./fair-share.js";
import { FLUX_SCHNELL_512, queueJob, startSystem, waitFor, type TestSystem } from "./system.js";

export const SECRET_PROMPT = "SECRETPROMPT-lighthouse-7f3a";
export const SECRET_NEGATIVE = "SECRETNEGATIVE-blurry-91c2";
export const SECRET_HOOK = "https://hooks.example.com/SECRETHOOK-4d1e";

export interface BoardSystem {
  readonly sys: TestSystem;
  /** An admin JWT. */
  readonly admin: string;
  /** Queued jobs (not held), in submit order. */
  readonly queued: readonly string[];
  readonly running: readonly string[];
  readonly held: string;
  readonly completed: readonly string[];
  readonly cancelled: string;
  /** The job's document as GET /jobs/{id} answers an admin. */
  jobDoc(id: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** `queuedRounds` rounds of six queued jobs (default 2). */
export async function startBoardSystem(opts: { queuedRounds?: number } = {}): Promise<BoardSystem> {
  const dir = mkdtempSync(join(tmpdir(), "rg-board-"));
  const tiersFile = join(dir, "tiers.json");
  writeFileSync(
    tiersFile,
    JSON.stringify({
      free: fairTier(),
      pro: fairTier(),
      heavy: fairTier({ weight: 3 }),
      light: fairTier({ weight: 1 }),
      capped: fairTier({ max_running: 1 }),
    }),
  );
  const sys = await startSystem({
    env: { TIERS_FILE: tiersFile, SHUTDOWN_GRACE_MS: "500" },
    backends: (simUrl) => [
      {
        id: "gpu-a",
        url: simUrl,
        protocol: "kserve-v2",
        engine: "nunchaku",
        capacity: 3,
        models: ["flux/schnell"],
        streaming: false,
        timeout_ms: 120_000,
        timeouts: {},
      },
    ],
  });
  const close = async () => {
    await sys.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const admin = await sys.token("ops", { admin: true });
    const jobDoc = async (id: string) => {
      const res = await sys.call(`/jobs/${id}?redirect=false`, { token: admin });
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    };
    const submit = async (customer: string, tier: string, priority: string, n: number) =>
      queueJob(sys, await sys.token(customer, { tier }), {
        ...FLUX_SCHNELL_512,
        priority,
        prompt: `${SECRET_PROMPT} ${n}`,
        negative_prompt: SECRET_NEGATIVE,
        webhook: SECRET_HOOK,
      });

    const completed = [
      await submit("alice", "light", "normal", 100),
      await submit("alice", "light", "normal", 101),
    ];
    for (const id of completed) await waitFor(async () => (await jobDoc(id)).status === "complete");
    // from now on every call hangs: the slots fill up and stay full
    sys.sim.setConfig({ hangRate: 1 });
    const running = [await submit("carol", "capped", "normal", 200)];
    await waitFor(async () => (await jobDoc(running[0]!)).status === "running");
    const held = await submit("carol", "capped", "high", 201);
    await waitFor(async () => (await jobDoc(held)).held === "concurrency_limit");
    running.push(await submit("dave", "light", "normal", 300), await submit("dave", "light", "normal", 301));
    for (const id of running) await waitFor(async () => (await jobDoc(id)).status === "running");
    const plan: [string, string, string][] = [
      ["erin", "heavy", "low"],
      ["erin", "heavy", "normal"],
      ["frank", "light", "high"],
      ["erin", "heavy", "high"],
      ["gina", "light", "normal"],
      ["frank", "light", "low"],
    ];
    const queued: string[] = [];
    for (let round = 0; round < (opts.queuedRounds ?? 2); round++) {
      for (const [i, [customer, tier, priority]] of plan.entries()) {
        queued.push(await submit(customer, tier, priority, 400 + round * 10 + i));
      }
    }
    const cancelled = await submit("gina", "light", "normal", 500);
    expect((await sys.call(`/jobs/${cancelled}`, { method: "DELETE", token: admin })).status).toBe(204);
    return { sys, admin, queued, running, held, completed, cancelled, jobDoc, close };
  } catch (err) {
    await close();
    throw err;
  }
}
