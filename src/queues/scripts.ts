// Loads the scheduler's Lua scripts (each with what it uses of the library prepended and its return
// codes written out) as ioredis commands (EVALSHA with an automatic EVAL fallback after a Redis
// restart flushed the script cache), and sends script calls in capped pipelines when asked to
// (REDIS_PIPELINE_MAX; why: docs/decisions.md "Script pipelines").
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import type { RedisClient } from "../infra/redis-client.js";
import { withLuaCodes } from "./script-codes.js";

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
  "lim_take",
  "lim_add",
  "lim_release",
  "lim_claim",
  "lim_probe",
  "lim_held",
  "lim_grant",
  "lim_lapsed",
] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

type Arg = string | number | Buffer;
/** `now`: the call is a batch of its own, written at once with what its batch holds so far. */
export interface CallOptions {
  readonly now?: boolean;
}
export type ScriptRunner = (
  name: ScriptName,
  routingKey: string,
  args: readonly Arg[],
  options?: CallOptions,
) => Promise<unknown>;

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

/** A top-level definition of the library: a `local function` (to its `end`) or a one-line `local`. */
interface LibUnit {
  readonly name: string;
  readonly text: string;
  /** The library's names its text uses (other than its own). */
  readonly uses: readonly string[];
}

/** Comments out of a Lua source (block `--[[ ]]` and line `--`); strings hold no `--` in ours. */
function withoutComments(lua: string): string {
  return lua.replace(/--\[\[[\s\S]*?\]\]/g, "").replace(/--[^\n]*/g, "");
}

/**
 * The library split into its top-level definitions, in order: each `local function name(...)` up to
 * the `end` that starts a line, and each one-line `local NAME = ...`. Anything else at the top level
 * is refused (it would have to run in every script).
 */
function libUnits(lib: string): LibUnit[] {
  const lines = withoutComments(lib).split("\n");
  const found: { name: string; text: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const fn = /^local function ([A-Za-z_]\w*)\(/.exec(line);
    if (fn) {
      const body = [line];
      while (lines[i] !== "end") {
        i += 1;
        if (i >= lines.length)
          throw new Error(`lib: function ${fn[1]!} has no closing "end" at a line's start`);
        body.push(lines[i]!);
      }
      found.push({ name: fn[1]!, text: body.join("\n") });
      continue;
    }
    const value = /^local ([A-Za-z_]\w*) = .+$/.exec(line);
    if (!value) throw new Error(`lib: a top-level statement that is no definition: ${line}`);
    found.push({ name: value[1]!, text: line });
  }
  const names = new Set(found.map((u) => u.name));
  return found.map((u) => ({
    ...u,
    uses: [...new Set(u.text.match(/\b[A-Za-z_]\w*\b/g) ?? [])].filter((w) => w !== u.name && names.has(w)),
  }));
}

/**
 * The library's definitions a script uses (its own text's names, and what those use in turn), in the
 * library's order. Redis runs a script's whole text on every call, so every function and table it
 * defines costs each call: the whole library took about 10 µs of Redis CPU per call, what admit.lua
 * uses of it about 3 µs (docs/decisions.md "Fair share", the cost of an admission).
 */
function libFor(units: readonly LibUnit[], own: string): string {
  const byName = new Map(units.map((u) => [u.name, u]));
  const needed = new Set<string>();
  const visit = (name: string) => {
    if (needed.has(name)) return;
    const unit = byName.get(name);
    if (unit === undefined) return;
    needed.add(name);
    for (const used of unit.uses) visit(used);
  };
  for (const word of withoutComments(own).match(/\b[A-Za-z_]\w*\b/g) ?? []) visit(word);
  return units
    .filter((u) => needed.has(u.name))
    .map((u) => u.text)
    .join("\n");
}

/**
 * The scripts' sources as Redis runs them: the library's definitions the script uses
 * ({@link libFor}), then the script, with the return codes `E.<name>` written out as numbers.
 */
export function scriptSources(): Map<ScriptName, string> {
  const units = libUnits(libSource());
  return new Map(
    SCRIPT_NAMES.map((name) => {
      const own = readLua(name);
      return [name, withLuaCodes(`${libFor(units, own)}\n${own}`)];
    }),
  );
}

type Send = (command: string, args: readonly Arg[], options?: CallOptions) => Promise<unknown>;

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
    send(command, args, options) {
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
      if (corked !== undefined && (++written >= max || options?.now === true)) release();
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
  return (name, routingKey, args, options) => send(`rg_${name}`, [routingKey, prefix, ...args], options);
}
