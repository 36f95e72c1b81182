// In-process comparison of the submit route, ours vs the raw bound (raw/enqueue-app.ts), in CPU µs
// per request, without HTTP or a load generator: both apps' `fetch`, 32 requests in flight.
//   REDIS_URL=redis://127.0.0.1:<port> npx tsx bench/tools/enqueue-inproc.ts   (a scratch redis-server)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { signToken } from "../../src/api/auth.js";
import { systemClock } from "../../src/core/time.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createRedisConnector } from "../../src/infra/redis-connector.js";
import { startApiRole } from "../../src/main/api-role.js";
import { processMetricsFor } from "../../src/main/metrics.js";
import { createRuntime } from "../../src/main/runtime.js";
import { loadKeys, loadSettings } from "../../src/main/settings.js";
import { TYPICAL_BODY } from "../lib/admit.js";
import { JWT_SECRET, writeBenchTiers } from "../lib/gateway.js";
import { median } from "../lib/report.js";
import { rawEnqueueApp } from "../raw/enqueue-app.js";

const url = process.env.REDIS_URL!;
const dataDir = mkdtempSync(join(tmpdir(), "inproc-"));
const settings = loadSettings({
  REDIS_URL: url,
  DATA_DIR: dataDir,
  PORT: "0",
  LOG_LEVEL: "silent",
  JWT_SECRET,
  REDIS_PREFIX: "{ip}",
  // pro lifted to bench volumes: the submit limiter runs on every request and refuses none.
  TIERS_FILE: writeBenchTiers(dataDir),
});
const runtime = createRuntime(pino({ level: "silent" }));
const keys = await loadKeys(settings);
const api = await startApiRole({
  settings,
  keys,
  redisConnector: createRedisConnector({ kind: "url", url }, {}),
  runtime,
  logger: pino({ level: "silent" }),
  clock: systemClock,
  blobs: createFsBlobStore({ root: join(dataDir, "cas") }),
  metrics: processMetricsFor(["api"]),
});
const token = await signToken({
  secret: keys.jwt!,
  customerId: "b",
  tier: "pro",
  ttlS: 3600,
  clock: systemClock,
});
const body = JSON.stringify(TYPICAL_BODY);
const conn = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue("raw", { connection: conn, prefix: "rawip" });
const raw = rawEnqueueApp(queue);
const headers = {
  authorization: `Bearer ${token}`,
  "content-type": "application/json",
  "content-length": String(Buffer.byteLength(body)),
};

/** CPU µs per request of `n` requests, `conc` in flight. */
async function cpuPerRequest(n: number, conc: number, fetch: (r: Request) => Promise<Response> | Response) {
  let sent = 0;
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (sent < n) {
        sent++;
        const r = await fetch(new Request("http://x/queue", { method: "POST", headers, body }));
        if (r.status !== 202) throw new Error(`${r.status} ${await r.text()}`);
      }
    }),
  );
  const cpu = process.cpuUsage(c0);
  return (cpu.user + cpu.system) / n;
}

const ours: number[] = [];
const bound: number[] = [];
for (let i = 0; i < 6; i++) {
  const o = await cpuPerRequest(6000, 32, (r) => api.fetch(r));
  const b = await cpuPerRequest(6000, 32, (r) => raw.fetch(r));
  // The first two rounds warm up (JIT, caches).
  if (i >= 2) {
    ours.push(o);
    bound.push(b);
  }
}
console.log(
  `cpu µs/req: ours ${median(ours).toFixed(1)} raw ${median(bound).toFixed(1)} ratio raw/ours ${(median(bound) / median(ours)).toFixed(2)}`,
);
await queue.close();
conn.disconnect();
await runtime.shutdown("done");
rmSync(dataDir, { recursive: true, force: true });
