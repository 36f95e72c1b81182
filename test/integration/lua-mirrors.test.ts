// What the TypeScript side mirrors of the scheduler's Lua agrees with Lua as Redis runs it: the order
// key, the return-code table, attempt ids, routes and finish.lua's arguments; and every key the
// scripts leave in Redis after a run through their paths is named by keys.ts.
import { monitorRedis } from "../helpers/redis-monitor.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { attemptId, parseAttemptId } from "../../src/core/attempt-id.js";
import { parseRoute } from "../../src/core/model-route.js";
import { createCasRefs } from "../../src/queues/cas-refs.js";
import { createIdempotencyStore } from "../../src/queues/idempotency-store.js";
import { createKeys, orderKey, priorityOffset, SEQ_SPAN, workRateField } from "../../src/queues/keys.js";
import { readFinishArgv } from "../../src/queues/finish-args.js";
import { createObjectGrants } from "../../src/queues/object-grants.js";
import { createScheduler, type BackendView, type Scheduler } from "../../src/queues/scheduler.js";
import { libSource } from "../../src/queues/scripts.js";
import { SCRIPT_CODES, luaCodeTable } from "../../src/queues/script-codes.js";
import { tsKeyNames } from "../helpers/lua-sources.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";
import { scriptCallOf } from "../helpers/script-calls.js";

const LIB = `${luaCodeTable()}\n${libSource()}`;
const B1: BackendView = { id: "b1", cap: 4, engine: "nunchaku", models: ["*"], ok: true };
const OUT = `sha256-${"c".repeat(64)}`;
const IN = `sha256-${"a".repeat(64)}`;

/** The scheduler's default aging bound (ms). */
const AGING_MS = 600_000;

let r: TestRedis;
let sched: Scheduler;
let now = 1_000_000;

/** Runs `body` after lib.lua (and the code table) in Redis, with ARGV[1] the prefix and `args` after it. */
async function lua(body: string, ...args: (string | number)[]): Promise<unknown> {
  return r.client.eval(`${LIB}\n${body}`, 1, createKeys(r.prefix).queue, r.prefix, ...args);
}

async function admit(
  id: string,
  extra: { inputs?: string[]; ttlAt?: number; priority?: "high" | "low" } = {},
) {
  const priority = extra.priority ?? "normal";
  const res = await sched.admit({
    id,
    route: "flux/schnell",
    priority,
    fields: { cust: "c1", prio: priority, mod: "image", fam: "flux", mdl: "schnell", task: "t2i", seed: "1" },
    request: "{}",
    serviceMs: 1000,
    capacity: 1,
    ...(extra.inputs ? { inputs: extra.inputs } : {}),
    ...(extra.ttlAt === undefined ? {} : { ttlAt: extra.ttlAt }),
  });
  expect(res.admitted).toBe(true);
}

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  sched = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 5_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 100,
  });
});

afterEach(async () => {
  await r.cleanup();
});

describe("Lua and TypeScript agree", () => {
  it("on the order key: lib.lua order_key and keys.ts orderKey", async () => {
    // fractions of a ms, a month of virtual time, the sequence wrapping at SEQ_SPAN
    for (const vkey of [0, 0.125, 1.3, 600_000, 31 * 86_400_000 + 0.625]) {
      for (const seq of [0, 1, 987_654_321, SEQ_SPAN - 1, SEQ_SPAN]) {
        // an integer reply: exact below 2^53
        expect(await lua("return order_key(tonumber(ARGV[2]), tonumber(ARGV[3]))", vkey, seq)).toBe(
          orderKey(vkey, seq),
        );
      }
    }
    // exact integers a month on: two keys 1/8 ms apart and two sequences of one key stay distinct
    const month = 31 * 86_400_000;
    expect(orderKey(month, 5) + 1).toBe(orderKey(month, 6));
    expect(orderKey(month + 0.125, 0) - orderKey(month, 0)).toBe(SEQ_SPAN);
    expect(Number.isSafeInteger(orderKey(month, SEQ_SPAN - 1))).toBe(true);
    // and on the scores admissions store: start time (V = 0, an idle tenant) plus the priority offset
    await admit("j_1", { priority: "low" });
    await admit("j_2", { priority: "high" });
    const keys = createKeys(r.prefix);
    expect(Number(await r.client.zscore(keys.queue, "j_1"))).toBe(
      orderKey(priorityOffset("low", AGING_MS, 1), 1),
    );
    // j_2 starts where j_1 left its tenant: cost 1000 ms · W 1 / (C 1 · w 1) on
    expect(Number(await r.client.zscore(keys.queue, "j_2"))).toBe(orderKey(1000, 2));
  });

  it("on the return codes: the scripts' E is the table", async () => {
    const table = JSON.parse((await lua("return cjson.encode(E)")) as string) as Record<string, number>;
    expect(table).toEqual(Object.fromEntries(Object.entries(SCRIPT_CODES).map(([k, v]) => [k, v.code])));
  });

  it("on attempt ids", async () => {
    const ref = { id: "j_AbC123", token: "0123456789ab.7" };
    const [joined, id, token] = (await lua(
      "local i, t = attempt_parts(ARGV[4]); return {attempt_id(ARGV[2], ARGV[3]), i, t}",
      ref.id,
      ref.token,
      attemptId(ref),
    )) as string[];
    expect(joined).toBe(attemptId(ref));
    expect({ id, token }).toEqual(parseAttemptId(attemptId(ref)));
    // the lease a dispatch takes is held under that id
    await admit("j_lease");
    const [a] = await sched.dispatch(1, [B1]);
    expect(await r.client.zrange(createKeys(r.prefix).lease("b1"), "0", "-1")).toEqual([attemptId(a!)]);
  });

  it("on routes", async () => {
    for (const route of ["flux/schnell", "flux/schnell@nunchaku", "wan/2.1-t2v@gpu-a.1"]) {
      const parts = (await lua("local m, c = route_parts(ARGV[2]); return {m, c}", route)) as string[];
      const ts = parseRoute(route);
      expect(parts).toEqual([ts.familyModel, ts.constraint ?? ""]);
    }
  });
});

describe("finish.lua's arguments", () => {
  it("are read back by name from the calls Redis receives (MONITOR: an EVAL, then EVALSHAs)", async () => {
    await admit("j_watched1");
    await admit("j_watched2");
    const attempts = await sched.dispatch(2, [B1]);
    const seen: ReturnType<typeof readFinishArgv>[] = [];
    const monitor = await monitorRedis(redisUrl(), (args) => {
      const script = scriptCallOf(args);
      if (script?.name !== "finish") return;
      // MONITOR shows every client's calls: keep this test's own
      const settle = readFinishArgv(script.argv);
      if (settle.prefix === r.prefix) seen.push(settle);
    });
    try {
      for (const a of attempts) await sched.finish(a.id, a.token, "b1", "busy", { cool_ms: 250 });
      // the monitor's copies of the calls come on its own connection: wait for them
      for (let i = 0; seen.length < 2 && i < 1_000; i++) await new Promise((ok) => setTimeout(ok, 5));
    } finally {
      await monitor.close();
    }
    expect(seen.map((s) => s.id)).toEqual(["j_watched1", "j_watched2"]);
    expect(seen[1]).toMatchObject({
      prefix: r.prefix,
      id: attempts[1]!.id,
      token: attempts[1]!.token,
      backend: "b1",
      now: String(now),
      outcome: "busy",
      payload: JSON.stringify({ cool_ms: 250 }),
      maxAttempts: "3",
      retentionS: "3600",
      retentionCount: "100",
      slots: "0",
    });
  });
});

describe("the keys the scripts write", () => {
  it("are all named in keys.ts", async () => {
    const keys = createKeys(r.prefix);
    // through every path: complete (grants, stats, done), retry with backoff, busy with a cooldown,
    // cancel while queued and while running, a cancelled attempt reaped, ttl expiry, idempotency, pins
    await admit("j_done", { inputs: [IN] });
    await admit("j_retry");
    await admit("j_busy");
    await admit("j_ttl", { ttlAt: now + 10 });
    const started = await sched.dispatch(3, [B1]);
    expect(started.map((a) => a.id)).toEqual(["j_done", "j_retry", "j_busy"]);
    const [done, retry, busy] = started;
    await sched.finish(done!.id, done!.token, "b1", "complete", {
      output: OUT,
      outputs: [OUT],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 5,
    });
    await sched.finish(retry!.id, retry!.token, "b1", "retry", {
      error: { code: "backend_error", message: "failed", retriable: true },
      notbefore: now + 60_000,
    });
    await sched.finish(busy!.id, busy!.token, "b1", "busy", { cool_ms: 60_000 });
    now += 100;
    expect(await sched.expire()).toBe(1);
    await admit("j_cancel_q");
    expect(await sched.cancel("j_cancel_q", "c1")).toBe("was_queued");
    // the busy job, back at its place, starts on another backend and is cancelled while it runs
    const [running] = await sched.dispatch(1, [{ ...B1, id: "b2" }]);
    expect(running?.id).toBe("j_busy");
    expect(await sched.cancel("j_busy", "c1")).toBe("was_running");
    now += 10_000;
    await sched.reap();
    const idem = createIdempotencyStore({ redis: r.client, prefix: r.prefix, clock: () => now });
    await idem.begin("c1", "key-1", "fp", "j_idem", now + 1000);
    await createCasRefs(r.client, r.prefix).pin([OUT], now + 1000);
    await createObjectGrants(r.client, r.prefix, 60).grant(IN, "c1");

    // "P:job:*" -> /^:job:.+$/ (the keys below are read without the prefix)
    const escape = (part: string) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const patterns = [...tsKeyNames()].map(
      (name) => new RegExp(`^${name.slice(1).split("*").map(escape).join(".+")}$`),
    );
    const stored = (await r.client.keys(`${r.prefix}*`)).map((k) => k.slice(r.prefix.length));
    expect(stored.length).toBeGreaterThan(15);
    expect(stored.filter((k) => !patterns.some((p) => p.test(k)))).toEqual([]);
    // the one field of the stats hash: the ms per work unit of the completed job's model
    expect(Object.keys(await r.client.hgetall(keys.stats))).toEqual([workRateField("flux/schnell")]);
    for (const k of [keys.done, keys.backoff, keys.cooldowns, keys.objectOwners(OUT), keys.queueSeq]) {
      expect(stored).toContain(k.slice(r.prefix.length));
    }
  });
});
