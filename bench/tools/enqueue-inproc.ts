// In-process comparison of the submit route (ours vs the raw bound), CPU µs per request, without
// HTTP or a load generator: REDIS_URL=redis://127.0.0.1:<port> npx tsx bench/tools/enqueue-inproc.ts
import { Hono } from "hono";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// In-process comparison of the submit route (ours vs the raw bound) in CPU µs per request.
import { loadSettings, loadKeys } from "../../src/main/settings.js";
import { createRuntime } from "../../src/main/runtime.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { signToken } from "../../src/api/auth.js";
import { startApiRole } from "../../src/main/api-role.js";
import { systemClock } from "../../src/core/time.js";

const url = process.env.REDIS_URL!;
const dataDir = mkdtempSync(join(tmpdir(), "inproc-"));
const settings = loadSettings({
  REDIS_URL: url,
  DATA_DIR: dataDir,
  PORT: "0",
  LOG_LEVEL: "silent",
  JWT_SECRET: "x".repeat(40),
  REDIS_PREFIX: "{ip}",
});
const runtime = createRuntime(pino({ level: "silent" }));
const keys = await loadKeys(settings);
const api = await startApiRole({
  settings,
  keys,
  redisUrl: url,
  runtime,
  logger: pino({ level: "silent" }),
  clock: systemClock,
  blobs: createFsBlobStore({ root: join(dataDir, "cas") }),
});
const token = await signToken({
  secret: keys.jwt,
  customerId: "b",
  tier: "pro",
  ttlS: 3600,
  clock: systemClock,
});
const body = JSON.stringify({
  modality: "image",
  family: "flux",
  model: "schnell",
  task: "t2i",
  prompt: "a lighthouse at dawn, watercolor, soft light over a calm sea",
  priority: "normal",
});
const conn = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue("raw", { connection: conn, prefix: "rawip" });
const raw = new Hono();
raw.post("/queue", async (c) => {
  const data = await c.req.json<{ priority?: string }>();
  const job = await queue.add("render", data, { priority: 2 });
  return c.json({ id: job.id, status: "queued" }, 202);
});
const headers = {
  authorization: `Bearer ${token}`,
  "content-type": "application/json",
  "content-length": String(Buffer.byteLength(body)),
};
async function run(_name: string, n: number, conc: number, send: () => Promise<Response> | Response) {
  let done = 0;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (done < n) {
        done++;
        const r = await send();
        if (r.status !== 202) throw new Error(String(r.status) + (await r.text()));
      }
    }),
  );
  const cpu = process.cpuUsage(c0);
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  return [(n / wall) * 1000, (cpu.user + cpu.system) / n];
}
const res: Record<string, number[]> = { ours: [], raw: [] };
for (let i = 0; i < 6; i++) {
  const [, o] = await run("ours", 6000, 32, () =>
    api.fetch(new Request("http://x/queue", { method: "POST", headers, body })),
  );
  const [, r] = await run("raw", 6000, 32, () =>
    raw.fetch(new Request("http://x/queue", { method: "POST", headers, body })),
  );
  if (i >= 2) {
    res.ours!.push(o!);
    res.raw!.push(r!);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(
  `cpu µs/req: ours ${med(res.ours!).toFixed(1)} raw ${med(res.raw!).toFixed(1)} ratio raw/ours ${(med(res.raw!) / med(res.ours!)).toFixed(2)}`,
);
await queue.close();
conn.disconnect();
await runtime.shutdown("done");
