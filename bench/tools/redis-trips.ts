// Counts Redis round trips per job with MONITOR (a diagnostic, not a benchmark: MONITOR slows Redis):
// top-level commands per submitted job (API role) and per processed job (worker role), by connection
// name and command, next to the raw bound (a BullMQ add, a BullMQ worker forwarding with undici).
// Commands Lua scripts run inside Redis are counted apart ("inside scripts").
//   npx tsx bench/tools/redis-trips.ts [--jobs 50]
import { join } from "node:path";
import { Redis } from "ioredis";
import { Pool } from "undici";
import { TYPICAL_BODY, createAdmitter, workerBody } from "../lib/admit.js";
import {
  mintToken,
  startApi,
  startSim,
  startWorker,
  writeBackendsFile,
  writeBenchTiers,
} from "../lib/gateway.js";
import { isMain, options, standalone, type BenchDef } from "../lib/harness.js";
import { sleep, waitUntil } from "../lib/proc.js";
import { createRawWorkerBound } from "../lib/raw.js";
import { fmt, table } from "../lib/report.js";

const PREFIX = "{bench}";

type Tally = Map<string, number>;

/** A MONITOR session attributing each command to its connection's name (CLIENT LIST). */
async function monitorSession(url: string, redis: Redis) {
  const names = new Map<string, string>();
  const refreshNames = async () => {
    const list = (await redis.client("LIST")) as string;
    for (const line of list.split("\n")) {
      const addr = /addr=(\S+)/.exec(line)?.[1];
      const name = /name=(\S*)/.exec(line)?.[1];
      if (addr) names.set(addr, name || "(unnamed)");
    }
  };
  const conn = new Redis(url);
  const monitor = await conn.monitor();
  let tally: Tally = new Map();
  let recording = false;
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    if (!recording) return;
    const cmd = (args[0] ?? "?").toLowerCase();
    const key = `${source}\t${cmd}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
  });
  return {
    refreshNames,
    /** Runs `fn` while recording; sources are named from CLIENT LIST, refreshed while it runs. */
    async record<T>(fn: () => Promise<T>): Promise<Tally> {
      await refreshNames();
      tally = new Map();
      recording = true;
      const timer = setInterval(() => void refreshNames(), 100);
      try {
        await fn();
        await sleep(100);
      } finally {
        recording = false;
        clearInterval(timer);
      }
      const named: Tally = new Map();
      for (const [k, n] of tally) {
        const [source, cmd] = k.split("\t");
        const who = source === "lua" ? "inside scripts" : (names.get(source!) ?? source!);
        if (who === "bench") continue;
        named.set(`${who}\t${cmd}`, (named.get(`${who}\t${cmd}`) ?? 0) + n);
      }
      return named;
    },
    close: () => monitor.disconnect(),
  };
}

function print(title: string, tally: Tally, jobs: number): Record<string, number> {
  const rows = [...tally.entries()].sort((a, b) => b[1] - a[1]);
  const byConn = new Map<string, number>();
  for (const [k, n] of rows) {
    const [who] = k.split("\t");
    byConn.set(who!, (byConn.get(who!) ?? 0) + n);
  }
  const trips = [...byConn.entries()].filter(([w]) => w !== "inside scripts").reduce((s, [, n]) => s + n, 0);
  console.log(`\n${title}: ${fmt(trips / jobs, 1)} top-level commands per job`);
  console.log(
    [...byConn.entries()]
      .map(([w, n]) => `${w === "inside scripts" ? "(run inside scripts)" : w}: ${fmt(n / jobs, 2)}`)
      .join(" · "),
  );
  console.log(
    table(
      ["connection", "command", "per job"],
      rows.map(([k, n]) => [...k.split("\t"), fmt(n / jobs, 2)] as [string, string, string]),
    ),
  );
  return Object.fromEntries(rows.map(([k, n]) => [k.replace("\t", " "), Math.round((n / jobs) * 100) / 100]));
}

const redisTrips: BenchDef = {
  name: "redis-trips",
  title: "Redis round trips per job (MONITOR)",
  async run(ctx) {
    const { jobs } = options({ jobs: 50 });
    const redis = ctx.redis.client;
    await redis.client("SETNAME", "bench");
    const mon = await monitorSession(ctx.redis.url, redis);
    const sim = await startSim({
      name: "sim",
      stepMs: 0,
      capacity: 64,
      dataDir: join(ctx.dir, "sim"),
      logDir: ctx.logDir,
    });
    const backendsFile = writeBackendsFile(ctx.dir, [{ id: "sim", url: sim.url, capacity: 16 }]);
    const api = await startApi({
      redisUrl: ctx.redis.url,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "api"),
      logDir: ctx.logDir,
      extra: { TIERS_FILE: writeBenchTiers(ctx.dir), BACKENDS_FILE: backendsFile },
    });
    const token = await mintToken("bench-trips");
    const pool = new Pool(api.url, { connections: 1 });
    const submit = async (body: unknown) => {
      const res = await pool.request({
        method: "POST",
        path: "/queue",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
      await res.body.text();
      if (res.statusCode !== 202) throw new Error(`POST /queue answered ${res.statusCode}`);
    };
    await submit(TYPICAL_BODY); // warm: scripts loaded, caches filled
    const results: Record<string, Record<string, number>> = {};

    // 1. Submit path: POST /queue one at a time, no workers.
    const submitTally = await mon.record(async () => {
      for (let i = 0; i < jobs; i++) await submit(TYPICAL_BODY);
    });
    results.submit = print("ours: POST /queue (api role)", submitTally, jobs);

    // 2. Raw submit: a BullMQ prioritized add.
    const admitConn = new Redis(ctx.redis.url, { maxRetriesPerRequest: null, connectionName: "bench-admit" });
    const admitter = createAdmitter({
      redis: admitConn,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "admit"),
      body: workerBody(),
      customerId: "bench-trips",
    });
    const raw = createRawWorkerBound({
      redisUrl: ctx.redis.url,
      redis,
      simUrl: sim.url,
      concurrency: 16,
      admitter,
      logDir: ctx.logDir,
    });
    await raw.queue.add("render", { warm: true }, { priority: 2 });
    const rawAddTally = await mon.record(async () => {
      for (let i = 0; i < jobs; i++) await raw.queue.add("render", TYPICAL_BODY, { priority: 2 });
    });
    results.rawSubmit = print("raw: BullMQ queue.add with priority", rawAddTally, jobs);

    // 3. Worker path: our worker running, idle; then `jobs` jobs admitted and processed.
    await redis.flushall();
    const worker = await startWorker({
      redisUrl: ctx.redis.url,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "worker"),
      logDir: ctx.logDir,
      redis,
      extra: { BACKENDS_FILE: backendsFile, WORKER_CONCURRENCY: "16", HEALTH_INTERVAL_MS: "500" },
    });
    await sleep(1500);
    const idleTally = await mon.record(() => sleep(2000));
    const idlePerS = [...idleTally.values()].reduce((a, b) => a + b, 0) / 2;
    console.log(
      `\nours: idle worker: ${fmt(idlePerS, 1)} commands/s (timers: renewal, reaping, dispatch tick, health publication)`,
    );
    results.idlePerSecond = Object.fromEntries(
      [...idleTally.entries()].map(([k, n]) => [k.replace("\t", " "), n / 2]),
    );
    const workTally = await mon.record(async () => {
      await admitter.admit(jobs, 1);
      await waitUntil("jobs done", async () => (await redis.zcard(`${PREFIX}:done`)) >= jobs, 30_000, 10, [
        worker,
      ]);
    });
    results.worker = print("ours: admit + worker (dispatch, attempt job, infer, finish)", workTally, jobs);
    await worker.stop();

    // 4. Raw worker: addBulk, then a bare BullMQ worker forwarding with undici.
    await redis.flushall();
    const rawWorkTally = await mon.record(async () => {
      await raw.fill(jobs, "0");
      const { child } = await raw.run("raw-worker", jobs);
      await child.stop();
    });
    results.rawWorker = print("raw: addBulk + BullMQ worker (incl. its start-up)", rawWorkTally, jobs);

    await raw.close();
    admitConn.disconnect();
    await pool.close();
    mon.close();
    return {
      params: { jobs },
      rounds: [results],
      figures: [],
      valid: true,
      problems: [],
      notes: ["MONITOR slows Redis: this tool counts commands, it does not time anything"],
    };
  },
};

if (isMain(import.meta.url)) standalone(redisTrips);
