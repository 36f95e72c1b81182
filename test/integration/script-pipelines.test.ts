// Script calls in capped pipelines (REDIS_PIPELINE_MAX) against a real redis-server: every call gets
// its own reply, one socket write holds at most n calls, runners on one client share the writes,
// errors stay with their call, and a client that cannot reach Redis fails every queued call at once.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Socket } from "node:net";
import type { Redis } from "ioredis";
import { defineScripts } from "../../src/queues/scripts.js";
import { SCRIPT_CODES } from "../../src/queues/script-codes.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { createRedis } from "../../src/infra/redis.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";
import { createKeys } from "../../src/queues/keys.js";

let r: TestRedis;

/**
 * Counts the writes a client's socket makes and the commands in each (observes; Redis does the work):
 * a corked socket hands its buffered commands to `_writev` in one call, an uncorked one each to `_write`.
 */
async function countWrites(client: Redis): Promise<number[]> {
  await client.ping(); // connected, so the socket exists
  const sizes: number[] = [];
  const socket = client.stream as Socket & {
    _writev(chunks: unknown[], cb: (err?: Error | null) => void): void;
  };
  const writev = socket._writev.bind(socket);
  const write = socket._write.bind(socket);
  socket._writev = (chunks, cb) => {
    sizes.push(chunks.length);
    writev(chunks, cb);
  };
  socket._write = (chunk, encoding, cb) => {
    sizes.push(1);
    write(chunk, encoding, cb);
  };
  return sizes;
}

/** A scheduler on the test's client whose script calls go in pipelines of at most `pipelineMax`. */
function schedulerWith(pipelineMax: number) {
  return createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => 1_000_000,
    leaseTtlMs: 5_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
    pipelineMax,
  });
}

function admitInput(id: string) {
  return {
    id,
    route: "flux/schnell",
    priority: "normal" as const,
    fields: { cust: "c1", prio: "normal", mod: "image", fam: "flux", mdl: "schnell", task: "t2i" },
    request: JSON.stringify({ prompt: "a cat" }),
    serviceMs: 1000,
    capacity: 2,
  };
}

beforeEach(() => {
  r = testRedis();
});
afterEach(async () => {
  await r.cleanup();
});

describe("script pipelines", () => {
  it("answers each of 40 concurrent admissions, in admit calls of at most 8", async () => {
    const sizes = await countWrites(r.client);
    const sched = schedulerWith(8);
    const ids = Array.from({ length: 40 }, (_, i) => `job${String(i).padStart(2, "0")}`);
    const results = await Promise.all(ids.map((id) => sched.admit(admitInput(id))));
    // Admitted in call order: the calls keep it, and the positions are 0..39.
    expect(results.map((res) => (res.admitted ? res.position : -1))).toEqual(ids.map((_, i) => i));
    // queues/admit-batch.ts: a full call leaves at once, a write of its own
    expect(sizes).toEqual([1, 1, 1, 1, 1]);
    expect(await r.client.zcard(createKeys(r.prefix).queue)).toBe(40);
  });

  it("sends a part-full write at the end of the event-loop turn", async () => {
    const sizes = await countWrites(r.client);
    const run = defineScripts(r.client, r.prefix, { pipelineMax: 16 });
    const replies = await Promise.all([1, 2, 3].map(() => run("read", createKeys(r.prefix).queue, [])));
    expect(replies).toEqual([[], [], []]);
    expect(sizes).toEqual([3]);
  });

  it("shares one client's writes between its runners", async () => {
    const sizes = await countWrites(r.client);
    const sched = schedulerWith(4);
    const store = createJobStore(r.client, r.prefix, { pipelineMax: 4 });
    await sched.admit(admitInput("a"));
    sizes.length = 0;
    const [read, resolved] = await Promise.all([store.read("a"), sched.resolveAdmission("a", "c1")]);
    expect(read?.position).toBe(0);
    expect(resolved).toEqual({ admitted: true, position: 0 });
    expect(sizes).toEqual([2]);
    expect(() => defineScripts(r.client, r.prefix, { pipelineMax: 5 })).toThrow(/must agree/);
  });

  it("fails only the call whose script failed", async () => {
    const run = defineScripts(r.client, r.prefix, { pipelineMax: 8 });
    const key = createKeys(r.prefix).queue;
    const settled = await Promise.allSettled([
      run("read", key, []),
      run("admit", key, ["missing-arguments"]),
      run("cancel", key, []),
    ]);
    expect(settled[0]).toEqual({ status: "fulfilled", value: [] });
    expect(settled[1].status).toBe("rejected");
    expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/three arguments per job/);
    expect(settled[2]).toEqual({ status: "fulfilled", value: SCRIPT_CODES.missing.code });
  });

  it("rejects every queued call at once when Redis is unreachable (api profile)", async () => {
    // A port nothing listens on: the api profile has no offline queue, so nothing waits.
    const client = createRedis({ kind: "url", url: "redis://127.0.0.1:1" }, "api", "test-unreachable");
    try {
      const run = defineScripts(client, r.prefix, { pipelineMax: 4 });
      const started = Date.now();
      const settled = await Promise.allSettled(
        [1, 2, 3, 4, 5].map(() => run("read", createKeys(r.prefix).queue, [])),
      );
      expect(settled.every((s) => s.status === "rejected")).toBe(true);
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      client.disconnect();
    }
  });

  it("keeps one write per call without a pipeline size (0)", async () => {
    const sizes = await countWrites(r.client);
    const run = defineScripts(r.client, r.prefix);
    expect(
      await Promise.all([
        run("read", createKeys(r.prefix).queue, []),
        run("cancel", createKeys(r.prefix).queue, []),
      ]),
    ).toEqual([[], SCRIPT_CODES.missing.code]);
    expect(sizes).toEqual([1, 1]);
  });
});
