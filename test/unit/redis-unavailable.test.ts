// Which errors the API answers with a fast 503 `unavailable` (API.md §2) instead of a 500.
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { Hono } from "hono";
import { ReplyError as IoredisReplyError } from "ioredis";
import { createErrorHandler, isRedisUnavailable } from "../../src/api/problem.js";

/** The error class of Redis error replies as ioredis throws them (its message starts with the code). */
const ReplyError = IoredisReplyError as new (message: string) => Error;

describe("isRedisUnavailable", () => {
  it.each([
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
    "READONLY You can't write against a read only replica.",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "LOADING Redis is loading the dataset in memory",
    "CLUSTERDOWN The cluster is down",
    "MOVED 9309 127.0.0.1:41413",
    "ASK 9309 127.0.0.1:41413",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "NOREPLICAS Not enough good replicas to write.",
    "OOM command not allowed when used memory > 'maxmemory'.",
  ])("recognises the reply %s", (message) => {
    expect(isRedisUnavailable(new ReplyError(message))).toBe(true);
    expect(isRedisUnavailable(new Error(message))).toBe(true);
  });
  it.each([
    "Connection is closed.",
    "Stream isn't writeable and enableOfflineQueue options is false",
    "Command timed out",
    "connect ECONNREFUSED 127.0.0.1:6379",
    "Too many Cluster redirections. Last error: Error: Connection is closed.",
    "Cluster isn't ready and enableOfflineQueue options is false",
    "Failed to refresh slots cache.",
    "None of startup nodes is available",
    "Cluster is disconnected.",
  ])("recognises the connection failure %s", (message) => {
    expect(isRedisUnavailable(new Error(message))).toBe(true);
  });
  it.each([
    "ERR value is not an integer or out of range",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "BUSYKEY Target key name already exists.",
    "BUSYGROUP Consumer Group name already exists",
    "NOSCRIPT No matching script. Please use EVAL.",
    "a message that mentions READONLY later on",
  ])("leaves %s to the generic 500", (message) => {
    expect(isRedisUnavailable(new ReplyError(message))).toBe(false);
  });
  it("recognises a transaction Redis discarded because it was out of memory (EXECABORT)", () => {
    const execAbort = (...previous: string[]) =>
      Object.assign(new ReplyError("EXECABORT Transaction discarded because of previous errors."), {
        previousErrors: previous.map((m) => new ReplyError(m)),
      });
    expect(isRedisUnavailable(execAbort("OOM command not allowed when used memory > 'maxmemory'."))).toBe(
      true,
    );
    expect(isRedisUnavailable(execAbort("ERR wrong number of arguments for 'sadd' command"))).toBe(false);
    expect(isRedisUnavailable(execAbort())).toBe(false);
  });
});

describe("the error handler", () => {
  it("answers a MISCONF reply with 503 unavailable and Retry-After", async () => {
    const app = new Hono();
    app.onError(createErrorHandler(pino({ level: "silent" })));
    app.get("/boom", () => {
      throw new ReplyError("MISCONF Redis is configured to save RDB snapshots");
    });
    const res = await app.request("/boom");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as { error: string }).error).toBe("unavailable");
  });
});
