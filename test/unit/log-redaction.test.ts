// The process logger drops bearer tokens and API keys wherever a log line may carry them, including
// a request's headers; a failing request's log line names the caller by customer and key prefix only.
import { Writable } from "node:stream";
import { Hono } from "hono";
import { ReplyError } from "ioredis";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/infra/logger.js";
import { createErrorHandler } from "../../src/api/problem.js";
import type { Principal } from "../../src/api/auth.js";

const KEY = "rk_abcdefghij12_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq";

/** createLogger writing to memory. */
function capture(): { logger: ReturnType<typeof createLogger>; lines: () => string } {
  let out = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString("utf8");
      done();
    },
  });
  return { logger: createLogger({ level: "trace", destination: stream }), lines: () => out };
}

describe("log redaction", () => {
  it("never writes an authorization header, token, API key or pepper", () => {
    const { logger, lines } = capture();
    logger.info({ authorization: `Bearer ${KEY}` }, "top");
    logger.info({ req: { headers: { authorization: `Bearer ${KEY}` } } }, "nested headers");
    logger.info({ headers: { authorization: `Bearer ${KEY}` } }, "headers");
    logger.info({ auth: { token: KEY, apiKey: KEY, pepper: KEY } }, "one level down");
    logger.info({ apiKey: KEY, token: KEY, secret: KEY, pepper: KEY }, "top names");
    expect(lines().split("\n").filter(Boolean)).toHaveLength(5);
    expect(lines()).not.toContain(KEY.slice(16));
  });

  it("drops a Redis error's command arguments (a script's carry the request, prompt included)", async () => {
    const { logger, lines } = capture();
    const PROMPT = "a fox in the snow, by a secret artist";
    // as ioredis rejects a command: a ReplyError with the command it answered attached
    const err = Object.assign(new ReplyError("ERR value is not an integer or out of range"), {
      command: { name: "evalsha", args: ["1a2b", "1", "{rg}:job:j_x", PROMPT] },
    });
    logger.error({ err }, "admission failed");
    logger.error({ error: err }, "under another name");
    logger.error({ err: new Error("outer", { cause: err }) }, "as a cause");
    const app = new Hono();
    app.get("/", () => {
      throw err;
    });
    app.onError(createErrorHandler(logger));
    expect((await app.request("/")).status).toBe(500);
    expect(lines().split("\n").filter(Boolean)).toHaveLength(4);
    expect(lines()).not.toContain(PROMPT);
    expect(lines()).toContain("evalsha");
  });

  it("names the caller of a failing request by customer and key prefix only", async () => {
    const { logger, lines } = capture();
    const app = new Hono();
    const who: Principal = {
      customerId: "c-9",
      tier: "pro",
      admin: false,
      expiresAt: 1,
      keyPrefix: "abcdefghij12",
    };
    app.use(async (c, next) => {
      c.set("principal" as never, who as never);
      await next();
    });
    app.get("/", () => {
      throw new Error("boom");
    });
    app.onError(createErrorHandler(logger));
    const res = await app.request("/", { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(500);
    const line = JSON.parse(lines().trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ customer: "c-9", key_prefix: "abcdefghij12", msg: "unhandled error" });
    expect(lines()).not.toContain(KEY.slice(16));
  });
});
