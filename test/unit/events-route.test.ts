// The SSE route's edges without Redis (app.request, no port): Last-Event-ID parsing, and a failure
// inside the stream — logged through the app's logger, answered with a final `error` event that
// carries a code, never the internal message (and never console.error).
import { Writable } from "node:stream";
import { Hono } from "hono";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ApiEnv } from "../../src/api/context.js";
import type { ApiDeps } from "../../src/api/deps.js";
import type { Principal } from "../../src/api/auth.js";
import { eventRoutes, parseLastEventId } from "../../src/api/routes/events.js";

describe("parseLastEventId", () => {
  it.each([
    [undefined, 0],
    ["", 0],
    ["7", 7],
    ["7.3", 7],
    [" 12 ", 12],
    ["9007199254740991", 9_007_199_254_740_991],
    ["9007199254740992", 0],
    ["99999999999999999999999", 0],
    ["-1", 0],
    ["1e3", 0],
    ["0x10", 0],
    ["7.", 0],
    ["abc", 0],
  ])("%j → %d", (raw, expected) => {
    expect(parseLastEventId(raw)).toBe(expected);
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("a stream that fails", () => {
  it("logs through the app's logger and ends with a coded error event", async () => {
    const lines: string[] = [];
    const logger = pino(
      { level: "warn" },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    const consoleError = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const job = {
      id: "j_0123456789abcdefghijkl",
      customerId: "c",
      status: "queued",
      route: "flux/schnell",
      attemptLog: [],
    };
    const deps = {
      logger,
      clock: () => Date.now(),
      config: { heartbeatMs: 60_000, positionPollMs: 60_000 },
      hub: { on: () => () => undefined },
      present: { eventData: (_e: string, d: Record<string, unknown>) => d },
      store: {
        read: async () => ({ job, position: 0 }),
        events: () => Promise.reject(new Error("ERR value is not an integer or out of range")),
      },
    } as unknown as ApiDeps;
    const principal: Principal = { customerId: "c", tier: "free", admin: false, expiresAt: Infinity };
    const app = new Hono<ApiEnv>();
    app.use(async (c, next) => {
      c.set("principal", principal);
      await next();
    });
    app.route("/", eventRoutes(deps));

    const res = await app.request("/jobs/j_0123456789abcdefghijkl/events");
    const text = await res.text();
    expect(text).toMatch(/event: error\ndata: \{"code":"internal_error",[^\n]*"retriable":true\}/);
    expect(text).not.toContain("not an integer");
    expect(consoleError).not.toHaveBeenCalled();
    await vi.waitFor(() => expect(lines.join("")).toContain("event stream failed"));
    expect(lines.join("")).toContain("not an integer");
  });
});
