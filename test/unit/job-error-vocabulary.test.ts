// The scheduler's Lua scripts write some job errors themselves (cancel, ttl expiry, a lost worker):
// every code and message they spell must be one of the fixed vocabulary (core/job-errors.ts).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { JOB_ERROR_MESSAGE } from "../../src/core/job-errors.js";

const LUA_DIR = join(import.meta.dirname, "..", "..", "src", "queues", "lua");

describe("job errors written by the Lua scripts", () => {
  it("use codes and messages of the fixed vocabulary", () => {
    const found: [string, string][] = [];
    for (const file of readdirSync(LUA_DIR).filter((f) => f.endsWith(".lua"))) {
      const src = readFileSync(join(LUA_DIR, file), "utf8").replace(/\s*\n\s*/g, " ");
      // terminate(<id>, "<status>", now, "<code>", "<message>" [.. more]
      for (const m of src.matchAll(/terminate\(\w+, "\w+", now, "(\w+)", "([^"]*)"/g)) {
        found.push([m[1]!, m[2]!]);
      }
    }
    expect(found.map(([code]) => code).sort()).toEqual(
      ["cancelled", "cancelled", "ttl_expired", "ttl_expired", "worker_lost"].sort(),
    );
    for (const [code, message] of found) {
      expect(Object.keys(JOB_ERROR_MESSAGE), code).toContain(code);
      // A message may go on (" (after N attempts)"), never differ.
      expect(message.startsWith(JOB_ERROR_MESSAGE[code as keyof typeof JOB_ERROR_MESSAGE]), code).toBe(true);
    }
  });
});
