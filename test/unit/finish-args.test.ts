// finish.lua's arguments are built and read back by name through one helper (finish-args.ts).
import { describe, expect, it } from "vitest";
import { FINISH_ARGV, finishArgs, readFinishArgv, type FinishCall } from "../../src/queues/finish-args.js";

const call: FinishCall = {
  id: "j_abc",
  token: "0123456789ab.3",
  backend: "b1",
  now: 1_700_000_000_000,
  outcome: "retry",
  payload: '{"error":{"code":"backend_error"}}',
  maxAttempts: 3,
  retentionS: 86_400,
  retentionCount: 1000,
  slots: 2,
  backends: "[]",
  prefer: "{}",
  leaseTtlMs: 30_000,
  tokenBase: "fedcba987654.",
  syncOutput: Buffer.from("\x89PNG bytes"),
  withRecord: true,
};

describe("finish.lua's arguments", () => {
  it("read back by name as they were built, the prefix first", () => {
    const argv = ["{p}", ...finishArgs(call).map(String)];
    const read = readFinishArgv(argv);
    expect(read.prefix).toBe("{p}");
    for (const [name, value] of Object.entries(call)) {
      // a flag travels as "1" (or "")
      const sent = typeof value === "boolean" ? (value ? "1" : "") : String(value);
      expect(read[name as keyof FinishCall], name).toBe(sent);
    }
  });

  it("name every field of a call once", () => {
    expect(new Set(FINISH_ARGV).size).toBe(FINISH_ARGV.length);
    expect([...FINISH_ARGV.slice(1)].sort()).toEqual(Object.keys(call).sort());
    expect(finishArgs(call)).toHaveLength(FINISH_ARGV.length - 1);
  });
});
