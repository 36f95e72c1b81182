// Loads the scheduler's Lua scripts (the return-code table and lib.lua prepended to each) as ioredis
// commands (EVALSHA with an automatic EVAL fallback after a Redis restart flushed the script cache),
// and sends script calls in capped pipelines when asked to (REDIS_PIPELINE_MAX; why:
// docs/decisions.md "Script pipelines").
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import type { RedisClient } from "../infra/redis-client.js";
import { luaCodeTable } from "./script-codes.js";

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
  "admit_resolve",
  "idem_begin",
  "idem_release",
  "refs",
  "unlock",
  "bill",
  "asset_claim",
  "asset_settle",
  "ws_lease",
  "compliance_add",
  "audit_stage",
  "audit_lock",
  "audit_commit",
  "audit_checkpoint",
  "audit_restore",
] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

type Arg = string | number | Buffer;
export type ScriptRunner = (name: ScriptName, routingKey: string, args: readonly Arg[]) => Promise<unknown>;

export interface ScriptOptions {
  /**
   * 0: every call is its own command on the client (which may auto-pipeline it). n > 0: calls made
   * in one event-loop turn go out as pipelines of at most n, the first as soon as it is full, the
   * rest at the end of the turn; any number of pipelines may be in flight. All runners on one client
   * share its batches, so they must agree on n.
   */
  readonly pipelineMax?: number;
}

/** The library every script starts with, in this order: lib.lua (the hooks), lib_dispatch.lua. */
export const LIB_FILES = ["lib", "lib_dispatch"] as const;

const readLua = (file: string) => readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), "utf8");

/** The library's source: {@link LIB_FILES} joined. */
export function libSource(): string {
  return LIB_FILES.map(readLua).join("\n");
}

/** The local functions a Lua source defines at its top level. */
function definedFunctions(source: string): string[] {
  return [...source.matchAll(/^local function ([A-Za-z_][A-Za-z0-9_]*)/gm)].map((m) => m[1]!);
}

/**
 * The scripts' sources as Redis runs them: the return-code table `E` and lib_dispatch.lua each only in
 * the scripts that use them (Redis runs a script's whole text on every call, so every table and
 * function it defines costs each call: about 2 µs for lib_dispatch.lua), lib.lua always, then the
 * script.
 */
export function scriptSources(): Map<ScriptName, string> {
  const [base, dispatch] = LIB_FILES.map(readLua) as [string, string];
  const dispatchUse = new RegExp(`\\b(?:${definedFunctions(dispatch).join("|")})\\(`);
  const codes = luaCodeTable();
  return new Map(
    SCRIPT_NAMES.map((name) => {
      const own = readLua(name);
      const lib = dispatchUse.test(own) ? `${base}\n${dispatch}` : base;
      return [name, `${/\bE\./.test(own) ? `${codes}\n` : ""}${lib}\n${own}`];
    }),
  );
}

type Send = (command: string, args: readonly Arg[]) => Promise<unknown>;

/** A script ioredis defined on a client (`defineCommand`): EVALSHA, EVAL on first use per socket. */
interface DefinedScript {
  execute(container: RedisClient, args: Arg[], options: { replyEncoding: "utf8" }): Promise<unknown>;
}

interface Batcher {
  readonly max: number;
  readonly send: Send;
}

const batchers = new WeakMap<RedisClient, Batcher>();

/**
 * Script calls written straight to the client's socket while it is corked: the calls of one
 * event-loop turn leave in one write (at most `max` per write; the socket is uncorked when `max`
 * calls are in it, and at the end of the turn). The same bytes on the wire as an ioredis pipeline,
 * without building one (a Pipeline copies every defined script and command onto a new object: about
 * 15 µs of CPU per pipeline with this project's scripts), and each call is its own command, so a
 * call's error, timeout and NOSCRIPT retry stay with it. Calls bypass ioredis's auto-pipelining (one
 * pipeline in flight: the convoy of docs/decisions.md "Script pipelines"); any number of writes may be
 * in flight.
 */
function createBatcher(client: RedisClient, max: number): Batcher {
  const scripts = (client as unknown as { scriptsSet: Record<string, DefinedScript | undefined> }).scriptsSet;
  let corked: Redis["stream"] | undefined;
  let written = 0;
  let scheduled = false;
  const release = () => {
    const stream = corked;
    corked = undefined;
    written = 0;
    stream?.uncork();
  };
  const endOfTurn = () => {
    scheduled = false;
    release();
  };
  return {
    max,
    send(command, args) {
      const script = scripts[command];
      if (!script) return Promise.reject(new Error(`script ${command} not defined`));
      if (corked === undefined) {
        // Not ready: ioredis refuses or queues the call without touching the socket. A Cluster has
        // a socket per node and none of its own: its calls go out one by one, each to its slot's
        // node (no cross-slot batch to refuse).
        const stream = client.status === "ready" && "stream" in client ? client.stream : undefined;
        if (stream?.writable === true) {
          stream.cork();
          corked = stream;
        }
        if (!scheduled) {
          scheduled = true;
          setImmediate(endOfTurn);
        }
      }
      const reply = script.execute(client, [...args], { replyEncoding: "utf8" });
      if (corked !== undefined && ++written >= max) release();
      return reply;
    },
  };
}

/** The client's batcher for `max`, created on first use. */
function batcherFor(client: RedisClient, max: number): Batcher {
  const existing = batchers.get(client);
  if (existing) {
    if (existing.max !== max)
      throw new Error(`script pipelines on one client must agree: ${existing.max} vs ${max}`);
    return existing;
  }
  const created = createBatcher(client, max);
  batchers.set(client, created);
  return created;
}

/**
 * Defines the scripts on a client and returns a runner. Each script takes one routing key (so a
 * cluster client sends it to the prefix's slot) and the prefix as its first argument.
 */
export function defineScripts(
  client: RedisClient,
  prefix: string,
  options: ScriptOptions = {},
): ScriptRunner {
  for (const [name, lua] of scriptSources()) {
    if (!(`rg_${name}` in client)) client.defineCommand(`rg_${name}`, { numberOfKeys: 1, lua });
  }
  const max = options.pipelineMax ?? 0;
  let send: Send;
  if (max > 0) {
    send = batcherFor(client, max).send;
  } else {
    const commands = client as unknown as Record<string, (...args: readonly Arg[]) => Promise<unknown>>;
    send = (command, args) => {
      const fn = commands[command];
      if (!fn) throw new Error(`script ${command} not defined`);
      return fn.call(client, ...args);
    };
  }
  return (name, routingKey, args) => send(`rg_${name}`, [routingKey, prefix, ...args]);
}
