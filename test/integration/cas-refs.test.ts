// CAS references in Redis: a job holds its input digests from admission on and, at its one terminal
// transition, hands them (and its outputs) to pins that last until its retention ends — whichever
// way it ends; the pin API; the collector's reference query.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCasRefs, type CasRefs } from "../../src/queues/cas-refs.js";
import { createScheduler, type BackendView, type Scheduler } from "../../src/queues/scheduler.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";
import { createKeys } from "../../src/queues/keys.js";

const RETENTION_S = 3600;
const B1: BackendView = { id: "b1", cap: 4, engine: "nunchaku", models: ["*"], ok: true };
const digest = (c: string) => `sha256-${c.repeat(64)}`;
const IN_A = digest("a");
const IN_B = digest("b");
const OUT = digest("c");
const COMPLETE = { output: OUT, outputs: [OUT], ctype: "image/png", seed: 1, gpu_ms: 5 };

let r: TestRedis;
let sched: Scheduler;
let refs: CasRefs;
let now = 1_000_000;

async function admit(id: string, inputs: readonly string[] = [IN_A, IN_B], ttlAt?: number) {
  const res = await sched.admit({
    id,
    route: "flux/schnell",
    priority: "normal",
    fields: {
      cust: "c1",
      prio: "normal",
      mod: "image",
      fam: "flux",
      mdl: "schnell",
      task: "i2i",
      fmt: "512",
      seed: "1",
      mode: "async",
    },
    request: "{}",
    serviceMs: 1000,
    capacity: 1,
    ...(inputs.length > 0 ? { inputs } : {}),
    ...(ttlAt === undefined ? {} : { ttlAt }),
  });
  expect(res.admitted).toBe(true);
}

const live = () => r.client.hgetall(createKeys(r.prefix).casLive);
const pins = async () => {
  const flat = await r.client.zrange(createKeys(r.prefix).casPins, "0", "-1", "WITHSCORES");
  const out: Record<string, number> = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]!] = Number(flat[i + 1]);
  return out;
};

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  sched = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 5_000,
    maxAttempts: 2,
    retentionS: RETENTION_S,
    retentionCount: 1000,
  });
  refs = createCasRefs(r.client, r.prefix);
});
afterEach(async () => {
  await r.cleanup();
});

describe("CAS references of jobs", () => {
  it("counts a queued job's inputs as live references, also two jobs sharing one", async () => {
    await admit("j_1");
    await admit("j_2", [IN_A]);
    expect(await live()).toEqual({ [IN_A]: "2", [IN_B]: "1" });
    expect(await refs.referenced([IN_A, IN_B, OUT], now)).toEqual([true, true, false]);
    // A job without inputs (t2i) takes none and stores no field.
    await admit("j_t2i", []);
    expect(await r.client.hexists(createKeys(r.prefix).job("j_t2i"), "inputs")).toBe(0);
    expect(await live()).toEqual({ [IN_A]: "2", [IN_B]: "1" });
  });

  it("answers a resent admission without counting its inputs twice", async () => {
    const input = {
      id: "j_resent",
      route: "flux/schnell",
      priority: "normal" as const,
      fields: { cust: "c1" },
      request: "{}",
      serviceMs: 1,
      capacity: 1,
      now: 5_000,
      inputs: [IN_A],
    };
    await sched.admit(input);
    expect(await sched.admit(input)).toMatchObject({ admitted: true });
    expect(await live()).toEqual({ [IN_A]: "1" });
  });

  // Every way a job ends releases its live references exactly once and pins what it referenced
  // until its retention ends (completed + JOB_RETENTION_S).
  const endings: [string, (id: string) => Promise<void>, boolean][] = [
    ["cancelled while queued", async (id) => void (await sched.cancel(id, "c1")), false],
    [
      "cancelled while running, then settled by its worker",
      async (id) => {
        const [a] = await sched.dispatch(1, [B1]);
        expect(await sched.cancel(id, "c1")).toBe("was_running");
        now += 10;
        expect((await sched.finish(id, a!.token, "b1", "complete", COMPLETE)).ok).toBe(false);
      },
      false,
    ],
    [
      "expired by its ttl",
      async () => {
        now += 10_000;
        expect(await sched.expire()).toBe(1);
      },
      false,
    ],
    [
      "expired by dispatch",
      async () => {
        now += 10_000;
        const started = await sched.dispatch(1, [B1]);
        expect(started.map((a) => a.id)).not.toContain("j_end");
      },
      false,
    ],
    [
      "refused by the backend",
      async (id) => {
        const [a] = await sched.dispatch(1, [B1]);
        const error = { code: "invalid_request", message: "no", retriable: false };
        await sched.finish(id, a!.token, "b1", "failed", { error });
      },
      false,
    ],
    [
      "out of attempts",
      async (id) => {
        for (let i = 0; i < 2; i++) {
          const [a] = await sched.dispatch(1, [B1]);
          const error = { code: "backend_error", message: "500", retriable: true };
          await sched.finish(id, a!.token, "b1", "retry", { error, notbefore: now });
        }
      },
      false,
    ],
    [
      "lost with its worker too often",
      async () => {
        for (let i = 0; i < 2; i++) {
          await sched.dispatch(1, [B1]);
          now += 6_000;
          await sched.reap();
        }
      },
      false,
    ],
    [
      "complete",
      async (id) => {
        const [a] = await sched.dispatch(1, [B1]);
        await sched.finish(id, a!.token, "b1", "complete", COMPLETE);
      },
      true,
    ],
  ];

  it.each(endings)("releases and pins its objects once when %s", async (_, end, completes) => {
    await admit("j_end", [IN_A, IN_B], now + 5_000);
    await admit("j_other", [IN_A]); // shares one input and stays queued (lower in the order)
    await end("j_end");
    const status = await r.client.hget(createKeys(r.prefix).job("j_end"), "status");
    expect(status).toBe(completes ? "complete" : status === "error" ? "error" : "cancelled");
    const ended = Number(await r.client.hget(createKeys(r.prefix).job("j_end"), "completed"));
    expect(await live()).toEqual({ [IN_A]: "1" });
    const until = ended + RETENTION_S * 1000;
    expect(await pins()).toEqual(
      completes ? { [IN_A]: until, [IN_B]: until, [OUT]: until } : { [IN_A]: until, [IN_B]: until },
    );
    // The other job still holds IN_A; IN_B is held by the pin until the retention ends.
    expect(await refs.referenced([IN_A, IN_B], until)).toEqual([true, true]);
    expect(await refs.referenced([IN_A, IN_B], until + 1)).toEqual([true, false]);
    await sched.cancel("j_other", "c1");
    expect(await live()).toEqual({});
  });

  it("pins a completed t2i job's outputs (it has no inputs)", async () => {
    await admit("j_t2i", []);
    const [a] = await sched.dispatch(1, [B1]);
    await sched.finish("j_t2i", a!.token, "b1", "complete", COMPLETE);
    expect(await live()).toEqual({});
    expect(await pins()).toEqual({ [OUT]: now + RETENTION_S * 1000 });
  });
});

describe("the pin API", () => {
  it("keeps the longest pin of an object (scores only grow)", async () => {
    await refs.pin([IN_A, OUT], 5_000);
    await refs.pin([IN_A], 4_000);
    await refs.pin([OUT], 9_000);
    expect(await pins()).toEqual({ [IN_A]: 5_000, [OUT]: 9_000 });
    expect(await refs.referenced([IN_A, OUT, IN_B], 6_000)).toEqual([false, true, false]);
  });

  it("refuses what is not a digest", async () => {
    await expect(refs.pin(["../etc/passwd"], 1)).rejects.toThrow(RangeError);
    await expect(refs.pin([IN_A], Number.NaN)).rejects.toThrow(RangeError);
  });

  it("drops expired pins a bounded number at a time", async () => {
    for (let i = 0; i < 5; i++) await refs.pin([digest(String(i))], 1_000 + i);
    await refs.pin([OUT], 10_000);
    await refs.referenced([], 5_000, 3);
    expect(Object.keys(await pins())).toHaveLength(3);
    await refs.referenced([], 5_000, 3);
    expect(await pins()).toEqual({ [OUT]: 10_000 });
  });
});
