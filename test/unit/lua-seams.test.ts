// The scheduler's scripts use the names of the TypeScript side (keys.ts, the return-code table) and
// change each kind of state in one lib.lua function only: the seams the next features hook into.
import { describe, expect, it } from "vitest";
import { SCRIPT_CODES, type ScriptRefusal } from "../../src/queues/script-codes.js";
import { libRegions, luaFiles, luaKeyNames, tsKeyNames, withoutComments } from "../helpers/lua-sources.js";

const files = luaFiles();
const lib = files.get("lib")!;
const scripts = [...files].filter(([name]) => name !== "lib");

/** Where `pattern` occurs: lib.lua's function names and the other scripts' file names. */
function placesOf(pattern: RegExp): string[] {
  const places: string[] = [];
  for (const [fn, body] of libRegions(lib)) if (pattern.test(body)) places.push(fn);
  for (const [name, src] of scripts) if (pattern.test(withoutComments(src))) places.push(`${name}.lua`);
  return places.sort();
}

describe("the scripts' key names", () => {
  it("are all defined in keys.ts", () => {
    const defined = tsKeyNames();
    const unknown: string[] = [];
    for (const [name, src] of files) {
      for (const k of luaKeyNames(src)) if (!defined.has(k)) unknown.push(`${name}.lua: ${k}`);
    }
    expect(unknown).toEqual([]);
    // the reader is not vacuous: it finds the keys of the order, the leases and the CAS
    const used = new Set([...files.values()].flatMap(luaKeyNames));
    for (const k of ["P:q", "P:job:*", "P:lease:*", "P:cas:pin", "P:own:*", "P:idem:*:*"]) {
      expect(used).toContain(k);
    }
  });

  it("have at most the three parts key() joins", () => {
    const longer = [...files].flatMap(([name, src]) =>
      luaKeyNames(src)
        .filter((k) => k.split(":").length > 4)
        .map((k) => `${name}.lua: ${k}`),
    );
    expect(longer).toEqual([]);
    // the check sees every part: a name of three parts comes out whole
    expect(luaKeyNames('key("q", "r", route)')).toEqual(["P:q:r:*"]);
  });
});

describe("the scripts' return codes", () => {
  it("come from the table, each returned by the scripts the table names", () => {
    const used = new Map<string, Set<string>>();
    for (const [name, src] of scripts) {
      for (const m of withoutComments(src).matchAll(/\bE\.(\w+)/g)) {
        const refusal = m[1]!;
        expect(Object.keys(SCRIPT_CODES), `${name}.lua uses E.${refusal}`).toContain(refusal);
        if (!used.has(refusal)) used.set(refusal, new Set());
        used.get(refusal)!.add(name);
      }
      // no bare negative reply codes
      expect(withoutComments(src), name).not.toMatch(/return\s*\{?\s*-\d/);
    }
    for (const refusal of Object.keys(SCRIPT_CODES) as ScriptRefusal[]) {
      expect([...(used.get(refusal) ?? [])].sort(), refusal).toEqual([...SCRIPT_CODES[refusal].from].sort());
    }
  });
});

describe("lib.lua's hooks", () => {
  it("compute every order key in order_key", () => {
    expect(placesOf(/SEQ_SPAN|ORDER_RESOLUTION/)).toEqual(["(top)", "order_key"]);
    // defined once, called by the admission (a queued job's key is fixed there for good)
    expect(placesOf(/\border_key\(/)).toEqual(["admit.lua", "order_key"]);
  });

  it("add every job event in add_event", () => {
    expect(placesOf(/"RPUSH", key\("ev"/)).toEqual(["add_event"]);
  });

  it("change queue membership only in queue_join and queue_leave", () => {
    expect(placesOf(/"(ZADD|ZREM)", key\("q"\)/)).toEqual(["queue_join", "queue_leave"]);
  });

  it("change slot leases only in running_join and running_leave (renewal aside)", () => {
    expect(placesOf(/"(ZADD|ZREM)", (key\("lease"|lk\b)/)).toEqual([
      "renew.lua",
      "running_join",
      "running_leave",
    ]);
  });

  it("make every terminal transition in end_job", () => {
    expect(placesOf(/"completed"/)).toEqual(["end_job"]);
    expect(placesOf(/\bretire\(id/)).toEqual(["end_job", "retire"]);
    expect(placesOf(/"status", "(complete|error|cancelled)"/)).toEqual([]);
    // the metering of a settled attempt, and the token of an attempt that ended with its job
    expect(placesOf(/"HSET", [^\n]*"gpu_ms"/)).toEqual(["end_job"]);
    expect(placesOf(/"HDEL", [^\n]*"token"/)).toEqual(["requeue"]);
  });

  it("spell attempt ids and split routes in one function each", () => {
    expect(placesOf(/"\|"|\|\(/)).toEqual(["attempt_id", "attempt_parts"]);
    expect(placesOf(/\[\^@\]/)).toEqual(["route_parts"]);
  });
});
