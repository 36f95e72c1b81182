// The idempotency reservation is one atomic Redis command (SET … NX GET): reserve, or read what holds
// the key, in the same step — never a SET then a GET (between which the holder could lapse).
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createIdempotency } from "../../src/api/idempotency.js";
import { isAppError } from "../../src/core/errors.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

let r: TestRedis;
let calls: { command: string; args: unknown[] }[];

beforeEach(() => {
  r = testRedis();
  calls = [];
});
afterEach(async () => {
  await r.cleanup();
});

/** The client, recording every command method called on it. */
function recorded(client: Redis): Redis {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function" || typeof prop !== "string") return value;
      return (...args: unknown[]) => {
        calls.push({ command: prop, args });
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return isAppError(err) ? err.code : undefined;
}

describe("idempotency reservation", () => {
  it("reserves, then answers 409 while pending, in one command per attempt", async () => {
    const idem = createIdempotency(recorded(r.client), r.prefix);
    expect(await idem.begin("c", "k", "fp")).toBeUndefined();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.command).toBe("set");
    expect(calls[0]!.args.slice(2)).toEqual(["EX", 60, "NX", "GET"]);

    calls = [];
    expect(await codeOf(idem.begin("c", "k", "fp"))).toBe("conflict");
    expect(await codeOf(idem.begin("c", "k", "other"))).toBe("idempotency_mismatch");
    expect(calls.map((c) => c.command)).toEqual(["set", "set"]);
  });

  it("replays a completed response, and lets the key be reused once abandoned", async () => {
    const idem = createIdempotency(r.client, r.prefix);
    await idem.begin("c", "k", "fp");
    const response = { status: 202, body: { id: "j_1" }, headers: { location: "/jobs/j_1" } };
    await idem.complete("c", "k", "fp", response);
    expect(await idem.begin("c", "k", "fp")).toEqual(response);
    expect(await codeOf(idem.begin("c", "k", "other"))).toBe("idempotency_mismatch");

    await idem.begin("c", "k2", "fp");
    await idem.abandon("c", "k2");
    expect(await idem.begin("c", "k2", "another body")).toBeUndefined();
  });

  it("keeps a pending reservation for a minute and a completed one for a day", async () => {
    const idem = createIdempotency(r.client, r.prefix);
    await idem.begin("c", "k", "fp");
    const [key] = await r.client.keys(`${r.prefix}:idem:*`);
    expect(await r.client.ttl(key!)).toBeGreaterThan(55);
    expect(await r.client.ttl(key!)).toBeLessThanOrEqual(60);
    await idem.complete("c", "k", "fp", { status: 202, body: {}, headers: {} });
    expect(await r.client.ttl(key!)).toBeGreaterThan(86_000);
  });
});
