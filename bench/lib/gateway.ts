// Our processes as the benchmarks start them: `render-gateway start --roles api|worker` and
// `render-gateway sim-backend` as children, plus the files they read (backends, tiers) and tokens.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT, exportSPKI, generateKeyPair } from "jose";
import { Pool } from "undici";
import { signToken, type TierName } from "../../src/api/auth.js";
import { systemClock } from "../../src/core/time.js";
import { DEFAULT_TIERS, parseTiers, type Tier, type Tiers } from "../../src/core/tiers.js";
import type { SimStats } from "../../src/sim/stats.js";
import { baseEnv, GATEWAY_ROOT, spawnChild, waitForFile, waitUntil, type Child } from "./proc.js";
import type { Redis } from "ioredis";
import { createKeys } from "../../src/queues/keys.js";

/** HS256 secret of every benchmark process (≥ 32 chars). */
export const JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

/** A token of `tier`; a tier of another table than the built-in one needs `tiers`, its names. */
export function mintToken(
  customerId: string,
  tier: TierName | (string & {}) = "pro",
  o: { readonly admin?: boolean; readonly tiers?: readonly string[] } = {},
): Promise<string> {
  return signToken({
    secret: new TextEncoder().encode(JWT_SECRET),
    customerId,
    tier,
    ttlS: 3600,
    clock: systemClock,
    ...(o.admin === true ? { admin: true } : {}),
    ...(o.tiers === undefined ? {} : { tiers: o.tiers }),
  });
}

/** How a bench's tokens are signed (`--auth`): the HS256 secret, or an Ed25519 key of JWT_PUBLIC_KEYS. */
export type BenchAuth = "hs256" | "eddsa";

/** Tokens of one `--auth` kind, and the API settings that make the API accept them. */
export interface BenchSigner {
  readonly auth: BenchAuth;
  /** Variables added to the API's environment (JWT_PUBLIC_KEYS for eddsa). */
  readonly env: Readonly<Record<string, string>>;
  mint(customerId: string, tier?: string): Promise<string>;
}

/**
 * The signer of `--auth` (default hs256): for `eddsa`, a fresh Ed25519 key whose public half is
 * written to `dir`/jwt-public-keys.pem as the API's JWT_PUBLIC_KEYS, tokens with its kid.
 */
export async function benchSigner(auth: string | undefined, dir: string): Promise<BenchSigner> {
  if (auth === undefined || auth === "hs256")
    return { auth: "hs256", env: {}, mint: (customerId, tier = "pro") => mintToken(customerId, tier) };
  if (auth !== "eddsa") throw new Error(`--auth: hs256 or eddsa, not ${auth}`);
  const kid = "bench-ed25519";
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { extractable: true });
  const file = join(dir, "jwt-public-keys.pem");
  writeFileSync(file, `kid: ${kid}\n${await exportSPKI(publicKey)}`);
  return {
    auth: "eddsa",
    env: { JWT_PUBLIC_KEYS: file },
    mint(customerId, tier = "pro") {
      const nowS = Math.floor(Date.now() / 1000);
      return new SignJWT({ customer_id: customerId, tier })
        .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid })
        .setSubject(customerId)
        .setIssuedAt(nowS)
        .setExpirationTime(nowS + 3600)
        .sign(privateKey);
    },
  };
}

/**
 * The default tiers lifted to benchmark volumes, with `extra` tiers added: the enqueue bench sends tens
 * of thousands of submits per minute from one pro customer, the worker benches queue thousands of jobs
 * of one customer at once, the position bench up to 100,000 of 1,000 customers of every tier and
 * thousands of reads per second. Limits stay finite so that the limiters still run on every request
 * (without ever refusing one).
 */
export function benchTiers(extra: Readonly<Record<string, Tier>> = {}): Tiers {
  const tiers = JSON.parse(JSON.stringify(DEFAULT_TIERS)) as Record<string, Tier>;
  for (const [name, t] of Object.entries(tiers)) tiers[name] = { ...t, max_queued: 1_000_000_000 };
  tiers.pro = { ...tiers.pro!, submits_per_min: 1_000_000_000, reads_per_s: 1_000_000_000 };
  return parseTiers({ ...tiers, ...extra }, "bench tiers");
}

/** {@link benchTiers} as a TIERS_FILE in `dir`. */
export function writeBenchTiers(dir: string, extra: Readonly<Record<string, Tier>> = {}): string {
  const file = join(dir, "tiers.json");
  writeFileSync(file, JSON.stringify(benchTiers(extra), null, 2));
  return file;
}

interface BackendEntry {
  readonly id: string;
  readonly url: string;
  readonly capacity: number;
  /** Default flux/schnell. */
  readonly models?: readonly string[];
  /** Default false; true as the embedded simulator's entries (previews, progress). */
  readonly streaming?: boolean;
}

/** A backends file of nunchaku backends serving flux/schnell (or `models`), non-streaming by default. */
export function writeBackendsFile(dir: string, backends: readonly BackendEntry[]): string {
  const file = join(dir, "backends.json");
  const doc = {
    backends: backends.map((b) => ({
      id: b.id,
      url: b.url,
      engine: "nunchaku",
      capacity: b.capacity,
      models: b.models ?? ["flux/schnell"],
      streaming: b.streaming ?? false,
      timeout_ms: 60_000,
    })),
  };
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

/** Environment of one of our role processes. */
function roleEnv(o: {
  redisUrl: string;
  prefix: string;
  dataDir: string;
  extra?: Readonly<Record<string, string>>;
}): Record<string, string> {
  return baseEnv({
    REDIS_URL: o.redisUrl,
    REDIS_PREFIX: o.prefix,
    DATA_DIR: o.dataDir,
    HOST: "127.0.0.1",
    PORT: "0",
    JWT_SECRET,
    LOG_LEVEL: "warn",
    SHUTDOWN_GRACE_MS: "2000",
    ...o.extra,
    ...roleEnvOverrides(),
  });
}

/** BENCH_ROLE_ENV="K=V,K2=V2": settings for every role process of ours (to compare settings). */
function roleEnvOverrides(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env.BENCH_ROLE_ENV ?? "").split(",")) {
    const eq = pair.indexOf("=");
    if (eq > 0) out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

/**
 * Node flags for a child; BENCH_CPU_PROF=<dir> profiles our processes (`node --cpu-prof`) into
 * <dir>/<name>/ (one file per thread: tsx's loader runs in a thread of its own); BENCH_NODE_ARGS adds
 * flags of its own (space-separated, e.g. `--trace-gc-nvp`: the output lands in the child's log).
 */
export function nodeArgs(name: string): string[] {
  const extra = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const root = process.env.BENCH_CPU_PROF;
  if (!root) return extra;
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return ["--cpu-prof", `--cpu-prof-dir=${dir}`, ...extra];
}

function gateway(
  name: string,
  args: readonly string[],
  env: Record<string, string>,
  logDir: string,
  extraNodeArgs: readonly string[] = [],
): Child {
  return spawnChild({
    name,
    command: process.execPath,
    args: [...nodeArgs(name), ...extraNodeArgs, join(GATEWAY_ROOT, "bin/render-gateway.js"), ...args],
    env,
    logDir,
  });
}

export interface ApiProcess {
  readonly child: Child;
  readonly url: string;
}

/** `start --roles api` (or `roles`); resolves once it listens ($DATA_DIR/run/api.url). */
export async function startApi(o: {
  name?: string;
  redisUrl: string;
  prefix: string;
  dataDir: string;
  logDir: string;
  extra?: Readonly<Record<string, string>>;
  /** Node flags before the script (e.g. `--import` of a probe). */
  nodeArgs?: readonly string[];
  /** Roles of the process (default `api`); `api,worker` runs both in one, as `npm start` does. */
  roles?: string;
}): Promise<ApiProcess> {
  mkdirSync(o.dataDir, { recursive: true });
  const roles = ["start", "--roles", o.roles ?? "api"];
  const child = gateway(o.name ?? "api", roles, roleEnv(o), o.logDir, o.nodeArgs);
  const url = await waitForFile(join(o.dataDir, "run", "api.url"), child);
  return { child, url };
}

/** `start --roles worker`; resolves once it published its backends (it is dispatching then). */
export async function startWorker(o: {
  name?: string;
  redisUrl: string;
  prefix: string;
  dataDir: string;
  logDir: string;
  redis: Redis;
  extra: Readonly<Record<string, string>>;
}): Promise<Child> {
  mkdirSync(o.dataDir, { recursive: true });
  const child = gateway(o.name ?? "worker", ["start", "--roles", "worker"], roleEnv(o), o.logDir);
  await waitUntil(
    "worker start",
    async () => (await o.redis.hlen(createKeys(o.prefix).registry)) > 0,
    30_000,
    20,
    [child],
  );
  return child;
}

/** `start --roles pipeline`; resolves once its relay has joined the outbox's consumer group. */
export async function startPipeline(o: {
  name?: string;
  redisUrl: string;
  prefix: string;
  dataDir: string;
  logDir: string;
  redis: Redis;
  extra?: Readonly<Record<string, string>>;
}): Promise<Child> {
  mkdirSync(o.dataDir, { recursive: true });
  const child = gateway(o.name ?? "pipeline", ["start", "--roles", "pipeline"], roleEnv(o), o.logDir);
  const outbox = createKeys(o.prefix).outbox;
  await waitUntil(
    "pipeline start",
    async () => {
      const groups = (await o.redis.call("XINFO", "GROUPS", outbox).catch(() => [])) as unknown[][];
      return groups.some((g) => (g[3] as number) > 0);
    },
    30_000,
    20,
    [child],
  );
  return child;
}

export interface SimProcess {
  readonly child: Child;
  readonly url: string;
  setConfig(patch: Record<string, unknown>): Promise<void>;
  /** `GET /sim/stats` without the per-id map. */
  stats(): Promise<SimCounters>;
  resetStats(): Promise<void>;
  close(): Promise<void>;
}

/** The simulator's counters without the per-id map. */
type SimCounters = Omit<SimStats, "calls_by_id">;

/** `render-gateway sim-backend` on a free port (its own DATA_DIR: the URL goes to run/sim.url). */
export async function startSim(o: {
  name: string;
  stepMs: number;
  capacity: number;
  dataDir: string;
  logDir: string;
}): Promise<SimProcess> {
  mkdirSync(o.dataDir, { recursive: true });
  const env = baseEnv({
    DATA_DIR: o.dataDir,
    HOST: "127.0.0.1",
    SIM_PORT: "0",
    SIM_STEP_MS: String(o.stepMs),
    SIM_CAPACITY: String(o.capacity),
    LOG_LEVEL: "warn",
  });
  const child = gateway(o.name, ["sim-backend"], env, o.logDir);
  const url = await waitForFile(join(o.dataDir, "run", "sim.url"), child);
  const pool = new Pool(url, { connections: 2 });
  const call = async (method: "GET" | "PUT" | "POST", path: string, body?: unknown) => {
    const res = await pool.request({
      method,
      path,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${o.name} ${method} ${path}: ${res.statusCode} ${text}`);
    return text ? (JSON.parse(text) as unknown) : undefined;
  };
  return {
    child,
    url,
    async setConfig(patch) {
      await call("PUT", "/sim/config", patch);
    },
    async stats() {
      const { calls_by_id: _, ...counters } = (await call("GET", "/sim/stats")) as SimStats;
      return counters;
    },
    async resetStats() {
      await call("POST", "/sim/stats/reset");
    },
    async close() {
      await pool.close();
      await child.stop();
    },
  };
}

/**
 * The worker benches' backend: one simulator at SIM_STEP_MS=0 under `dir`/sim with room for
 * `concurrency` × 4 calls, and a backends file giving our worker one backend of `concurrency` × 2
 * slots on it.
 */
export async function startZeroStepSim(
  dir: string,
  logDir: string,
  concurrency: number,
): Promise<{ sim: SimProcess; backendsFile: string }> {
  const sim = await startSim({
    name: "sim",
    stepMs: 0,
    capacity: concurrency * 4,
    dataDir: join(dir, "sim"),
    logDir,
  });
  const backendsFile = writeBackendsFile(dir, [{ id: "sim", url: sim.url, capacity: concurrency * 2 }]);
  return { sim, backendsFile };
}
