// Redis time per call of the scheduler's scripts on a deep queue (INFO commandstats around each
// phase): REDIS_URL=redis://127.0.0.1:<port> [N=2000] npx tsx bench/tools/script-cost.ts
import { Redis } from "ioredis";
import { createScheduler, type Attempt, type BackendView } from "../../src/queues/scheduler.js";

const redis = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const N = Number(process.env.N ?? 2000);
await redis.flushall();
let now = 1_000_000;
const sched = createScheduler({
  redis,
  prefix: "{cost}",
  clock: () => now,
  leaseTtlMs: 30_000,
  maxAttempts: 5,
  retentionS: 3600,
  retentionCount: 100_000,
  // as the api role runs it: a global queued limit, the aging bound and the tier table's top weight
  queueMax: 1_000_000,
  agingBoundMs: 600_000,
  maxWeight: 16,
});
const backends: BackendView[] = [{ id: "gpu", cap: 16, engine: "nunchaku", models: ["*"], ok: true }];
const req = JSON.stringify({
  prompt: "a lighthouse at dawn, watercolor",
  width: 512,
  height: 512,
  steps: 4,
  cfg: 1,
  count: 1,
  lora: [],
  seed: 7,
});
const fields = {
  cust: "c",
  tier: "pro",
  prio: "normal",
  mod: "image",
  fam: "flux",
  mdl: "schnell",
  task: "t2i",
  fmt: "512",
  seed: "7",
  mode: "async",
};
const done = { output: "sha256-x", outputs: ["sha256-x"], ctype: "image/png", seed: 7, gpu_ms: 3 };

async function phase(name: string, fn: () => Promise<void>): Promise<void> {
  await redis.config("RESETSTAT");
  await fn();
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await redis.info("commandstats"));
  const calls = Number(m?.[1] ?? 0);
  console.log(
    `${name}: ${(Number(m?.[2] ?? 0) / Math.max(1, calls)).toFixed(1)} µs per call (${calls} calls)`,
  );
}
async function admitAll(tag: string): Promise<void> {
  for (let i = 0; i < N; i++) {
    await sched.admit({
      id: `j_${tag}${String(i).padStart(21, "0")}`,
      route: "flux/schnell",
      priority: "normal",
      fields,
      request: req,
      serviceMs: 1000,
      capacity: 16,
      costMs: 1000,
      fleetSlots: 16,
      // a pro tenant: weight, running-at-once and queued-at-once limits (the queued one above N)
      tenant: { weight: 4, maxRunning: 32, maxQueued: 1_000_000 },
    });
  }
}

await phase("admit", () => admitAll("a"));
const running: Attempt[] = await sched.dispatch(16, backends);
await phase("finish, starting the next in the same call", async () => {
  while (running.length > 0) {
    const a = running.shift()!;
    now += 1;
    running.push(
      ...(await sched.finish(a.id, a.token, a.backend, "complete", done, { slots: 1, backends })).next,
    );
  }
});
await admitAll("b");
const started: Attempt[] = [];
await phase("dispatch, one attempt per call", async () => {
  for (;;) {
    const got = await sched.dispatch(1, backends);
    if (got.length === 0) break;
    started.push(...got);
    if (started.length >= 16) break;
  }
});
await phase("finish alone", async () => {
  for (const a of started) await sched.finish(a.id, a.token, a.backend, "complete", done);
});
await phase("dispatch with nothing to start", async () => {
  for (let i = 0; i < 500; i++) await sched.dispatch(0, backends);
});
redis.disconnect();
