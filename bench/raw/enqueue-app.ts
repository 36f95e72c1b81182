// The raw bound of the enqueue bench: a bare Hono app that only parses the body, does
// `await queue.add(name, data, { priority })` (BullMQ) and answers 202 JSON.
import type { Queue } from "bullmq";
import { Hono } from "hono";

const PRIORITY: Record<string, number> = { high: 1, normal: 2, low: 3 };

export function rawEnqueueApp(queue: Queue): Hono {
  const app = new Hono();
  app.post("/queue", async (c) => {
    const data = await c.req.json<{ priority?: string }>();
    const job = await queue.add("render", data, { priority: PRIORITY[data.priority ?? "normal"] ?? 2 });
    return c.json({ id: job.id, status: "queued" }, 202);
  });
  return app;
}
