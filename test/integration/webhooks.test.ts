// Webhook deliveries end to end on real parts: the API (secrets, log, replay routes), jobs rendered
// by the real worker and simulator, the `webhooks` BullMQ queue fed by the test (as the pipeline's
// relay feeds it), the consumer wired as the pipeline role wires it, and a real HTTP receiver on
// loopback that verifies every delivery with the standardwebhooks library.
import { createServer, type Server } from "node:https";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { OutboxEvent } from "../../src/core/outbox.js";
import { eventId } from "../../src/core/outbox.js";
import { webhookId, type WebhookTask } from "../../src/core/webhook-delivery.js";
import { createOutboundHttp } from "../../src/infra/outbound-http.js";
import { createRuntime, type Runtime } from "../../src/main/runtime.js";
import { startWebhooks } from "../../src/main/webhooks.js";
import { processMetricsFor } from "../../src/main/metrics.js";
import { startPipelineRole } from "../../src/main/pipeline-role.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { createKeys, WEBHOOKS_QUEUE } from "../../src/queues/keys.js";
import { webhookJob } from "../../src/queues/webhook-jobs.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { until } from "../helpers/processes.js";
import { redisUrl, testRedisConnector } from "../helpers/redis.js";
import { startSystem, type TestSystem } from "../helpers/system.js";
import { join } from "node:path";

interface Received {
  readonly id: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

const TLS_DIR = join(import.meta.dirname, "fixtures", "tls");
const CA_FILE = join(TLS_DIR, "images-test.crt");
const TLS = {
  cert: readFileSync(CA_FILE, "utf8"),
  key: readFileSync(join(TLS_DIR, "images-test.key"), "utf8"),
};

/** The customer's receiver (https, the test CA): records every request; `answer` decides the status per path. */
const received: Received[] = [];
let answer: (path: string) => number = () => 200;
let receiver: Server;
let port = 0;
function listen(at: number): Promise<void> {
  receiver = createServer(TLS, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      const path = req.url ?? "/";
      received.push({
        id: headers["webhook-id"] ?? "",
        path,
        headers,
        body: Buffer.concat(chunks).toString(),
      });
      res.writeHead(answer(path)).end("ok");
    });
  });
  return new Promise((resolve) =>
    receiver.listen(at, "127.0.0.1", () => {
      port = (receiver.address() as AddressInfo).port;
      resolve();
    }),
  );
}
const stopReceiver = () =>
  new Promise<void>((resolve) => {
    receiver.close(() => resolve());
    receiver.closeAllConnections();
  });

let sys: TestSystem;
let queue: Queue;
let bull: Redis;
const TENANT = "cust-hooks";
const OTHER = "cust-other";
const ENV = {
  WEBHOOK_ALLOW_PRIVATE: "true",
  WEBHOOK_RETRY_BASE_MS: "20",
  WEBHOOK_RETRY_MAX_MS: "200",
  WEBHOOK_RETRY_FOR_MS: "60000",
  WEBHOOK_TIMEOUT_MS: "2000",
  WEBHOOK_SECRET_OVERLAP_MS: "600000",
};

beforeAll(async () => {
  await listen(0);
  sys = await startSystem({
    env: { ...ENV, OUTBOUND_ALLOWED_PORTS: String(port), OUTBOUND_CA_FILE: CA_FILE },
  });
  bull = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  queue = new Queue(WEBHOOKS_QUEUE, { connection: bull, prefix: sys.redis.prefix });
});

afterAll(async () => {
  await queue?.close();
  bull?.disconnect();
  await sys?.close();
  await stopReceiver();
});

/** A running `webhooks` consumer wired as the pipeline role wires it; closed after each test. */
let consumer: Runtime | undefined;
afterEach(async () => {
  await consumer?.shutdown("test done");
  consumer = undefined;
  received.length = 0;
  answer = () => 200;
});
async function startConsumer(
  env: Record<string, unknown> = {},
  http?: Parameters<typeof startWebhooks>[2],
): Promise<void> {
  const logger = pino({ level: "silent" });
  consumer = createRuntime(logger);
  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  consumer.defer("redis", () => void redis.disconnect());
  await startWebhooks(
    {
      settings: { ...sys.settings, env: { ...sys.settings.env, ...env } },
      redisConnector: testRedisConnector(),
      runtime: consumer,
      logger,
      clock: Date.now,
      blobs: createFsBlobStore({ root: join(sys.dataDir, "cas") }),
      keys: sys.keys,
      publicUrl: () => sys.url,
      metrics: processMetricsFor(["pipeline"]),
    },
    redis,
    http,
  );
}

/** Submits a job with a webhook to `path` on the receiver and waits until it has finished. */
async function finishedJob(path = "/hook", customer = TENANT): Promise<string> {
  const res = await sys.call("/queue", {
    method: "POST",
    token: await sys.token(customer),
    body: JSON.stringify({
      modality: "image",
      family: "flux",
      model: "schnell",
      task: "t2i",
      prompt: "a lighthouse",
      webhook: `https://127.0.0.1:${port}${path}`,
    }),
  });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  const store = createJobStore(sys.redis.client, sys.redis.prefix);
  await until(`job ${id} finished`, async () => {
    const found = await store.read(id);
    return found !== undefined && found.job.status === "complete";
  });
  return id;
}

/** The job's terminal event as the outbox carries it, and the task the relay makes of it. */
async function taskOf(jobId: string): Promise<WebhookTask> {
  const keys = createKeys(sys.redis.prefix);
  const store = createJobStore(sys.redis.client, sys.redis.prefix);
  const events = await store.events(jobId, 0);
  const last = events.at(-1)!;
  const record = await sys.redis.client.hgetall(keys.job(jobId));
  const event: OutboxEvent = {
    jobId,
    event: last.event,
    seq: last.seq,
    at: Date.now(),
    data: last.data,
    record,
  };
  return { event, url: record.webhook!, customerId: record.cust! };
}

async function handOver(task: WebhookTask): Promise<void> {
  const job = webhookJob(task, { logTtlS: 3600 });
  await queue.add(job.name, job.data, job.opts);
}

async function deliveries(jobId: string, customer = TENANT) {
  const res = await sys.call(`/jobs/${jobId}/webhooks`, { token: await sys.token(customer) });
  return { status: res.status, body: (await res.json()) as { deliveries: Record<string, unknown>[] } };
}

async function secret(customer = TENANT): Promise<string> {
  const res = await sys.call("/webhooks/secret", { token: await sys.token(customer) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { secret: string }).secret;
}

describe("webhook deliveries", () => {
  it("go out for a job's subscribed events through the pipeline role (outbox, relay, webhooks queue)", async () => {
    const logger = pino({ level: "silent" });
    consumer = createRuntime(logger);
    await startPipelineRole({
      settings: { ...sys.settings, env: { ...sys.settings.env, PUBLIC_URL: sys.url } },
      keys: sys.keys,
      redisConnector: testRedisConnector(),
      runtime: consumer,
      logger,
      clock: Date.now,
      blobs: createFsBlobStore({ root: join(sys.dataDir, "cas") }),
      metrics: processMetricsFor(["pipeline"]),
    });
    const id = await finishedJob();
    await until("delivered", async () => received.length >= 1);
    const msg = new Webhook(await secret()).verify(received[0]!.body, received[0]!.headers) as {
      type: string;
      data: { id: string };
    };
    expect([msg.type, msg.data.id]).toEqual(["job.complete", id]);
    await until("logged", async () => (await deliveries(id)).body.deliveries[0]?.state === "delivered");
    expect(received).toHaveLength(1);
  });

  it("are signed per Standard Webhooks: the library accepts every delivery and rejects a tampered one", async () => {
    await startConsumer();
    const ids = [await finishedJob(), await finishedJob()];
    for (const id of ids) await handOver(await taskOf(id));
    await until("both delivered", async () => received.length >= 2);
    const current = await secret();
    expect(await secret()).toBe(current); // created once, then read
    const wh = new Webhook(current);
    const theirs = new Webhook(await secret(OTHER));
    for (const r of received) {
      const msg = wh.verify(r.body, r.headers) as { type: string; data: Record<string, unknown> };
      expect(msg.type).toBe("job.complete");
      expect(ids).toContain(msg.data.id);
      expect(msg.data.status).toBe("complete");
      // The job as GET /jobs/{id} shows it: a signed output URL on the gateway.
      expect(String(msg.data.output)).toMatch(new RegExp(`^${sys.url}/objects/sha256-[0-9a-f]{64}\\?exp=`));
      // The rest exactly as GET /jobs/{id} shows it.
      const shown = await sys.call(`/jobs/${String(msg.data.id)}?redirect=false`, {
        token: await sys.token(TENANT),
      });
      expect(msg.data).toEqual({
        ...((await shown.json()) as Record<string, unknown>),
        output: expect.any(String),
        outputs: [expect.any(String)],
      });
      expect(r.id).toBe(webhookId({ jobId: String(msg.data.id), seq: Number(r.id.split(".").at(-1)) }));
      const tampered = r.body.replace('"complete"', '"error"');
      expect(() => wh.verify(tampered, r.headers)).toThrow();
      expect(() => theirs.verify(r.body, r.headers)).toThrow();
    }
    const log = await deliveries(ids[0]!);
    expect(log.status).toBe(200);
    expect(log.body.deliveries).toEqual([
      expect.objectContaining({
        state: "delivered",
        event: "complete",
        attempts: [expect.objectContaining({ status_code: 200 })],
      }),
    ]);
  });

  it("reach a receiver that was down once it is up, each event once with its original webhook-id", async () => {
    await startConsumer();
    const ids = [await finishedJob(), await finishedJob(), await finishedJob()];
    const tasks = await Promise.all(ids.map(taskOf));
    await stopReceiver();
    for (const t of tasks) await handOver(t);
    await handOver(tasks[0]!); // the same event handed over twice adds nothing
    await until("every delivery retrying", async () => {
      const logs = await Promise.all(ids.map((id) => deliveries(id)));
      return logs.every((l) => l.body.deliveries[0]?.state === "failed-retrying");
    });
    await listen(port);
    await until("every event delivered", async () => {
      const logs = await Promise.all(ids.map((id) => deliveries(id)));
      return logs.every((l) => l.body.deliveries[0]?.state === "delivered");
    });
    const expected = tasks.map((t) => `msg_${eventId(t.event)}`).sort();
    expect(received.map((r) => r.id).sort()).toEqual(expected);
    const log = await deliveries(ids[0]!);
    const attempts = log.body.deliveries[0]!.attempts as { status_code?: number; error?: string }[];
    expect(attempts.length).toBeGreaterThan(1);
    expect(attempts.at(0)).toMatchObject({ error: "network" });
    expect(attempts.at(-1)).toMatchObject({ status_code: 200 });
  });

  it("stop at a 410: the URL is disabled for the tenant, later events are skipped, a replay enables it", async () => {
    await startConsumer();
    answer = (path) => (path === "/gone" ? 410 : 200);
    const [a, b] = [await finishedJob("/gone"), await finishedJob("/gone")];
    await handOver(await taskOf(a));
    await until("dead", async () => (await deliveries(a)).body.deliveries[0]?.state === "dead");
    await handOver(await taskOf(b));
    await until("skipped", async () => (await deliveries(b)).body.deliveries[0]?.state === "skipped");
    expect(received).toHaveLength(1);
    expect((await deliveries(b)).body.deliveries[0]!.attempts).toEqual([]);

    answer = () => 200;
    const delivery = String((await deliveries(b)).body.deliveries[0]!.id);
    const replay = await sys.call(`/jobs/${b}/webhooks/${delivery}/replay`, {
      method: "POST",
      token: await sys.token(TENANT),
    });
    expect(replay.status).toBe(202);
    await until("replayed", async () => (await deliveries(b)).body.deliveries[0]?.state === "delivered");
    expect(received.map((r) => r.id)).toContain(delivery);
  });

  it("retry on the schedule, then are dead-lettered", async () => {
    // 2 s of retries (base 20 ms, capped at 200 ms): at 400 ms the first attempt alone outlasted the
    // window under load average 10, and the delivery was dead after one attempt.
    await startConsumer({ WEBHOOK_RETRY_FOR_MS: 2_000 });
    answer = () => 500;
    const id = await finishedJob("/broken");
    const task = await taskOf(id);
    await handOver(task);
    await until("dead", async () => (await deliveries(id)).body.deliveries[0]?.state === "dead");
    const d = (await deliveries(id)).body.deliveries[0]!;
    expect((d.attempts as unknown[]).length).toBeGreaterThan(1);
    expect(d.attempts).toEqual(expect.arrayContaining([expect.objectContaining({ status_code: 500 })]));
    // The dead-letter list: BullMQ's failed set of the `webhooks` queue.
    const failed = await queue.getFailed();
    expect(failed.map((j) => j.id)).toContain(`wh.${eventId(task.event)}`);
  });

  it("sign with both secrets for the overlap after a rotation", async () => {
    await startConsumer();
    const before = await secret();
    const rotated = await sys.call("/webhooks/secret/rotate", {
      method: "POST",
      token: await sys.token(TENANT),
    });
    expect(rotated.status).toBe(200);
    const after = (await rotated.json()) as { secret: string; previous_valid_until?: string };
    expect(after.secret).toMatch(/^whsec_/);
    expect(after.secret).not.toBe(before);
    expect(after.previous_valid_until).toBeDefined();
    expect(await secret()).toBe(after.secret);
    const id = await finishedJob();
    await handOver(await taskOf(id));
    await until("delivered", async () => received.length >= 1);
    const r = received[0]!;
    expect(r.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(() => new Webhook(before).verify(r.body, r.headers)).not.toThrow();
    expect(() => new Webhook(after.secret).verify(r.body, r.headers)).not.toThrow();
  });

  it("are replayed with the same webhook-id, and their log is another customer's 404", async () => {
    await startConsumer();
    const id = await finishedJob();
    await handOver(await taskOf(id));
    await until("delivered", async () => (await deliveries(id)).body.deliveries[0]?.state === "delivered");
    const delivery = String((await deliveries(id)).body.deliveries[0]!.id);

    expect((await deliveries(id, OTHER)).status).toBe(404);
    const theirs = await sys.call(`/jobs/${id}/webhooks/${delivery}/replay`, {
      method: "POST",
      token: await sys.token(OTHER),
    });
    expect(theirs.status).toBe(404);
    const admin = await sys.call(`/jobs/${id}/webhooks`, { token: await sys.token("ops", { admin: true }) });
    expect(admin.status).toBe(200);
    const bogus = await sys.call(`/jobs/${id}/webhooks/msg_nope/replay`, {
      method: "POST",
      token: await sys.token(TENANT),
    });
    expect(bogus.status).toBe(404);
    const long = await sys.call(`/jobs/${id}/webhooks/${"m".repeat(5_000)}/replay`, {
      method: "POST",
      token: await sys.token(TENANT),
    });
    expect(long.status).toBe(404);
    expect((await sys.call("/webhooks/secret")).status).toBe(401);
    expect((await sys.call(`/jobs/${id}/webhooks`)).status).toBe(401);

    const res = await sys.call(`/jobs/${id}/webhooks/${delivery}/replay`, {
      method: "POST",
      token: await sys.token(TENANT),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ id: delivery, replay: 1, state: "pending" });
    await until("replayed", async () => received.length >= 2);
    expect(received.map((r) => r.id)).toEqual([delivery, delivery]);
    await until("logged", async () => {
      const d = (await deliveries(id)).body.deliveries[0]!;
      return d.state === "delivered" && (d.attempts as unknown[]).length === 2 ? d : undefined;
    });
    const d = (await deliveries(id)).body.deliveries[0]!;
    expect(d.replays).toBe(1);
    expect(d.attempts).toEqual([
      expect.objectContaining({ status_code: 200 }),
      expect.objectContaining({ status_code: 200, replay: 1 }),
    ]);
  });

  it("refuse at send time a host whose name resolves to a loopback address (private targets not allowed)", async () => {
    const http = createOutboundHttp({
      policy: { allowPrivate: false, allowedPorts: [port] },
      connectTimeoutMs: 1_000,
      timeoutMs: 2_000,
      maxBytes: 4_096,
      // The name's DNS answers 127.0.0.1 (as localtest.me does).
      resolve: async () => [{ address: "127.0.0.1", family: 4 }],
    });
    await startConsumer({ WEBHOOK_ALLOW_PRIVATE: false }, { http });
    try {
      const id = await finishedJob();
      const task = await taskOf(id);
      await handOver({ ...task, url: `https://hooks.localtest.example:${port}/hook` });
      await until("dead", async () => (await deliveries(id)).body.deliveries[0]?.state === "dead");
      const d = (await deliveries(id)).body.deliveries[0]!;
      expect(d.attempts).toEqual([expect.objectContaining({ error: "blocked_target" })]);
      expect(received).toHaveLength(0);
    } finally {
      await http.close();
    }
  });
});
