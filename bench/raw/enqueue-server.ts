// The raw bound of the enqueue bench: a bare Hono app on @hono/node-server that only parses the body,
// does `await queue.add(name, data, { priority })` (BullMQ) and answers 202 JSON. Run as a child:
// env REDIS_URL, RAW_PREFIX, URL_FILE (where it writes its URL once listening).
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Queue } from "bullmq";
import { Hono } from "hono";
import { Redis } from "ioredis";

const PRIORITY: Record<string, number> = { high: 1, normal: 2, low: 3 };

const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const queue = new Queue("raw-enqueue", { connection, prefix: process.env.RAW_PREFIX ?? "raw" });
const app = new Hono();

app.post("/queue", async (c) => {
  const data = await c.req.json<{ priority?: string }>();
  const job = await queue.add("render", data, { priority: PRIORITY[data.priority ?? "normal"] ?? 2 });
  return c.json({ id: job.id, status: "queued" }, 202);
});

const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => {
  writeFileSync(process.env.URL_FILE!, `http://127.0.0.1:${info.port}`);
});

const stop = () => {
  server.close();
  void queue.close().then(() => connection.quit().finally(() => process.exit(0)));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
