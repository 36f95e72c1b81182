// Bench — sync latency: what the gateway adds to one synchronous generation over calling the backend
// directly. One process runs the api and worker roles (as `npm start` does) against a simulated
// backend at SIM_STEP_MS=0 (a streaming entry, as the embedded one is); requests go one at a time.
// For each sample (seed s): the backend is called directly twice with the request the worker sends
// for seed s (the first renders it into the simulator's media cache, the second is measured), then
// the gateway is called with seed s (measured). Both measured calls find the media cached, so the
// difference is the gateway's own work: auth, admission, dispatch, the BullMQ hand-over, the call, the
// output's durable write (new to the gateway's store), settle, the event, the read and the answer.
// Per-hop medians from the jobs' own timestamps say where the time goes.
//   npx tsx bench/sync-latency.ts [--samples 300] [--warm-up 30]
import { join } from "node:path";
import { Pool } from "undici";
import { kserveModelName } from "../src/core/model-route.js";
import { createKeys } from "../src/queues/keys.js";
import { mintToken, startApi, startSim, writeBackendsFile, writeBenchTiers } from "./lib/gateway.js";
import { isMain, options, standalone, type BenchDef } from "./lib/harness.js";
import { waitUntil } from "./lib/proc.js";
import { fmt, median, percentile, printTable } from "./lib/report.js";

const PREFIX = "{sync}";
const PROMPT = "a lighthouse on a cliff at dusk";
const SIZE = 512;
const STEPS = 4;

/** The infer request the worker builds for the gateway call below (the fields of the sim's media key). */
function directRequest(seed: number, id: string) {
  return {
    id,
    parameters: { modality: "image", task: "t2i", seed, steps: STEPS, width: SIZE, height: SIZE },
    inputs: [{ name: "prompt", datatype: "BYTES", shape: [1], data: [PROMPT] }],
  };
}

async function timed(
  pool: Pool,
  req: Parameters<Pool["request"]>[0],
): Promise<{ ms: number; status: number; jobId?: string }> {
  const t0 = performance.now();
  const res = await pool.request(req);
  await res.body.arrayBuffer();
  const ms = performance.now() - t0;
  const jobId = res.headers["x-job-id"];
  return { ms, status: res.statusCode, ...(typeof jobId === "string" ? { jobId } : {}) };
}

export const syncLatencyBench: BenchDef = {
  name: "sync-latency",
  title: "Bench — sync latency (POST /image/flux/schnell/t2i one at a time, sim at SIM_STEP_MS=0)",
  async run(ctx) {
    const o = options({ samples: 300, warmUp: 30 });
    const sim = await startSim({
      name: "sim",
      stepMs: 0,
      capacity: 16,
      dataDir: join(ctx.dir, "sim"),
      logDir: ctx.logDir,
    });
    const backends = writeBackendsFile(ctx.dir, [
      { id: "gpu-a", url: sim.url, capacity: 16, models: ["*"], streaming: true },
    ]);
    const api = await startApi({
      name: "gateway",
      roles: "api,worker",
      redisUrl: ctx.redis.url,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "gateway"),
      logDir: ctx.logDir,
      extra: { BACKENDS_FILE: backends, TIERS_FILE: writeBenchTiers(ctx.dir), WORKER_CONCURRENCY: "4" },
    });
    await waitUntil(
      "worker start",
      async () => (await ctx.redis.client.hlen(createKeys(PREFIX).registry)) > 0,
      30_000,
      20,
      [api.child],
    );
    const token = await mintToken("sync-bench", "pro");
    const gw = new Pool(api.url, { connections: 1 });
    const direct = new Pool(sim.url, { connections: 1 });
    const model = kserveModelName("flux", "schnell");
    const directCall = (seed: number, id: string) =>
      timed(direct, {
        path: `/v2/models/${model}/infer`,
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": id },
        body: JSON.stringify(directRequest(seed, id)),
      });
    const gatewayCall = (seed: number) =>
      timed(gw, {
        path: `/image/flux/schnell/t2i?format=${SIZE}`,
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ prompt: PROMPT, steps: STEPS, seed }),
      });

    const directMs: number[] = [];
    const gatewayMs: number[] = [];
    const jobIds: string[] = [];
    const problems: string[] = [];
    ctx.log(`${o.warmUp} warm-up and ${o.samples} measured samples`);
    for (let i = 0; i < o.warmUp + o.samples; i++) {
      const seed = 1_000 + i;
      await directCall(seed, `warm-${i}`);
      const d = await directCall(seed, `direct-${i}`);
      const g = await gatewayCall(seed);
      if (d.status !== 200 || g.status !== 200) {
        problems.push(`sample ${i}: direct ${d.status}, gateway ${g.status}`);
        if (problems.length > 5) break;
        continue;
      }
      if (i < o.warmUp) continue;
      directMs.push(d.ms);
      gatewayMs.push(g.ms);
      if (g.jobId) jobIds.push(g.jobId);
    }

    // Where the time goes, from the jobs' records: admission → start, start → settle, and the rest.
    const hops = {
      queued: [] as number[],
      running: [] as number[],
      backend: [] as number[],
      outside: [] as number[],
    };
    for (const [k, id] of jobIds.entries()) {
      const res = await gw.request({
        method: "GET",
        path: `/jobs/${id}`,
        headers: { authorization: `Bearer ${token}` },
      });
      // A finished job answers 303 (its output) with the job as the body.
      if (res.statusCode !== 200 && res.statusCode !== 303)
        throw new Error(`GET /jobs/${id}: ${res.statusCode} ${await res.body.text()}`);
      const j = (await res.body.json()) as {
        created_at: string;
        started_at: string;
        completed_at: string;
        gpu_ms: number;
      };
      const created = Date.parse(j.created_at);
      const started = Date.parse(j.started_at);
      const completed = Date.parse(j.completed_at);
      hops.queued.push(started - created);
      hops.running.push(completed - started);
      hops.backend.push(directMs[k]!);
      hops.outside.push(gatewayMs[k]! - (completed - created));
    }
    await gw.close();
    await direct.close();

    const p50 = { direct: median(directMs), gateway: median(gatewayMs) };
    const p99 = { direct: percentile(directMs, 99), gateway: percentile(gatewayMs, 99) };
    const added50 = p50.gateway - p50.direct;
    const added99 = p99.gateway - p99.direct;
    ctx.log("where a sync call's time goes (medians, ms; job timestamps have 1 ms resolution)");
    printTable(
      ["part", "ms"],
      [
        ["admitted → started (queue, dispatch)", fmt(median(hops.queued), 1)],
        ["started → settled (hand-over, backend call, output write, settle)", fmt(median(hops.running), 1)],
        ["  of which the backend called directly", fmt(median(hops.backend), 2)],
        [
          "before admission and after settling (auth, limits, event, read, answer)",
          fmt(median(hops.outside), 1),
        ],
      ],
    );
    return {
      params: { ...o, size: SIZE, steps: STEPS, simStepMs: 0, streamingBackend: true, roles: "api,worker" },
      rounds: [
        { directP50: p50.direct, gatewayP50: p50.gateway, directP99: p99.direct, gatewayP99: p99.gateway },
      ],
      figures: [
        {
          what: "sync latency added by the gateway, p50",
          unit: "ms",
          ours: p50.gateway,
          bound: p50.direct,
          ratioOf: "ours-raw",
          ratio: added50,
          target: { op: "<=", value: 5 },
          met: added50 <= 5,
        },
        {
          what: "sync latency added by the gateway, p99",
          unit: "ms",
          ours: p99.gateway,
          bound: p99.direct,
          ratioOf: "ours-raw",
          ratio: added99,
        },
      ],
      problems,
      notes: [
        "raw: the simulated backend's /infer called directly with the request the worker sends (media cached, as for the gateway call)",
        "ours: POST /image/flux/schnell/t2i?format=512 through `start --roles api,worker` (streaming backend entry; a sync job asks for no previews)",
        `samples: ${directMs.length} of each, one request at a time, interleaved`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(syncLatencyBench);
