// The raw bound of the enqueue bench (raw/enqueue-app.ts) served by @hono/node-server. Run as a
// child: env REDIS_URL, RAW_PREFIX, URL_FILE (where it writes its URL once listening).
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { rawEnqueueApp } from "./enqueue-app.js";

const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const queue = new Queue("raw-enqueue", { connection, prefix: process.env.RAW_PREFIX ?? "raw" });
const app = rawEnqueueApp(queue);

const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => {
  writeFileSync(process.env.URL_FILE!, `http://127.0.0.1:${info.port}`);
});

const stop = () => {
  server.close();
  void queue.close().then(() => connection.quit().finally(() => process.exit(0)));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
