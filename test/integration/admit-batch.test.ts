// The admissions of an event-loop turn in one admit.lua call (queues/admit-batch.ts) against a real
// redis-server: the same answers and the same stored state as one call per admission, one command
// for the turn, a call that fails whole or not at all, and its error given to every admission in it.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createScheduler, type AdmitInput, type AdmitResult } from "../../src/queues/scheduler.js";
import { createKeys } from "../../src/queues/keys.js";
import { defineScripts } from "../../src/queues/scripts.js";
import { createRedis } from "../../src/infra/redis.js";
import type { RedisClient } from "../../src/infra/redis-client.js";
import { testRedis, uniquePrefix, type TestRedis } from "../helpers/redis.js";

let r: TestRedis;
beforeEach(() => {
  r = testRedis();
});
afterEach(async () => {
  await r.cleanup();
});

function schedulerOn(client: RedisClient, prefix: string, pipelineMax: number) {
  return createScheduler({
    redis: client,
    prefix,
    clock: () => 5_000_000,
    leaseTtlMs: 5_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
    queueMax: 9,
    pipelineMax,
  });
}

/** Admissions whose answers differ: admitted, the tenant's limit, a taken id, too far, everyone's limit. */
function inputs(): AdmitInput[] {
  const job = (id: string, cust: string, o: Partial<AdmitInput> = {}): AdmitInput => ({
    id,
    route: "flux/schnell",
    priority: "normal",
    fields: { cust, prio: "normal", mod: "image", fam: "flux", mdl: "schnell", task: "t2i", tier: "pro" },
    request: JSON.stringify({ prompt: `a cat for ${cust}`, n: id }),
    serviceMs: 1000,
    costMs: cust === "heavy" ? 4000 : 1000,
    capacity: 2,
    now: 5_000_000,
    ...o,
  });
  return [
    job("a1", "alpha", { tenant: { weight: 3, maxQueued: 2 } }),
    job("h1", "heavy", { priority: "high", fields: { cust: "heavy", prio: "high" } }),
    job("a2", "alpha", { tenant: { weight: 3, maxQueued: 2 } }),
    job("a3", "alpha", { tenant: { weight: 3, maxQueued: 2 } }), // the tenant's limit: refused
    job("h1", "other"), // an id taken in this very call: refused
    job("b1", "beta", { maxPosition: 1 }), // behind three: too far
    job("b2", "beta", { ttlAt: 5_060_000, priority: "low", fields: { cust: "beta", prio: "low" } }),
    job("h2", "heavy", { inputs: [] }),
    job("c1", "gamma"),
    job("c2", "gamma"),
    job("c3", "gamma"),
    job("c4", "gamma"),
    job("c5", "gamma"), // the tenth queued job: everyone's limit (9)
  ];
}

/** Everything the admissions stored under `prefix`, the job hashes and every other key, by name. */
async function stored(prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const k of (await r.client.keys(`${prefix}*`)).sort()) {
    const name = k.slice(prefix.length);
    const type = await r.client.type(k);
    if (type === "hash") out[name] = await r.client.hgetall(k);
    else if (type === "zset") out[name] = await r.client.zrange(k, "0", "-1", "WITHSCORES");
    else if (type === "string") out[name] = await r.client.get(k);
    else if (type === "set") out[name] = (await r.client.smembers(k)).sort();
    else if (type === "list") out[name] = await r.client.lrange(k, 0, -1);
    else out[name] = type;
  }
  return out;
}

async function evalshaCalls(): Promise<number> {
  const info = await r.client.info("commandstats");
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? "0");
}

describe("admissions of a turn in one call", () => {
  it("answer and store what one call per admission does, in one command", async () => {
    const other = uniquePrefix();
    const single = schedulerOn(r.client, other, 0);
    const one: AdmitResult[] = [];
    for (const input of inputs()) one.push(await single.admit(input));
    const theirs = await stored(other);
    await r.client.del(...(await r.client.keys(`${other}*`)));

    const batched = schedulerOn(r.client, r.prefix, 16);
    await batched.admit({ ...inputs()[0]!, id: "warm", fields: { cust: "warm" } }); // loads the script
    await r.client.del(...(await r.client.keys(`${r.prefix}*`)));
    const before = await evalshaCalls();
    const many = await Promise.all(inputs().map((input) => batched.admit(input)));
    expect(await evalshaCalls()).toBe(before + 1);

    expect(many).toEqual(one);
    // the cases the inputs are made of, so the comparison covers each of them
    expect(many.map((m) => (m.admitted ? m.position : m.reason))).toEqual([
      0,
      0,
      2,
      "queue_full",
      "exists",
      "too_far",
      3,
      3,
      2,
      4,
      5,
      6,
      "queue_full",
    ]);
    const mine = await stored(r.prefix);
    expect(Object.keys(mine).length).toBeGreaterThan(10);
    expect(mine).toEqual(theirs);
  });

  it("is sent whole or not at all: a job's undecodable figures refuse every job of the call", async () => {
    const run = defineScripts(r.client, r.prefix, { pipelineMax: 4 });
    const good = JSON.stringify([
      ...["flux/schnell", "0", "1000", "0", "-1", "0", "1000", "1", "0", "-1", "-1", "2"],
      ...["c1", "normal", "", "", "-1", "0", "", "-1", ""],
    ]);
    const call = run("admit", createKeys(r.prefix).queue, ["j1", "{}", good, "j2", "{}", "{not json"]);
    await expect(call).rejects.toThrow(/Expected object key string/);
    expect(await r.client.keys(`${r.prefix}*`)).toEqual([]);
    await expect(run("admit", createKeys(r.prefix).queue, ["j1", "{}"])).rejects.toThrow(
      /three arguments per job/,
    );
    // a figure that is no number is refused before anything is written, whichever job it is in
    const noNumber = good.replace('"1000","1"', '"1000","x"');
    const mixed = run("admit", createKeys(r.prefix).queue, ["j1", "{}", good, "j2", "{}", noNumber]);
    await expect(mixed).rejects.toThrow(/figure 8 is no number/);
    expect(await r.client.keys(`${r.prefix}*`)).toEqual([]);
  });

  it("gives a failed call's error to every admission in it", async () => {
    // No server on this port and no offline queue (api profile): the call surely did nothing.
    const client = createRedis({ kind: "url", url: "redis://127.0.0.1:1" }, "api", "test-admit-batch");
    try {
      const sched = schedulerOn(client, r.prefix, 16);
      const settled = await Promise.allSettled(
        inputs()
          .slice(0, 5)
          .map((input) => sched.admit(input)),
      );
      expect(settled.map((s) => s.status)).toEqual(Array(5).fill("rejected"));
    } finally {
      client.disconnect();
    }
  });
});
