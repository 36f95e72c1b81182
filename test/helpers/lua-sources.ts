// The scheduler's Lua sources as the tests read them: each script by name, lib.lua, the key names the
// scripts build with key(...), and lib.lua's top-level functions.
import { readdirSync, readFileSync } from "node:fs";
import { createKeys } from "../../src/queues/keys.js";
import { LIB_FILES, libSource } from "../../src/queues/scripts.js";

const LUA_DIR = new URL("../../src/queues/lua/", import.meta.url);

/**
 * Every .lua file of the scheduler: name (without .lua) -> source; the library's files
 * (scripts.ts LIB_FILES) as one, "lib" (each script gets the parts it uses).
 */
export function luaFiles(): Map<string, string> {
  const lib = new Set<string>(LIB_FILES);
  const files = new Map(
    readdirSync(LUA_DIR)
      .filter((f) => f.endsWith(".lua") && !lib.has(f.slice(0, -4)))
      .map((f) => [f.slice(0, -4), readFileSync(new URL(f, LUA_DIR), "utf8")]),
  );
  files.set("lib", libSource());
  return files;
}

/** A Lua source without its comments (block `--[[ ]]` and line `--`). */
export function withoutComments(lua: string): string {
  return lua.replace(/--\[\[[\s\S]*?\]\]/g, "").replace(/--[^\n]*/g, "");
}

/**
 * The key names a Lua source builds with key(...), prefix "P": string literals as they are, any
 * other argument as "*" (so `key("lease", b.id)` is "P:lease:*").
 */
export function luaKeyNames(lua: string): string[] {
  const out: string[] = [];
  for (const m of withoutComments(lua).matchAll(/(\bfunction )?\bkey\(([^()]*)\)/g)) {
    if (m[1] !== undefined) continue; // its definition
    const args = m[2]!.split(",").map((a) => a.trim());
    out.push(["P", ...args.map((a) => /^"([^"]*)"$/.exec(a)?.[1] ?? "*")].join(":"));
  }
  return out;
}

/** The names keys.ts defines for prefix "P", each parameter as "*". */
export function tsKeyNames(): Set<string> {
  const names = new Set<string>();
  for (const [field, value] of Object.entries(createKeys("P"))) {
    if (field === "prefix") continue;
    if (typeof value === "string") names.add(value);
    else if (typeof value === "function") {
      const fn = value as (...args: string[]) => string;
      names.add(fn(...Array.from({ length: fn.length }, () => "*")));
    }
  }
  return names;
}

/**
 * lib.lua split into regions: each top-level `local function name(...)` up to its `end` at the start
 * of a line, and "(top)" for the rest.
 */
export function libRegions(lib: string): Map<string, string> {
  const regions = new Map<string, string>();
  let top = "";
  const lines = withoutComments(lib).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = /^local function (\w+)\(/.exec(lines[i]!);
    if (!start) {
      top += `${lines[i]}\n`;
      continue;
    }
    let body = "";
    for (; i < lines.length; i++) {
      body += `${lines[i]}\n`;
      if (lines[i] === "end") break;
    }
    regions.set(start[1]!, body);
  }
  regions.set("(top)", top);
  return regions;
}
