// What a 202 promises with REDIS_WAIT_REPLICAS=1 (api/replicated.ts, README "Redis high
// availability"): a primary and a replica of its own (`--replicaof`), the API and its WAIT in front.
// A 202 means the replica holds the job; with the replica silent (SIGSTOP) the answer is a 503 that
// names the job, which exists, and a resend with the same Idempotency-Key names the same job and is
// answered 202 once the replica holds it.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeys } from "../../src/queues/keys.js";
import { spawnRedis, type SpawnedRedis } from "../helpers/processes.js";
import { FLUX_SCHNELL_512, startSystem, waitFor, type TestSystem } from "../helpers/system.js";

let dir: string;
let primary: SpawnedRedis;
let replica: SpawnedRedis;
let primaryClient: Redis;
let replicaClient: Redis;
let sys: TestSystem;
let bearer: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rg-wait-"));
  for (const d of ["primary", "replica"]) mkdirSync(join(dir, d));
  primary = await spawnRedis(join(dir, "primary"), ["--repl-diskless-sync-delay", "0"]);
  replica = await spawnRedis(join(dir, "replica"), ["--replicaof", "127.0.0.1", String(primary.port)]);
  primaryClient = new Redis(primary.url, { maxRetriesPerRequest: null });
  replicaClient = new Redis(replica.url, { maxRetriesPerRequest: null });
  await waitFor(async () => /slave0:.*state=online/.test(await primaryClient.info("replication")), 30_000);
  sys = await startSystem({
    worker: false,
    env: { REDIS_URL: primary.url, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_MS: "200" },
  });
  bearer = await sys.token("waiter");
}, 60_000);

afterAll(async () => {
  await sys?.close();
  primaryClient?.disconnect();
  replicaClient?.disconnect();
  await replica?.stop();
  await primary?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const submit = (prompt: string, key?: string) =>
  sys.call("/queue", {
    method: "POST",
    token: bearer,
    ...(key === undefined ? {} : { headers: { "idempotency-key": key } }),
    body: JSON.stringify({ ...FLUX_SCHNELL_512, prompt }),
  });

interface Answer {
  readonly status: number;
  readonly id?: string;
  readonly error?: string;
  readonly details?: { job_id?: string; outcome?: string; replicas?: number; wanted?: number };
  readonly jobHeader: string | null;
  readonly retryAfter: string | null;
}

async function answerOf(res: Response): Promise<Answer> {
  const body = (await res.json()) as Omit<Answer, "status" | "jobHeader" | "retryAfter">;
  return {
    ...body,
    status: res.status,
    jobHeader: res.headers.get("x-job-id"),
    retryAfter: res.headers.get("retry-after"),
  };
}

describe("POST /queue with REDIS_WAIT_REPLICAS=1", () => {
  it("answers 202 only for jobs the replica already holds", async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => submit(`held ${i}`).then(answerOf)),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(202));
    // Read from the replica right after the answers: every job is there.
    const keys = createKeys(sys.redis.prefix);
    const statuses = await Promise.all(answers.map((a) => replicaClient.hget(keys.job(a.id!), "status")));
    expect(statuses).toEqual(Array(20).fill("queued"));
  });

  it("names the job in a 503 while the replica is silent; a resend with the key is that job's 202", async () => {
    process.kill(replica.pid, "SIGSTOP");
    let first: Answer;
    let again: Answer;
    let unkeyed: Answer;
    try {
      first = await answerOf(await submit("unconfirmed", "wait-key-1"));
      again = await answerOf(await submit("unconfirmed", "wait-key-1"));
      unkeyed = await answerOf(await submit("unconfirmed, no key"));
    } finally {
      process.kill(replica.pid, "SIGCONT");
    }
    for (const a of [first, again, unkeyed]) {
      expect(a).toMatchObject({
        status: 503,
        error: "unavailable",
        details: { outcome: "unreplicated", replicas: 0, wanted: 1 },
        retryAfter: "1",
      });
      expect(a.jobHeader).toBe(a.details!.job_id);
    }
    // The resend named the same job: never a second one.
    expect(again.details!.job_id).toBe(first.details!.job_id);
    expect(unkeyed.details!.job_id).not.toBe(first.details!.job_id);
    // Both jobs exist (on the primary) and can be looked up.
    for (const id of [first.details!.job_id!, unkeyed.details!.job_id!]) {
      const res = await sys.call(`/jobs/${id}?redirect=false`, { token: bearer });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // The replica is back: the resend is answered 202 for the same job, which the replica holds.
    const settled = await waitFor(async () => {
      const a = await answerOf(await submit("unconfirmed", "wait-key-1"));
      return a.status === 202 ? a : undefined;
    });
    expect(settled.id).toBe(first.details!.job_id);
    expect(await replicaClient.hget(createKeys(sys.redis.prefix).job(settled.id!), "status")).toBe("queued");
  });
});
