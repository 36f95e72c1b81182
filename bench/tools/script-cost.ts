// Redis time per call of each scheduler script on a deep queue (INFO commandstats around each phase):
//   REDIS_URL=redis://127.0.0.1:<port> npx tsx bench/tools/script-cost.ts
import { Redis } from "ioredis";
import { createScheduler, type BackendView } from "../../src/queues/scheduler.js";

const redis = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const N = Number(process.env.N ?? 2000);
const prefix = "{cost}";
await redis.flushall();
let now = 1_000_000;
const sched = createScheduler({
  redis,
  prefix,
  clock: () => now,
  leaseTtlMs: 30_000,
  maxAttempts: 5,
  retentionS: 3600,
  retentionCount: 100_000,
});
const backends: BackendView[] = [{ id: "gpu", cap: 16, engine: "nunchaku", models: ["*"], ok: true }];
const evalUsec = async () => {
  const info = await redis.info("commandstats");
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(info);
  return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0) };
};
async function phase(name: string, fn: () => Promise<void>) {
  await redis.config("RESETSTAT");
  await fn();
  const s = await evalUsec();
  console.log(`${name}: ${(s.usec / s.calls).toFixed(1)} µs per call (${s.calls} calls)`);
}
const req = JSON.stringify({
  prompt: "a lighthouse at dawn, watercolor, soft light over a calm sea",
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
await phase("admit", async () => {
  for (let i = 0; i < N; i++) {
    await sched.admit({
      id: `j_${String(i).padStart(22, "0")}`,
      route: "flux/schnell",
      priority: "normal",
      fields,
      request: req,
      serviceMs: 1000,
      capacity: 16,
    });
  }
});
const running = await sched.dispatch(16, backends);
await phase("finish + start next", async () => {
  while (running.length > 0) {
    const a = running.shift()!;
    now += 1;
    const r = await sched.finish(
      a.id,
      a.token,
      a.backend,
      "complete",
      { output: "sha256-x", outputs: ["sha256-x"], ctype: "image/png", seed: 7, gpu_ms: 3 },
      { slots: 1, backends },
    );
    running.push(...r.next);
  }
});
await phase("dispatch (nothing queued)", async () => {
  for (let i = 0; i < 500; i++) await sched.dispatch(16, backends);
});
redis.disconnect();
