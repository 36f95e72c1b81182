// Loads everything a process needs from the environment and the configuration files, once.
import { readFileSync, existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { RedisClient } from "../infra/redis-client.js";
import { parse as parseYaml } from "yaml";
import { parsePublicKeyFile, type PublicKey } from "../api/jwt-keys.js";
import { parseEnv, type Env } from "../config/env.js";
import { parseBackendsFile, type BackendConfig, ENGINES } from "../config/backends.js";
import { buildCatalog, type Catalog } from "../core/catalog.js";
import { formatFamilyModel, parseFamilyModel } from "../core/model-route.js";
import type { Clock } from "../core/time.js";
import { DEFAULT_TIERS, maxWeight, parseTiers, type Tiers } from "../core/tiers.js";
import { deriveKey } from "../core/url-signing.js";
import { loadOrCreateDevSecret } from "../infra/dev-secret.js";
import { createScheduler, type Scheduler } from "../queues/scheduler.js";
import {
  createPoolRouter,
  DEFAULT_POOL,
  poolsFitPrefix,
  SINGLE_POOL,
  type PoolRouter,
} from "../core/pools.js";
import { parsePoolsFile, poolProblems, MAX_POOLS_FILE_BYTES } from "../config/pools.js";

export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface Keys {
  /**
   * HS256 key of access tokens: JWT_SECRET, else one derived from the dev secret — but none when an
   * identity provider's keys (JWT_PUBLIC_KEYS, JWKS_URL) are configured without JWT_SECRET: a real
   * deployment takes no token signed by a key made up on the host.
   */
  readonly jwt?: Uint8Array;
  /** HMAC key of signed object URLs. */
  readonly objectUrl: Uint8Array;
  /** HMAC key of presigned upload URLs (API.md §3 Uploads). */
  readonly upload: Uint8Array;
  /** The keys of JWT_PUBLIC_KEYS (empty or absent without it). */
  readonly publicKeys?: readonly PublicKey[];
}

export interface Settings {
  readonly env: Env;
  readonly dataDir: string;
  readonly catalog: Catalog;
  readonly tiers: Tiers;
  /** From BACKENDS_FILE, or undefined when the simulated backend's defaults apply. */
  readonly backendsFile?: readonly BackendConfig[];
  /** The pools of POOLS_FILE (SINGLE_POOL without it): docs/decisions.md "Pools". */
  readonly pools: PoolRouter;
}

function readDoc(path: string): unknown {
  return parseYaml(readFileSync(path, "utf8"));
}

export function loadSettings(source: Readonly<Record<string, string | undefined>> = process.env): Settings {
  const env = parseEnv(source);
  const dataDir = resolve(env.DATA_DIR);
  const catalogPath = env.CATALOG_FILE
    ? resolve(env.CATALOG_FILE)
    : resolve(PROJECT_ROOT, "config/catalog.json");
  const catalog = buildCatalog(readDoc(catalogPath), catalogPath);
  const tiers = env.TIERS_FILE ? parseTiers(readDoc(resolve(env.TIERS_FILE)), env.TIERS_FILE) : DEFAULT_TIERS;
  let backendsFile: readonly BackendConfig[] | undefined;
  if (env.BACKENDS_FILE) {
    const path = resolve(env.BACKENDS_FILE);
    if (!existsSync(path)) throw new Error(`BACKENDS_FILE ${path} does not exist`);
    backendsFile = parseBackendsFile(readFileSync(path, "utf8"), path);
    for (const b of backendsFile) {
      for (const m of b.models) {
        if (m === "*") continue;
        const { family = "", model = "" } = parseFamilyModel(m) ?? {};
        if (!catalog.find(family, model))
          throw new Error(`${path}: backend ${b.id} serves ${m}, which is not in the catalogue`);
      }
    }
  }
  const pools = loadPools(env, catalog, backendsFile);
  return { env, dataDir, catalog, tiers, pools, ...(backendsFile ? { backendsFile } : {}) };
}

/**
 * POOLS_FILE's pools, checked against BACKENDS_FILE and the catalogue (without a BACKENDS_FILE the
 * backends are the simulator's, checked when the worker role starts: checkPoolBackends), and
 * WORKER_POOL against them.
 * @throws Error naming POOLS_FILE or WORKER_POOL and what is wrong.
 */
function loadPools(env: Env, catalog: Catalog, backends: readonly BackendConfig[] | undefined): PoolRouter {
  let router = SINGLE_POOL;
  if (env.POOLS_FILE) {
    const path = resolve(env.POOLS_FILE);
    if (!existsSync(path)) throw new Error(`POOLS_FILE ${path} does not exist`);
    if (statSync(path).size > MAX_POOLS_FILE_BYTES)
      throw new Error(`POOLS_FILE ${path}: larger than ${MAX_POOLS_FILE_BYTES} bytes`);
    const pools = parsePoolsFile(readFileSync(path, "utf8"), `POOLS_FILE ${path}`);
    router = createPoolRouter(pools);
    if (pools.length > 0 && !poolsFitPrefix(env.REDIS_PREFIX)) {
      throw new Error(
        `POOLS_FILE ${path}: REDIS_PREFIX ${env.REDIS_PREFIX} must hold no brace, or a hash tag ({…}) opened by its first brace, so each pool's keys get a tag of their own`,
      );
    }
    if (backends) checkPoolBackends(router, backends, catalog, `POOLS_FILE ${path}`);
  }
  if (
    env.WORKER_POOL !== undefined &&
    env.WORKER_POOL !== DEFAULT_POOL &&
    !router.names.includes(env.WORKER_POOL)
  )
    throw new Error(`WORKER_POOL ${env.WORKER_POOL}: no such pool in POOLS_FILE`);
  return router;
}

/**
 * Every backend a pool lists exists, every model it lists is in the catalogue and served by one of
 * its backends. @throws Error naming `source` and each problem.
 */
export function checkPoolBackends(
  pools: PoolRouter,
  backends: readonly BackendConfig[],
  catalog: Catalog,
  source = "POOLS_FILE",
): void {
  const problems = poolProblems(pools.pools, backends, (fm) => {
    const { family = "", model = "" } = parseFamilyModel(fm) ?? {};
    return catalog.find(family, model) !== undefined;
  });
  if (problems.length > 0) throw new Error(`${source}: ${problems.join("; ")}`);
}

/**
 * JWT_SECRET signs tokens as given (so other issuers can share it); without it the dev secret under
 * DATA_DIR is the root (and no HS256 key at all beside an identity provider's keys: {@link Keys.jwt}).
 * Object and upload URLs always use keys derived for that purpose alone.
 */
export async function loadKeys(settings: Settings): Promise<Keys> {
  const publicKeys = await loadPublicKeys(settings.env.JWT_PUBLIC_KEYS);
  if (settings.env.JWT_SECRET) {
    const secret = new TextEncoder().encode(settings.env.JWT_SECRET);
    return {
      jwt: secret,
      objectUrl: deriveKey(secret, "object-url"),
      upload: deriveKey(secret, "upload-url"),
      publicKeys,
    };
  }
  const root = await loadOrCreateDevSecret(settings.dataDir);
  const provider = settings.env.JWT_PUBLIC_KEYS !== undefined || settings.env.JWKS_URL !== undefined;
  return {
    ...(provider ? {} : { jwt: deriveKey(root, "jwt") }),
    objectUrl: deriveKey(root, "object-url"),
    upload: deriveKey(root, "upload-url"),
    publicKeys,
  };
}

/** Far above any real key file (100 RSA-4096 PEMs are about 80 KB). */
const MAX_KEY_FILE_BYTES = 1024 * 1024;

/**
 * The keys of the JWT_PUBLIC_KEYS file (jwt-keys.ts parsePublicKeyFile), read once at start.
 * @throws Error naming JWT_PUBLIC_KEYS and the file when it is missing, too large or malformed.
 */
async function loadPublicKeys(path: string | undefined): Promise<readonly PublicKey[]> {
  if (path === undefined) return [];
  const full = resolve(path);
  let text: string;
  try {
    if (statSync(full).size > MAX_KEY_FILE_BYTES) throw new Error(`larger than ${MAX_KEY_FILE_BYTES} bytes`);
    text = readFileSync(full, "utf8");
  } catch (err) {
    throw new Error(`JWT_PUBLIC_KEYS: cannot read ${full} (${(err as Error).message})`);
  }
  return parsePublicKeyFile(text, `JWT_PUBLIC_KEYS ${full}`);
}

/**
 * The scheduler on `redis` with the settings' prefix, lease, attempts and retention (every role's);
 * `pipelineMax`: script calls per pipeline on this client (the API role passes REDIS_PIPELINE_MAX).
 */
export function schedulerFor(
  settings: Settings,
  redis: RedisClient,
  clock: Clock,
  pipelineMax = 0,
  prefix = settings.env.REDIS_PREFIX,
): Scheduler {
  const { env } = settings;
  return createScheduler({
    redis,
    prefix,
    clock,
    leaseTtlMs: env.LOCK_MS,
    maxAttempts: env.JOB_ATTEMPTS,
    retentionS: env.JOB_RETENTION_S,
    retentionCount: env.JOB_RETENTION_COUNT,
    pipelineMax,
    admitResolveMs: env.ADMIT_RESOLVE_MS,
    agingBoundMs: env.AGING_BOUND_S * 1000,
    maxWeight: maxWeight(settings.tiers),
    queueMax: env.QUEUE_MAX,
  });
}

/**
 * With no BACKENDS_FILE: one simulated backend entry per engine, each serving the catalogue models
 * that engine runs, sharing the simulator's capacity so they never overbook it (API.md §6, §7).
 */
export function defaultSimBackends(catalog: Catalog, simUrl: string, simCapacity: number): BackendConfig[] {
  const engines = ENGINES.filter((e) => catalog.entries().some((m) => m.backends.includes(e)));
  return engines.map((engine, i) => {
    const share = Math.floor(simCapacity / engines.length) + (i < simCapacity % engines.length ? 1 : 0);
    return {
      id: `sim-${engine}`,
      url: simUrl,
      protocol: "kserve-v2" as const,
      engine,
      capacity: Math.max(1, share),
      models: catalog
        .entries()
        .filter((m) => m.backends.includes(engine))
        .map((m) => formatFamilyModel(m.family, m.model)),
      streaming: true,
      timeout_ms: 120_000,
      timeouts: {},
    };
  });
}
