// Loads the scheduler's Lua scripts (the return-code table and lib.lua prepended to each) as ioredis
// commands (EVALSHA with an automatic EVAL fallback after a Redis restart flushed the script cache),
// and sends script calls in capped pipelines when asked to (REDIS_PIPELINE_MAX; why:
// docs/decisions.md "Script pipelines").
import { readFileSync } from "node:fs";
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

type Arg = string | number;
export type ScriptRunner = (name: ScriptName, routingKey: string, args: readonly Arg[]) => Promise<unknown>;

export interface ScriptOptions {
  /**
   * 0: every call is its own command on the client (which may auto-pipeline it). n > 0: calls made
   * in one event-loop turn go out as pipelines of at most n, the first as soon as it is full, the
   * rest at the end of the turn; any number of pipelines may be in flight. All runners of one prefix
   * on one client share its batches, so they must agree on n.
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

interface PendingCall {
  readonly command: string;
  readonly args: readonly Arg[];
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** A pipeline as far as the batcher uses it: the defined script commands and exec. */
type ScriptPipeline = Record<string, (...args: readonly Arg[]) => unknown> & {
  exec(): Promise<[Error | null, unknown][] | null>;
};

interface Batcher {
  readonly max: number;
  readonly send: Send;
}

/**
 * Batchers by client and prefix: a pipeline holds the calls of one prefix only, so on a Cluster it
 * goes to the one node of that prefix's hash tag (ioredis refuses a pipeline across slots).
 */
const batchers = new WeakMap<RedisClient, Map<string, Batcher>>();

function createBatcher(client: RedisClient, max: number): Batcher {
  let pending: PendingCall[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    let sent: Promise<[Error | null, unknown][] | null>;
    try {
      const pipe = client.pipeline() as unknown as ScriptPipeline;
      for (const call of batch) {
        const fn = pipe[call.command];
        if (!fn) throw new Error(`script ${call.command} not defined`);
        fn.call(pipe, ...call.args);
      }
      sent = pipe.exec();
    } catch (err) {
      sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    sent.then(
      (replies) => {
        batch.forEach((call, i) => {
          const [err, value] = replies?.[i] ?? [new Error("pipeline reply missing"), undefined];
          if (err) call.reject(err);
          else call.resolve(value);
        });
      },
      (err: unknown) => {
        for (const call of batch) call.reject(err);
      },
    );
  };
  return {
    max,
    send: (command, args) =>
      new Promise((resolve, reject) => {
        pending.push({ command, args, resolve, reject });
        if (pending.length >= max) flush();
        else if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      }),
  };
}

/** The client's batcher of `prefix` for `max`, created on first use. */
function batcherFor(client: RedisClient, prefix: string, max: number): Batcher {
  let ofClient = batchers.get(client);
  if (!ofClient) batchers.set(client, (ofClient = new Map<string, Batcher>()));
  const existing = ofClient.get(prefix);
  if (existing) {
    if (existing.max !== max)
      throw new Error(`script pipelines on one client must agree: ${existing.max} vs ${max}`);
    return existing;
  }
  const created = createBatcher(client, max);
  ofClient.set(prefix, created);
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
    send = batcherFor(client, prefix, max).send;
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
