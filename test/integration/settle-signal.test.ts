// A terminal settle by the worker role of a process wakes the sync waiters of its api role at once
// (core/settle-signal.ts), without waiting for the job's event to come back through Redis pub/sub;
// the pub/sub message still wakes them as before (an API in another process has only that).
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createEventHub, type EventHub } from "../../src/api/event-hub.js";
import { createSettleSignal } from "../../src/core/settle-signal.js";
import type { JobRecord } from "../../src/core/job.js";
import { createKeys } from "../../src/queues/keys.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";

let r: TestRedis;
let subscriber: Redis;
let hub: EventHub;
const settles = createSettleSignal();

beforeEach(async () => {
  r = testRedis();
  subscriber = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  hub = createEventHub(subscriber, createKeys(r.prefix).eventChannel, settles);
  await hub.start();
});

afterEach(async () => {
  await hub.stop();
  subscriber.disconnect();
  await r.cleanup();
});

describe("the event hub of an API beside a worker", () => {
  it("wakes a job's listeners when the worker of its process settles the job, synchronously", () => {
    const woken: string[] = [];
    const off = hub.on("j_1", () => woken.push("j_1"));
    hub.on("j_2", () => woken.push("j_2"));
    settles.settled("j_1");
    expect(woken).toEqual(["j_1"]);
    off();
    settles.settled("j_1");
    expect(woken).toEqual(["j_1"]);
  });

  it("still wakes them on the job's pub/sub message, and hears no settle once stopped", async () => {
    const woken: string[] = [];
    hub.on("j_3", () => woken.push("j_3"));
    await r.client.publish(createKeys(r.prefix).eventChannel, "j_3");
    for (let i = 0; woken.length === 0; i++) {
      if (i > 1000) throw new Error("no wake-up from the pub/sub message");
      await new Promise((res) => setTimeout(res, 5));
    }
    expect(woken).toEqual(["j_3"]);
    await hub.stop();
    hub.on("j_4", () => woken.push("j_4"));
    settles.settled("j_4");
    expect(woken).toEqual(["j_3"]);
  });

  it("says what woke a listener: a terminal event, another event, or a message that does not say", async () => {
    const woken: string[] = [];
    hub.on("j_5", (why) => woken.push(why));
    const channel = createKeys(r.prefix).eventChannel;
    for (const message of [
      "j_5 started",
      "j_5 progress",
      "j_5",
      "j_5 complete",
      "j_5 cancelled",
      "j_5 error",
    ])
      await r.client.publish(channel, message);
    for (let i = 0; woken.length < 6; i++) {
      if (i > 1000) throw new Error(`only ${woken.length} wake-ups`);
      await new Promise((res) => setTimeout(res, 5));
    }
    expect(woken).toEqual(["event", "event", "any", "ended", "ended", "ended"]);
  });

  it("hands over the record a settle of this process passed", () => {
    const got: unknown[] = [];
    hub.on("j_6", (why, job) => got.push([why, job?.status]));
    settles.settled("j_6", { id: "j_6", status: "complete" } as JobRecord);
    settles.settled("j_6");
    expect(got).toEqual([
      ["ended", "complete"],
      ["ended", undefined],
    ]);
  });

  it("is told of each job event by name, and the previous release's channel still gets the bare id", async () => {
    const keys = createKeys(r.prefix);
    const listen = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const heard: string[] = [];
    listen.on("message", (channel: string, message: string) =>
      heard.push(`${channel === keys.eventChannel ? "named" : "legacy"}: ${message}`),
    );
    await listen.subscribe(keys.eventChannel, keys.legacyEventChannel);
    try {
      const sched = createScheduler({
        redis: r.client,
        prefix: r.prefix,
        clock: () => 1_000_000,
        leaseTtlMs: 5_000,
        maxAttempts: 3,
        retentionS: 3600,
        retentionCount: 1000,
      });
      const admitted = await sched.admit({
        id: "j_7",
        route: "flux/schnell",
        priority: "normal",
        fields: { cust: "c1", prio: "normal", mod: "image", fam: "flux", mdl: "schnell", task: "t2i" },
        request: "{}",
        serviceMs: 1000,
        capacity: 1,
      });
      expect(admitted.admitted).toBe(true);
      await sched.dispatch(1, [{ id: "b1", cap: 1, engine: "nunchaku", models: ["*"], ok: true }]);
      expect(await sched.cancel("j_7", "c1")).toBe("was_running");
      for (let i = 0; heard.length < 4; i++) {
        if (i > 1000) throw new Error(`heard only ${heard.join(", ")}`);
        await new Promise((res) => setTimeout(res, 5));
      }
      expect(heard).toEqual(["named: j_7 started", "legacy: j_7", "named: j_7 error", "legacy: j_7"]);
    } finally {
      listen.disconnect();
    }
  });
});
