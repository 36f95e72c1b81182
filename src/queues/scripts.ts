// Loads the scheduler's Lua scripts (lib.lua prepended to each) as ioredis commands (EVALSHA with
// an automatic EVAL fallback after a Redis restart flushed the script cache).
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";

export const SCRIPT_NAMES = [
  "admit",
  "dispatch",
  "finish",
  "cancel",
  "reap",
  "expire",
  "renew",
  "progress",
  "read",
] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

type Arg = string | number;
export type ScriptRunner = (name: ScriptName, routingKey: string, args: readonly Arg[]) => Promise<unknown>;

function loadSources(): Map<ScriptName, string> {
  const read = (file: string) => readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), "utf8");
  const lib = read("lib");
  return new Map(SCRIPT_NAMES.map((name) => [name, `${lib}\n${read(name)}`]));
}

/**
 * Defines the scripts on a client and returns a runner. Each script takes one routing key (so a
 * cluster client sends it to the prefix's slot) and the prefix as its first argument.
 */
export function defineScripts(client: Redis, prefix: string): ScriptRunner {
  for (const [name, lua] of loadSources()) {
    if (!(`rg_${name}` in client)) client.defineCommand(`rg_${name}`, { numberOfKeys: 1, lua });
  }
  const commands = client as unknown as Record<string, (...args: Arg[]) => Promise<unknown>>;
  return (name, routingKey, args) => {
    const fn = commands[`rg_${name}`];
    if (!fn) throw new Error(`script ${name} not defined`);
    return fn.call(client, routingKey, prefix, ...args);
  };
}
