// Redis CPU per admit.lua call of two checkouts, interleaved in blocks on one redis-server so that
// machine noise falls on both alike (INFO commandstats per block):
//   REDIS_URL=redis://127.0.0.1:<port> npx tsx bench/tools/admit-ab.ts <other checkout> [blocks] [per block]
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import type { createScheduler as Create } from "../../src/queues/scheduler.js";

const [otherRoot, blocksArg, perArg] = process.argv.slice(2);
if (!otherRoot) throw new Error("usage: admit-ab.ts <other checkout> [blocks] [per block]");
const BLOCKS = Number(blocksArg ?? 20);
const PER = Number(perArg ?? 500);
const here = resolve(import.meta.dirname, "../..");
const load = async (root: string) =>
  (await import(pathToFileURL(join(root, "src/queues/scheduler.ts")).href)) as {
    createScheduler: typeof Create;
  };

const url = process.env.REDIS_URL!;
const admin = new Redis(url);
await admin.flushall();
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
  work: "1",
};
const req = JSON.stringify({
  prompt: "a lighthouse at dawn, watercolor",
  width: 512,
  height: 512,
  steps: 4,
  seed: 7,
});
const sides = await Promise.all(
  [
    ["this", here],
    ["other", resolve(otherRoot)],
  ].map(async ([name, root]) => {
    const { createScheduler } = await load(root!);
    const redis = new Redis(url, { maxRetriesPerRequest: null });
    const sched = createScheduler({
      redis,
      prefix: `{ab-${name}}`,
      clock: Date.now,
      leaseTtlMs: 30_000,
      maxAttempts: 5,
      retentionS: 3600,
      retentionCount: 100_000,
      queueMax: 1_000_000,
      agingBoundMs: 600_000,
      maxWeight: 16,
    });
    return { name: name!, redis, sched, usec: 0, calls: 0, n: 0 };
  }),
);
const stat = async () => {
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await admin.info("commandstats"));
  return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0) };
};
for (let b = 0; b < BLOCKS; b++) {
  for (const s of b % 2 === 0 ? sides : [...sides].reverse()) {
    await admin.config("RESETSTAT");
    const batch: Promise<unknown>[] = [];
    for (let i = 0; i < PER; i++) {
      s.n += 1;
      batch.push(
        s.sched.admit({
          id: `j_${String(s.n).padStart(24, "0")}`,
          route: "flux/schnell",
          priority: "normal",
          fields: { ...fields, cust: `c${s.n % 50}` },
          request: req,
          serviceMs: 1000,
          capacity: 16,
          costMs: 1000,
          fleetSlots: 16,
          tenant: { weight: 4, maxRunning: 32, maxQueued: 1_000_000 },
        }),
      );
      if (batch.length >= 32) await Promise.all(batch.splice(0));
    }
    await Promise.all(batch);
    const st = await stat();
    s.usec += st.usec;
    s.calls += st.calls;
  }
}
for (const s of sides)
  console.log(`${s.name}: ${(s.usec / s.calls).toFixed(2)} µs per admit (${s.calls} calls)`);
console.log(
  `this/other: ${(sides[0]!.usec / sides[0]!.calls / (sides[1]!.usec / sides[1]!.calls)).toFixed(3)}`,
);
await admin.flushall();
for (const s of sides) s.redis.disconnect();
admin.disconnect();
