// Pools (issue 15 item 3; docs/decisions.md "Pools"): independent schedulers in one deployment, each
// under its own Redis hash tag. Pure: which pool serves a model, which pool holds a job (from its
// id), and the key prefix of a pool. The default pool is the one without a name: REDIS_PREFIX.

/** A pool as POOLS_FILE names it. */
export interface PoolDef {
  /** 1-16 chars of [a-z0-9], starting with a letter: part of the hash tag and of the pool's job ids. */
  readonly name: string;
  /** The `family/model`s whose jobs this pool runs. */
  readonly models: readonly string[];
  /** The backend ids (BACKENDS_FILE) this pool's workers run. */
  readonly backends: readonly string[];
}

/** The default pool's name where one is needed (metrics' `pool` label, `/queue`'s `pools` member). */
export const DEFAULT_POOL = "default";
/** Pool names: short and of the job id alphabet, so a job id can carry its pool's name. */
export const POOL_NAME_RE = /^[a-z][a-z0-9]{0,15}$/;
/** At most this many named pools (each adds a few reads to /queue, /ready and the CAS collector). */
export const MAX_POOLS = 32;
/**
 * Characters after `j_` of an id the API generates (core/ids.ts): a pool's job id is such an id
 * followed by its pool's name, so the default pool's ids stay as they are and `JOB_ID_RE` holds.
 */
export const JOB_ID_BASE_LENGTH = 2 + 22;

/**
 * The key prefix of pool `name` under the deployment's `base` (REDIS_PREFIX): the hash tag gets
 * `-<name>` (`{rg}` → `{rg-gpu}`), so each pool's keys share one tag of their own; a prefix
 * without a tag gets `-<name>` appended. The default pool (`undefined`) keeps `base`.
 */
export function poolPrefix(base: string, name: string | undefined): string {
  if (name === undefined || name === DEFAULT_POOL) return base;
  const m = SINGLE_TAG_RE.exec(base);
  return m ? `${m[1]}{${m[2]}-${name}}${m[3]}` : `${base}-${name}`;
}

/** A prefix whose first brace opens its hash tag: the tag {@link poolPrefix} extends. */
const SINGLE_TAG_RE = /^([^{}]*)\{([^{}]+)\}(.*)$/;

/**
 * Whether named pools can live under `base` (REDIS_PREFIX): with no brace at all, or a hash tag
 * opened by its first brace. Any other brace (`x}{rg}`, `{a{b}`) would leave every pool's keys in
 * the default pool's hash slot, since Redis hashes the first `{…}` only.
 */
export function poolsFitPrefix(base: string): boolean {
  return !/[{}]/.test(base) || SINGLE_TAG_RE.test(base);
}

/** Which pool serves what, and where each job is: the one answer every role uses. */
export interface PoolRouter {
  /** The named pools, in the file's order (empty: a single-pool deployment). */
  readonly pools: readonly PoolDef[];
  /** Every pool's name, the default's ({@link DEFAULT_POOL}) first. */
  readonly names: readonly string[];
  /** The pool whose jobs `family/model` becomes ({@link DEFAULT_POOL} when no pool names it). */
  ofModel(familyModel: string): string;
  /** The pool holding job `id` (its id's suffix; {@link DEFAULT_POOL} for any other id). */
  ofJob(id: string): string;
  /** The id of a job of `pool` made from a generated id `base` (`j_` + 22 characters). */
  jobId(base: string, pool: string): string;
  /** The backend ids of `pool`; for the default pool, those no named pool lists. */
  backendsOf(pool: string, all: readonly string[]): string[];
  /** The key prefix of `pool` under `base` (REDIS_PREFIX). */
  prefixOf(base: string, pool: string): string;
}

export function createPoolRouter(pools: readonly PoolDef[]): PoolRouter {
  const byModel = new Map<string, string>();
  const named = new Set<string>();
  const claimed = new Set<string>();
  for (const p of pools) {
    named.add(p.name);
    for (const m of p.models) byModel.set(m, p.name);
    for (const b of p.backends) claimed.add(b);
  }
  const names = [DEFAULT_POOL, ...pools.map((p) => p.name)];
  return {
    pools,
    names,
    ofModel: (familyModel) => byModel.get(familyModel) ?? DEFAULT_POOL,
    ofJob(id) {
      if (named.size === 0 || id.length <= JOB_ID_BASE_LENGTH) return DEFAULT_POOL;
      const suffix = id.slice(JOB_ID_BASE_LENGTH);
      return named.has(suffix) ? suffix : DEFAULT_POOL;
    },
    jobId: (base, pool) => (pool === DEFAULT_POOL ? base : base + pool),
    backendsOf(pool, all) {
      if (pool === DEFAULT_POOL) return all.filter((b) => !claimed.has(b));
      const def = pools.find((p) => p.name === pool);
      return def ? all.filter((b) => def.backends.includes(b)) : [];
    },
    prefixOf: (base, pool) => poolPrefix(base, pool),
  };
}

/** The id of a new job of `familyModel` made from a generated id `base`: in the pool that serves it. */
export function newJobId(base: string, pools: PoolRouter | undefined, familyModel: string): string {
  return pools ? pools.jobId(base, pools.ofModel(familyModel)) : base;
}

/** The router of a single-pool deployment (no POOLS_FILE). */
export const SINGLE_POOL: PoolRouter = createPoolRouter([]);
