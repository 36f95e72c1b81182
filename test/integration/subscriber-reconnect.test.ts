// The subscriber profile across a lost connection (src/infra/redis.ts): its channels are subscribed
// again on the new connection, and a connection closed at any moment of the reconnect leaves no
// promise unobserved. ioredis's own resubscription (`autoResubscribe`) sends its SUBSCRIBE without
// observing it: a subscriber closed while the ready check of its reconnect is answered turned ready
// on that answer, its SUBSCRIBE waited in the offline queue and was rejected "Connection is closed."
// with nobody listening (the unhandled rejections of rate-limits.test.ts, one per subscriber).
import { Redis } from "ioredis";
import { afterEach, beforeEach, expect, it } from "vitest";
import { closeRedis, createRedis } from "../../src/infra/redis.js";
import type { RedisClient } from "../../src/infra/redis-client.js";
import { until } from "../helpers/processes.js";
import { redisUrl, uniquePrefix } from "../helpers/redis.js";
import { startFaultProxy, type FaultProxy } from "../helpers/tcp-proxy.js";

let proxy: FaultProxy;
let admin: Redis;
let sub: RedisClient | undefined;
let prefix: string;
beforeEach(async () => {
  proxy = await startFaultProxy(redisUrl());
  admin = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  prefix = uniquePrefix();
});
afterEach(async () => {
  if (sub) await closeRedis(sub);
  sub = undefined;
  await proxy.close();
  admin.disconnect();
});

/** Drops the connection(s) named `name` on the server's side (CLIENT KILL), as a lost Redis would. */
async function dropConnection(name: string): Promise<void> {
  const list = await admin.client("LIST");
  const ids = [...String(list).matchAll(/^id=(\d+) .*\bname=(\S*)/gm)]
    .filter((m) => m[2] === name)
    .map((m) => m[1]!);
  expect(ids.length).toBeGreaterThan(0);
  for (const id of ids) await admin.client("KILL", "ID", id);
}

/** Resolves once `client` has ended for good. */
const ended = (client: RedisClient) =>
  new Promise<void>((resolve) => {
    if (client.status === "end") resolve();
    else client.once("end", () => resolve());
  });

it("subscribes again after a lost connection to the channels it was subscribed to, and only those", async () => {
  const name = "rg-test-resub";
  sub = createRedis({ kind: "url", url: proxy.url }, "subscriber", name);
  const kept = `${prefix}:ch:kept`;
  const left = `${prefix}:ch:left`;
  const heard: string[] = [];
  sub.on("message", (ch: string, m: string) => heard.push(`${ch === kept ? "kept" : "left"}:${m}`));
  await sub.subscribe(kept, left);
  await sub.unsubscribe(left);
  await dropConnection(name);
  await until(
    "a message on the kept channel after the reconnect",
    async () => {
      await admin.publish(kept, "after");
      return heard.includes("kept:after") ? true : undefined;
    },
    15_000,
    20,
  );
  const [, leftSubscribers] = (await admin.pubsub("NUMSUB", left)) as [string, number];
  expect(leftSubscribers).toBe(0);
  expect(heard.filter((h) => h.startsWith("left"))).toEqual([]);
});

it("closed while the ready check of its reconnect is answered, leaves no rejection unobserved", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    const name = "rg-test-resub-close";
    const client = createRedis({ kind: "url", url: proxy.url }, "subscriber", name);
    sub = client;
    await client.subscribe(`${prefix}:ch:a`, `${prefix}:ch:b`);
    // The ready check of the next connection (INFO) reaches Redis; its answer waits in the proxy.
    const answer = proxy.holdRepliesAfter("\r\ninfo\r\n");
    await dropConnection(name);
    await answer.replied;
    expect(client.status).toBe("connect");
    // The answer is on its way as the connection is closed: the shutdown of a process meeting the
    // reconnect of its subscriber. The client reads it after its own FIN and turns ready.
    let closing = false;
    let readyWhileClosing = false;
    client.once("ready", () => (readyWhileClosing = closing));
    answer.release();
    closing = true;
    await closeRedis(client);
    await ended(client);
    // An unhandled rejection is reported once the ticks and microtasks of this turn have run.
    await new Promise((r) => setImmediate(r));
    expect(readyWhileClosing, "the client turned ready after it was closed").toBe(true);
    expect(
      unhandled.map((e) => String(e)),
      "rejections nobody observed",
    ).toEqual([]);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});
