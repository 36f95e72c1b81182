// End-to-end harness: runs `node bin/render-gateway.js <command>` as real child processes with a
// throwaway environment (unique REDIS_PREFIX on the run's redis-server, temp DATA_DIR, PORT=0),
// waits for readiness through the files the roles write under DATA_DIR/run, captures stdout/stderr
// for failure messages, stops with SIGTERM (SIGKILL after a timeout) and checks the exit code, then
// removes the prefix's Redis keys and the temp directories. Nothing it starts outlives the test file.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { inject } from "vitest";
import { randomAlnum } from "../../src/core/ids.js";
import { signToken, type TierName } from "../../src/api/auth.js";
import {
  freeLoopbackPort,
  isAlive,
  spawnRedisServer,
  type RedisServer,
} from "../../src/infra/embedded-redis.js";
import type { SimStats } from "../../src/sim/stats.js";
import { servesModel } from "../../src/config/backends.js";
import { createKeys } from "../../src/queues/keys.js";

export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BIN = resolve(PROJECT_ROOT, "bin/render-gateway.js");
/** JWT_SECRET of every e2e process unless a test removes it (≥ 32 characters). */
export const E2E_SECRET = "e2e-secret-0123456789-abcdefghijklmnopqrstuv";

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when SIGTERM did not end the process in time and SIGKILL did. */
  readonly forced: boolean;
}

const live = new Set<ChildProcess>();
const liveRedis = new Set<RedisServer>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort (a crashed test worker): no child survives this process.
  process.once("exit", () => {
    for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const r of liveRedis) void r.kill("SIGKILL");
  });
}

const tail = (s: string, n = 4000) => (s.length > n ? `…${s.slice(-n)}` : s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** `p`'s value, or undefined when `ms` pass first; the timer never outlives the wait. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One child process with its captured output. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = "";
  private err = "";
  private stopping: Promise<ExitInfo> | undefined;
  private paused = false;
  /** Set when a test ran the command to its end and checks its exit itself. */
  awaited = false;

  constructor(
    readonly name: string,
    readonly args: readonly string[],
    readonly env: Readonly<Record<string, string>>,
    cwd: string = PROJECT_ROOT,
    readonly group = false,
  ) {
    installExitHook();
    this.child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: group,
    });
    live.add(this.child);
    this.child.stdout?.setEncoding("utf8").on("data", (d: string) => (this.out += d));
    this.child.stderr?.setEncoding("utf8").on("data", (d: string) => (this.err += d));
    this.exited = new Promise((res) => {
      this.child.once("exit", (code, signal) => {
        live.delete(this.child);
        res({ code, signal });
      });
      this.child.once("error", (e) => {
        this.err += `\n[spawn error] ${e.message}`;
        live.delete(this.child);
        res({ code: null, signal: null });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }
  get stdout(): string {
    return this.out;
  }
  get stderr(): string {
    return this.err;
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Name, command, exit state and the tail of both streams: for failure messages. */
  describe(): string {
    const state = this.running
      ? "running"
      : `exited code=${String(this.child.exitCode)} signal=${String(this.child.signalCode)}`;
    return [
      `[${this.name}] render-gateway ${this.args.join(" ")} (pid ${this.pid}, ${state})`,
      `--- stdout ---\n${tail(this.out)}`,
      `--- stderr ---\n${tail(this.err)}`,
    ].join("\n");
  }

  /** Resolves with `check()`'s value; fails early (with the output) when the process exits first. */
  async waitUntil<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (!this.running) throw new Error(`${what}: the process exited first\n${this.describe()}`);
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${this.describe()}`);
      await sleep(50);
    }
  }

  /** The trimmed content of a file once it exists and is non-empty. */
  waitForFile(path: string, timeoutMs = 30_000): Promise<string> {
    return this.waitUntil(
      `waiting for ${path}`,
      () => {
        if (!existsSync(path)) return undefined;
        const text = readFileSync(path, "utf8").trim();
        return text === "" ? undefined : text;
      },
      timeoutMs,
    );
  }

  /** Waits for the process to end by itself (a command like `token`). */
  async wait(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const r = await within(this.exited, timeoutMs);
    if (r === undefined) {
      this.child.kill("SIGKILL");
      await this.exited;
      throw new Error(`did not exit within ${timeoutMs} ms\n${this.describe()}`);
    }
    return r;
  }

  /** Sends a signal now (no waiting). */
  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /**
   * Sends a signal to the whole process group now, as a terminal's Ctrl-C does to its foreground
   * job (started with `group`): every process in it that did not leave it gets the signal.
   */
  signalGroup(sig: NodeJS.Signals): void {
    if (!this.group) throw new Error(`${this.name} was not started with group: true`);
    if (this.running && this.child.pid !== undefined) process.kill(-this.child.pid, sig);
  }

  /** SIGSTOP: the process freezes with its sockets open and its timers stopped (a hung worker). */
  pause(): void {
    if (!this.running) return;
    this.child.kill("SIGSTOP");
    this.paused = true;
  }

  /** SIGCONT after {@link pause}. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.running) this.child.kill("SIGCONT");
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`. Idempotent. A paused process is resumed first. */
  stop(timeoutMs = 15_000): Promise<ExitInfo> {
    this.stopping ??= (async () => {
      if (!this.running) return { ...(await this.exited), forced: false };
      this.resume();
      this.child.kill("SIGTERM");
      const r = await within(this.exited, timeoutMs);
      if (r) return { ...r, forced: false };
      this.child.kill("SIGKILL");
      return { ...(await this.exited), forced: true };
    })();
    return this.stopping;
  }

  /** SIGKILL now (no clean exit expected; `stopAll` does not count it as an unclean stop). */
  async kill(): Promise<void> {
    if (this.running) this.child.kill("SIGKILL");
    await this.exited;
    this.paused = false;
    this.stopping ??= Promise.resolve({ code: null, signal: "SIGKILL", forced: false });
  }
}

/** A `start` process whose API is listening. */
export interface Gateway {
  readonly proc: CliProcess;
  readonly url: string;
}

export interface SpawnOptions {
  /** Variables added to (or, with `undefined`, removed from) the harness's base environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly dataDir?: string;
  readonly name?: string;
  readonly cwd?: string;
  /** Starts the process as the leader of a process group of its own, as a shell's job (see `signalGroup`). */
  readonly group?: boolean;
}

/**
 * Per-file harness. `redis: "shared"` uses the run's redis-server (`inject("redisUrl")`) under a
 * unique prefix; `"none"` leaves REDIS_URL unset (the process embeds its own server).
 */
export class E2eHarness {
  readonly prefix = `{e2e${randomAlnum(10)}}`;
  readonly redisUrl: string;
  readonly dataDir: string;
  private readonly dirs: string[] = [];
  private readonly procs: CliProcess[] = [];
  private readonly redisServers: SpawnedRedis[] = [];
  private client: Redis | undefined;

  constructor(readonly opts: { redis?: "shared" | "none" } = {}) {
    this.redisUrl = opts.redis === "none" ? "" : inject("redisUrl");
    this.dataDir = this.tempDir();
  }

  tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), "rg-e2e-"));
    this.dirs.push(d);
    return d;
  }

  /** A file in a temp dir of this harness. */
  writeFile(name: string, content: string): string {
    const path = join(this.tempDir(), name);
    writeFileSync(path, content);
    return path;
  }

  env(extra: Readonly<Record<string, string | undefined>> = {}, dataDir = this.dataDir) {
    const base: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: process.env.TMPDIR,
      LANG: process.env.LANG,
      DATA_DIR: dataDir,
      PORT: "0",
      HOST: "127.0.0.1",
      JWT_SECRET: E2E_SECRET,
      LOG_LEVEL: "warn",
      REDIS_PREFIX: this.prefix,
      REDIS_URL: this.redisUrl || undefined,
      LOCK_MS: "3000",
      STALLED_INTERVAL_MS: "500",
      HEALTH_INTERVAL_MS: "500",
      SHUTDOWN_GRACE_MS: "3000",
      SIM_STEP_MS: "10",
      // no embedded clickhouse-server per `start` unless a test asks for analytics (ANALYTICS: undefined)
      ANALYTICS: "off",
      ...extra,
    };
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
    return env;
  }

  spawn(args: readonly string[], o: SpawnOptions = {}): CliProcess {
    const p = new CliProcess(
      o.name ?? args.join(" "),
      args,
      this.env(o.env, o.dataDir ?? this.dataDir),
      o.cwd ?? PROJECT_ROOT,
      o.group ?? false,
    );
    this.procs.push(p);
    return p;
  }

  /** Runs a command to its end. */
  async run(args: readonly string[], o: SpawnOptions & { timeoutMs?: number } = {}) {
    const p = this.spawn(args, o);
    p.awaited = true;
    const r = await p.wait(o.timeoutMs ?? 30_000);
    return { ...r, stdout: p.stdout, stderr: p.stderr, proc: p };
  }

  /** `start [--roles R]` and, when the api role runs, waits for DATA_DIR/run/api.url. */
  async start(roles: string | undefined, o: SpawnOptions & { wait?: "api" | "sim" | "none" } = {}) {
    const dataDir = o.dataDir ?? this.dataDir;
    const wait = o.wait ?? (roles === undefined || roles.split(",").includes("api") ? "api" : "none");
    const file = wait === "none" ? undefined : join(dataDir, "run", `${wait}.url`);
    if (file) rmSync(file, { force: true });
    const args = roles === undefined ? ["start"] : ["start", "--roles", roles];
    const proc = this.spawn(args, { ...o, dataDir, name: o.name ?? `start ${roles ?? "(all)"}` });
    const url = file ? await proc.waitForFile(file, 60_000) : "";
    if (wait === "api") {
      // api.url is written as soon as the server listens; the banner comes last, once every role runs.
      const banner = `render-gateway is up at ${url}`;
      await proc.waitUntil("waiting for the start banner", () =>
        proc.stdout.includes(banner) ? true : undefined,
      );
    }
    return { proc, url } satisfies Gateway;
  }

  /**
   * `start --roles worker` (no readiness file: `wait: "none"`), then waits until it has published
   * backend `backendId` (see {@link waitForWorkerBackend}).
   */
  async startWorker(backendId: string, o: SpawnOptions = {}): Promise<CliProcess> {
    const { proc } = await this.start("worker", { ...o, wait: "none" });
    await this.waitForWorkerBackend(proc, backendId);
    return proc;
  }

  /** A Redis client on the shared server (for readiness checks and cleanup). */
  redis(): Redis {
    this.client ??= new Redis(this.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    return this.client;
  }

  /** Waits until some worker process has published its backends under this prefix. */
  async waitForWorker(proc: CliProcess, timeoutMs = 60_000): Promise<void> {
    await proc.waitUntil(
      "waiting for the worker to publish its backends",
      async () => ((await this.redis().hlen(createKeys(this.prefix).registry)) > 0 ? true : undefined),
      timeoutMs,
    );
  }

  /**
   * Waits until the worker process `proc` has published backend `backendId`: its breaker state, under
   * the worker's id, which carries the pid.
   */
  async waitForWorkerBackend(proc: CliProcess, backendId: string, timeoutMs = 60_000): Promise<void> {
    await proc.waitUntil(
      `${proc.name} publishes its backend`,
      async () => {
        const fields = await this.redis().hkeys(createKeys(this.prefix).breakers(backendId));
        return fields.some((f) => f.includes(`-${proc.pid}-`)) ? true : undefined;
      },
      timeoutMs,
    );
  }

  /** A dedicated redis-server (for tests that kill it or need other settings). */
  async spawnRedis(extraArgs: readonly string[] = [], o: RedisServerOptions = {}): Promise<SpawnedRedis> {
    const r = await spawnRedis(this.tempDir(), extraArgs, o);
    this.redisServers.push(r);
    return r;
  }

  /**
   * A dedicated redis-server with the project's redis.conf (AOF, `appendfsync everysec`,
   * noeviction) in a temp dir: what `start` runs embedded, for tests that crash and restart it.
   */
  durableRedis(extraArgs: readonly string[] = []): Promise<SpawnedRedis> {
    return this.spawnRedis(extraArgs, { conf: REDIS_CONF });
  }

  /**
   * `render-gateway sim-backend` on a free port (its own DATA_DIR); resolves once it listens.
   * `env` adds SIM_* settings (SIM_STEP_MS, SIM_CAPACITY…).
   */
  async simBackend(o: SpawnOptions = {}): Promise<Gateway> {
    const port = await freeLoopbackPort();
    const proc = this.spawn(["sim-backend"], {
      name: o.name ?? "sim-backend",
      dataDir: o.dataDir ?? this.tempDir(),
      ...(o.cwd ? { cwd: o.cwd } : {}),
      env: { SIM_PORT: String(port), ...o.env },
    });
    const url = await proc.waitUntil("waiting for the simulator to listen", () => {
      const m = /simulated GPU backend listening on (\S+)/.exec(proc.stdout);
      return m ? m[1] : undefined;
    });
    return { proc, url };
  }

  /** A BACKENDS_FILE (JSON) in a temp dir; each entry gets the schema's defaults for what it omits. */
  backendsFile(backends: readonly BackendEntry[]): string {
    const full = backends.map((b) => ({
      engine: "nunchaku",
      capacity: 4,
      models: ["*"],
      streaming: false,
      timeout_ms: 120_000,
      ...b,
    }));
    return this.writeFile("backends.json", JSON.stringify({ backends: full }, null, 2));
  }

  /**
   * Stops every process still running (SIGTERM, SIGKILL fallback) and returns those that did not
   * exit cleanly with code 0 (described, for the failure message).
   */
  async stopAll(): Promise<string[]> {
    const bad: string[] = [];
    for (const p of [...this.procs].reverse()) {
      if (p.awaited && !p.running) continue;
      const r = await p.stop();
      if (r.signal === "SIGKILL" && !r.forced) continue; // killed on purpose by the test
      if (r.forced || r.code !== 0)
        bad.push(`${r.forced ? "needed SIGKILL" : `exit code ${String(r.code)}`}\n${p.describe()}`);
    }
    return bad;
  }

  /** Everything down and removed; throws when some process did not stop cleanly. */
  async cleanup(): Promise<void> {
    const bad = await this.stopAll();
    // Embedded servers left behind by a process that had to be killed.
    for (const d of this.dirs) {
      for (const server of ["redis", "clickhouse"]) {
        const pidFile = join(d, "run", `${server}.pid`);
        if (!existsSync(pidFile)) continue;
        const pid = Number(readFileSync(pidFile, "utf8"));
        if (pid > 0 && isAlive(pid)) {
          bad.push(`embedded ${server}-server ${pid} of ${d} was still running`);
          process.kill(pid, "SIGKILL");
        }
      }
    }
    for (const r of this.redisServers) await r.stop();
    if (this.redisUrl) {
      const client = this.redis();
      let cursor = "0";
      do {
        const [next, keys] = await client.scan(
          cursor,
          "MATCH",
          `${this.prefix.slice(0, -1)}*`,
          "COUNT",
          1000,
        );
        cursor = next;
        if (keys.length > 0) await client.del(...keys);
      } while (cursor !== "0");
      client.disconnect();
    }
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    if (bad.length > 0) throw new Error(`processes did not stop cleanly:\n${bad.join("\n\n")}`);
  }
}

export interface SpawnedRedis {
  readonly url: string;
  readonly port: number;
  /** The current server process (changes after {@link SpawnedRedis.restart}). */
  readonly pid: number;
  /** The data directory (`--dir`): the AOF lives here. */
  readonly dir: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
  /** Starts the server again (after a kill) on the same port and dir; resolves once it answers PING. */
  restart(): Promise<void>;
}

export interface RedisServerOptions {
  /** A config file given first on the command line (e.g. {@link REDIS_CONF}); persistence as it says. */
  readonly conf?: string;
  /** A fixed port instead of a free one. */
  readonly port?: number;
}

/** The project's redis.conf (AOF, `appendfsync everysec`, noeviction). */
export const REDIS_CONF = resolve(PROJECT_ROOT, "redis.conf");

/**
 * A redis-server on a free loopback port with its data in `dir`, no persistence unless asked
 * (`extraArgs`, or `o.conf` for a config file whose persistence settings then apply).
 */
export async function spawnRedis(
  dir: string,
  extraArgs: readonly string[] = [],
  o: RedisServerOptions = {},
): Promise<SpawnedRedis> {
  installExitHook();
  const options = {
    ...(o.conf ? { confPath: o.conf } : {}),
    dir,
    port: o.port ?? (await freeLoopbackPort()),
    extraArgs: [...(o.conf ? [] : ["--save", "", "--appendonly", "no"]), ...extraArgs],
  };
  const launch = async () => {
    const started = await spawnRedisServer(options);
    liveRedis.add(started);
    return started;
  };
  let server = await launch();

  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    await server.kill(signal);
    liveRedis.delete(server);
  };
  return {
    url: server.url,
    port: server.port,
    dir,
    get pid() {
      return server.pid;
    },
    kill,
    stop: () => kill("SIGTERM"),
    async restart() {
      await kill("SIGKILL");
      server = await launch();
    },
  };
}

/** Leases held in Redis under `prefix`: per backend (ZCARD of each lease set) and in all. */
export async function leaseCounts(
  client: Redis,
  prefix: string,
): Promise<{ byBackend: Record<string, number>; total: number }> {
  const keys = createKeys(prefix);
  const backends = await client.smembers(keys.leaseBackends);
  const byBackend: Record<string, number> = {};
  let total = 0;
  for (const b of backends) {
    const n = await client.zcard(keys.lease(b));
    byBackend[b] = n;
    total += n;
  }
  return { byBackend, total };
}

/** Waits until no lease is held under `prefix`; returns the final counts. */
export async function waitLeasesZero(client: Redis, prefix: string, timeoutMs = 15_000) {
  let last: Awaited<ReturnType<typeof leaseCounts>> | undefined;
  try {
    return await until(
      "leases back to zero",
      async () => {
        last = await leaseCounts(client, prefix);
        return last.total === 0 ? last : undefined;
      },
      timeoutMs,
      100,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(last)}`);
  }
}

/** A BACKENDS_FILE entry; omitted members get {@link E2eHarness.backendsFile}'s defaults. */
export interface BackendEntry {
  readonly id: string;
  readonly url: string;
  readonly engine?: "nunchaku" | "torch" | "tensorrt";
  readonly capacity?: number;
  readonly models?: readonly string[];
  readonly streaming?: boolean;
  readonly timeout_ms?: number;
}

/** `GET /sim/stats` of a simulated backend. */
export async function simStats(simUrl: string): Promise<SimStats> {
  const r = await fetch(`${simUrl}/sim/stats`, { signal: AbortSignal.timeout(5_000) });
  if (r.status !== 200) throw new Error(`GET /sim/stats: ${r.status}`);
  return (await r.json()) as SimStats;
}

export async function simResetStats(simUrl: string): Promise<void> {
  const r = await fetch(`${simUrl}/sim/stats/reset`, { method: "POST", signal: AbortSignal.timeout(5_000) });
  if (r.status >= 300) throw new Error(`POST /sim/stats/reset: ${r.status}`);
}

// ---------------------------------------------------------------------------------------------------
// HTTP helpers

/**
 * A HS256 token for the e2e secret (what `render-gateway token` prints for JWT_SECRET). A tier of a
 * TIERS_FILE needs `tiers`, the file's tier names.
 */
export function token(
  customer: string,
  o: {
    tier?: TierName | (string & {});
    tiers?: readonly string[];
    admin?: boolean;
    ttlS?: number;
    secret?: string;
    clock?: () => number;
  } = {},
): Promise<string> {
  return signToken({
    secret: new TextEncoder().encode(o.secret ?? E2E_SECRET),
    customerId: customer,
    tier: o.tier ?? "pro",
    ...(o.tiers === undefined ? {} : { tiers: o.tiers }),
    admin: o.admin ?? false,
    ttlS: o.ttlS ?? 3600,
    clock: o.clock ?? Date.now,
  });
}

export interface CallInit extends Omit<RequestInit, "body"> {
  readonly token?: string;
  /** A string is sent as is; anything else as JSON. */
  readonly body?: unknown;
}

/** fetch against a gateway URL; JSON bodies by default, redirects not followed. */
export function call(base: string, path: string, init: CallInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`);
  let body: string | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === "string" ? init.body : JSON.stringify(init.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  const { token: _t, body: _b, ...rest } = init;
  return fetch(base + path, {
    ...rest,
    headers,
    redirect: "manual",
    ...(body === undefined ? {} : { body }),
    signal: init.signal ?? AbortSignal.timeout(60_000),
  });
}

/** Polls `fn` until it returns a value (not undefined/false). */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * Waits until the API can start a `family/model` job: `/models` lists a backend for it, and the
 * capacity snapshot the sync route admits against (the one `GET /ready` shows admins) holds a
 * healthy backend serving it whose breakers are not all open. (The API refreshes that snapshot about
 * once a second; /models alone lists a backend before it is known to be healthy.)
 */
export async function waitForModel(url: string, bearer: string, familyModel: string, timeoutMs = 60_000) {
  const [family, model] = familyModel.split("/");
  const admin = await token("wait-for-model", { admin: true });
  await until(
    `the API sees a healthy backend for ${familyModel}`,
    async () => {
      const r = await call(url, "/models", { token: bearer });
      if (r.status !== 200) return false;
      const body = (await r.json()) as Record<
        string,
        { family: string; model: string; backends: string[] }[]
      >;
      const entry = [...(body.image ?? []), ...(body.video ?? [])].find(
        (m) => m.family === family && m.model === model,
      );
      if ((entry?.backends.length ?? 0) === 0) return false;
      const ready = await call(url, "/ready", { token: admin });
      if (ready.status !== 200) return false;
      const { backends = [] } = (await ready.json()) as {
        backends?: { id: string; engine: string; models: string[]; healthy: boolean; breakers: object }[];
      };
      // usable as src/api/capacity.ts counts it: healthy, and not open in every worker's breaker
      const usable = (b: (typeof backends)[number]) => {
        const states = Object.values(b.breakers);
        return b.healthy && !(states.length > 0 && states.every((s) => s === "open"));
      };
      return backends.some((b) => usable(b) && servesModel(b, familyModel));
    },
    timeoutMs,
    200,
  );
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** Request body bytes the client had written when the response headers arrived. */
  readonly sentBeforeResponse: number;
}

/**
 * Streams a request body of `total` bytes in `chunk`-sized pieces without ever ending the request
 * unless `end` is set, and resolves with the response as soon as it arrives: a server that buffers the
 * whole body before answering never answers (the call then rejects after `timeoutMs`).
 */
export function rawPost(
  url: string,
  o: {
    headers: Record<string, string>;
    total: number;
    chunk?: number;
    end?: boolean;
    timeoutMs?: number;
  },
): Promise<RawResponse> {
  const u = new URL(url);
  const chunkSize = o.chunk ?? 64 * 1024;
  return new Promise((resolvePromise, reject) => {
    let sent = 0;
    let answered = false;
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method: "POST",
      headers: o.headers,
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no response after sending ${sent} of ${o.total} bytes`));
    }, o.timeoutMs ?? 20_000);
    req.on("error", (e) => {
      if (!answered) {
        clearTimeout(timer);
        reject(e);
      }
    });
    req.on("response", (res) => {
      answered = true;
      const sentBeforeResponse = sent;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        clearTimeout(timer);
        req.destroy();
        resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body, sentBeforeResponse });
      });
      res.on("error", () => undefined);
    });
    const piece = Buffer.alloc(chunkSize, 0x20);
    const pump = () => {
      while (!answered && !req.destroyed && sent < o.total) {
        const n = Math.min(chunkSize, o.total - sent);
        sent += n;
        if (!req.write(n === chunkSize ? piece : piece.subarray(0, n))) {
          req.once("drain", pump);
          return;
        }
      }
      if (sent >= o.total && o.end && !answered) req.end();
    };
    req.flushHeaders();
    pump();
  });
}

// ---------------------------------------------------------------------------------------------------
// Response checks shared by the e2e files (pngDimensions by the integration tests too)

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  error: string;
  message: string;
  request_id: string;
  details?: Record<string, unknown>;
}

/**
 * Checks that `res` is an RFC 9457 problem document with the seed's envelope (API.md §2) and returns
 * it: the status and code given, `instance` = `request_id` = the X-Request-Id header, and the
 * X-Weyl-Request-Id twin.
 */
export async function problemOf(res: Response, status: number, code: string): Promise<Problem> {
  const text = await res.text();
  const where = `${res.status} ${res.url}: ${text}`;
  if (res.status !== status) throw new Error(`expected ${status} ${code}, got ${where}`);
  const ctype = res.headers.get("content-type") ?? "";
  if (!/^application\/problem\+json\b/.test(ctype)) throw new Error(`content-type ${ctype}: ${where}`);
  const p = JSON.parse(text) as Problem;
  const rid = res.headers.get("x-request-id");
  const checks: [boolean, string][] = [
    [p.type === `https://render-gateway.dev/errors/${code}`, "type"],
    [typeof p.title === "string" && p.title.length > 0, "title"],
    [p.status === status, "status"],
    [typeof p.detail === "string" && p.detail.length > 0, "detail"],
    [p.error === code, "error"],
    [p.message === p.detail, "message = detail"],
    [typeof rid === "string" && /^req_[A-Za-z0-9]{8,64}$/.test(rid), "X-Request-Id header"],
    [p.request_id === rid, "request_id = X-Request-Id"],
    [p.instance === rid, "instance = X-Request-Id"],
    [res.headers.get("x-weyl-request-id") === rid, "X-Weyl-Request-Id = X-Request-Id"],
    [!/\n\s+at /.test(text), "no stack trace"],
  ];
  const failed = checks.filter(([ok]) => !ok).map(([, what]) => what);
  if (failed.length > 0) throw new Error(`problem document wrong (${failed.join(", ")}): ${where}`);
  return p;
}

/** Compares SSE ids of this API (`<seq>` or `<seq>.<n>`) numerically, part by part. */
export function compareEventIds(a: string, b: string): number {
  const [a1 = 0, a2 = 0] = a.split(".").map(Number);
  const [b1 = 0, b2 = 0] = b.split(".").map(Number);
  return a1 !== b1 ? a1 - b1 : a2 - b2;
}

/** PNG width and height from the IHDR chunk (throws when the bytes are not a PNG). */
export function pngDimensions(bytes: Uint8Array): { width: number; height: number } {
  const b = Buffer.from(bytes);
  if (!b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    throw new Error(`not a PNG (starts with ${b.subarray(0, 8).toString("hex")})`);
  if (b.subarray(12, 16).toString("latin1") !== "IHDR") throw new Error("PNG without IHDR first");
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

export interface Mp4Box {
  readonly type: string;
  readonly start: number;
  readonly headerSize: number;
  readonly size: number;
}

/** The boxes of an ISO-BMFF byte range (top level of `[from, to)`). */
export function mp4Boxes(b: Buffer, from = 0, to = b.length): Mp4Box[] {
  const out: Mp4Box[] = [];
  let at = from;
  while (at + 8 <= to) {
    let size = b.readUInt32BE(at);
    const type = b.subarray(at + 4, at + 8).toString("latin1");
    let headerSize = 8;
    if (size === 1) {
      size = Number(b.readBigUInt64BE(at + 8));
      headerSize = 16;
    } else if (size === 0) size = to - at;
    if (size < headerSize || at + size > to) throw new Error(`bad box ${type} at ${at} (size ${size})`);
    out.push({ type, start: at, headerSize, size });
    at += size;
  }
  return out;
}

/** The video sample entries (`avc1`, `hvc1`…) of an MP4 with their coded width and height. */
export function mp4VideoSampleEntries(bytes: Uint8Array): {
  ftyp: string;
  entries: { format: string; width: number; height: number }[];
} {
  const b = Buffer.from(bytes);
  const top = mp4Boxes(b);
  const ftypBox = top[0];
  if (ftypBox?.type !== "ftyp") throw new Error(`first box is ${ftypBox?.type ?? "none"}, not ftyp`);
  const ftyp = b.subarray(ftypBox.start + 8, ftypBox.start + 12).toString("latin1");
  const inside = (box: Mp4Box, skip = 0) =>
    mp4Boxes(b, box.start + box.headerSize + skip, box.start + box.size);
  const entries: { format: string; width: number; height: number }[] = [];
  for (const moov of top.filter((x) => x.type === "moov")) {
    for (const trak of inside(moov).filter((x) => x.type === "trak")) {
      for (const mdia of inside(trak).filter((x) => x.type === "mdia")) {
        for (const minf of inside(mdia).filter((x) => x.type === "minf")) {
          for (const stbl of inside(minf).filter((x) => x.type === "stbl")) {
            for (const stsd of inside(stbl).filter((x) => x.type === "stsd")) {
              // full box header (4) + entry_count (4), then the sample entries
              for (const e of inside(stsd, 8)) {
                const base = e.start + e.headerSize;
                if (["avc1", "avc3", "hvc1", "hev1", "vp09", "av01", "mp4v"].includes(e.type)) {
                  entries.push({
                    format: e.type,
                    width: b.readUInt16BE(base + 24),
                    height: b.readUInt16BE(base + 26),
                  });
                }
              }
            }
          }
        }
      }
    }
  }
  return { ftyp, entries };
}

// ---------------------------------------------------------------------------------------------------
// Job helpers for the crash and shutdown scenarios

/** The public Job document as the crash/shutdown tests read it. */
export interface JobDoc {
  id: string;
  status: "queued" | "running" | "complete" | "error" | "cancelled";
  position?: number;
  output?: string;
  outputs?: string[];
  error?: { code: string; message: string; retriable: boolean };
  created_at: string;
  started_at?: string;
  completed_at?: string;
  attempts: number;
  attempt_log: {
    attempt: number;
    backend: string;
    started_at: string;
    ended_at?: string;
    outcome?: string;
    busy_handbacks?: number;
  }[];
  gpu_ms?: number;
  backend?: string;
}

/** A queued flux/schnell text-to-image job at the 512 format. */
export const foxRequest = (prompt: string, steps: number) => ({
  modality: "image",
  family: "flux",
  model: "schnell",
  task: "t2i",
  format: "512",
  prompt,
  steps,
});

/** The outcome of each attempt in order (`open` while one runs). */
export const attemptOutcomes = (j: JobDoc) => j.attempt_log.map((a) => a.outcome ?? "open");

/** POST /queue; resolves with the id and when the 202 arrived (throws on any other status). */
export async function submitJob(
  base: string,
  bearer: string,
  body: Record<string, unknown>,
): Promise<{ id: string; ackAt: number }> {
  const res = await call(base, "/queue", { method: "POST", token: bearer, body });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`POST /queue: ${res.status} ${text}`);
  return { id: (JSON.parse(text) as { id: string }).id, ackAt: Date.now() };
}

/** GET /jobs/{id}?redirect=false → the Job (undefined when 404; throws on anything else). */
export async function readJob(base: string, bearer: string, id: string): Promise<JobDoc | undefined> {
  const res = await call(base, `/jobs/${id}?redirect=false`, { token: bearer });
  const text = await res.text();
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET /jobs/${id}: ${res.status} ${text}`);
  return JSON.parse(text) as JobDoc;
}

/** Polls until every job is in a terminal state (complete, error, cancelled); returns them in order. */
export async function waitTerminal(
  base: string,
  bearer: string,
  ids: readonly string[],
  timeoutMs = 60_000,
): Promise<JobDoc[]> {
  const done = new Map<string, JobDoc>();
  let pending: string[] = [...ids];
  await until(
    `${ids.length} jobs terminal`,
    async () => {
      const read = await Promise.all(pending.map((id) => readJob(base, bearer, id)));
      read.forEach((j, i) => {
        if (j && ["complete", "error", "cancelled"].includes(j.status)) done.set(pending[i]!, j);
      });
      pending = pending.filter((id) => !done.has(id));
      return pending.length === 0;
    },
    timeoutMs,
    200,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}: still pending ${pending.join(", ")}`);
  });
  return ids.map((id) => done.get(id)!);
}

/** The digest part of a signed output URL (its query, the signature and expiry, may change). */
export const outputPath = (url: string | undefined) => (url ?? "").split("?")[0] ?? "";

export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
