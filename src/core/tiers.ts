// Customer tiers (API.md §1 Tiers): default limits, the TIERS_FILE schema and priority rules.
import { z } from "zod";
import { deepFreeze } from "./deep-freeze.js";
import { PRIORITIES, type Priority } from "./job.js";
import { formatFamilyModel } from "./model-route.js";

/** Names of the built-in tiers; a TIERS_FILE may define others (a tier is any key of {@link Tiers}). */
export type TierName = "free" | "pro" | "enterprise" | "unlimited";

/** GPU-second prices of a tier in integer micro-USD; `models` (`family/model` → price) overrides `default`. */
export interface TierPrices {
  readonly default: number;
  readonly models?: Readonly<Record<string, number>>;
}

/**
 * What a tier may do. `null` means no limit. Enforced: `priorities` (403), `sync` (403 on the sync
 * route), `submits_per_min` and `reads_per_s` (429 `rate_limited`, docs/decisions.md "Rate limits"),
 * `max_queued` (429 `queue_full`), `max_running` (held at dispatch) and `weight` (the order's fair
 * share; docs/decisions.md "Fair share").
 */
export interface Tier {
  /** Generation submits per minute of one customer (429 `rate_limited` beyond; policy "submits"). */
  readonly submits_per_min: number | null;
  /**
   * Authenticated reads (GET/HEAD) per second of one customer (429 `rate_limited` beyond; policy
   * "reads"). A TIERS_FILE written before this field existed still parses: see {@link parseTiers}.
   */
  readonly reads_per_s: number | null;
  /** Jobs of one customer running at once (more wait, `held: "concurrency_limit"`). */
  readonly max_running: number | null;
  /** Jobs of one customer queued at once (429 `queue_full` beyond). */
  readonly max_queued: number | null;
  /** Priorities the tier may ask for; others → 403 `forbidden`. */
  readonly priorities: readonly Priority[];
  /** Fair-share weight of the customer's jobs in the scheduler (a positive integer; docs/decisions.md "Fair share"). */
  readonly weight: number;
  /** Whether the synchronous route is open to the tier (else 403 `forbidden` there). */
  readonly sync: boolean;
  /** Price per GPU-second; absent means the job is not charged. */
  readonly price_micro_usd_per_gpu_s?: TierPrices;
}

/** A tier table: tier name → limits. Always contains `free`, the tier of a token that names none. */
export type Tiers = Readonly<Record<string, Tier>>;

/** The tier a token or key gets when it names none. */
export const DEFAULT_TIER = "free";

/**
 * The tier table of API.md §1. Prices are the project's defaults (a TIERS_FILE replaces the whole table):
 * 500 µUSD per GPU-second on free, 400 on pro, 300 on enterprise and unlimited.
 */
export const DEFAULT_TIERS: Readonly<Record<TierName, Tier>> = deepFreeze({
  free: {
    submits_per_min: 300,
    reads_per_s: 20,
    max_running: 8,
    max_queued: 200,
    priorities: ["normal", "low"],
    weight: 1,
    sync: true,
    price_micro_usd_per_gpu_s: { default: 500 },
  },
  pro: {
    submits_per_min: 1_200,
    reads_per_s: 100,
    max_running: 32,
    max_queued: 2_000,
    priorities: ["high", "normal", "low"],
    weight: 4,
    sync: true,
    price_micro_usd_per_gpu_s: { default: 400 },
  },
  enterprise: {
    submits_per_min: 12_000,
    reads_per_s: 1_000,
    max_running: 256,
    max_queued: 100_000,
    priorities: ["high", "normal", "low"],
    weight: 16,
    sync: true,
    price_micro_usd_per_gpu_s: { default: 300 },
  },
  unlimited: {
    submits_per_min: null,
    reads_per_s: null,
    max_running: null,
    max_queued: 1_000_000,
    priorities: ["high", "normal", "low"],
    weight: 1,
    sync: true,
    price_micro_usd_per_gpu_s: { default: 300 },
  },
});

const limit = z.int().min(1).nullable();
const price = z.int().min(0);

const tierSchema = z.strictObject({
  submits_per_min: limit,
  // Optional: tiers files older than the reads limit have none (parseTiers fills it in).
  reads_per_s: limit.optional(),
  max_running: limit,
  max_queued: limit,
  priorities: z
    .array(z.enum(PRIORITIES))
    .min(1)
    .refine((p) => new Set(p).size === p.length, { message: "duplicate priority" }),
  weight: z.number().int().min(1).max(1_000_000),
  sync: z.boolean(),
  price_micro_usd_per_gpu_s: z
    .strictObject({
      default: price,
      models: z
        .record(
          z.string().regex(/^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*$/, "expected family/model"),
          price,
        )
        .optional(),
    })
    .optional(),
});

/**
 * Zod schema of a TIERS_FILE: an object of tier name → {@link Tier}, the shape of {@link DEFAULT_TIERS}.
 * It must define `free`. `null` limits mean unlimited.
 */
export const tiersFileSchema = z
  .record(z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, "tier names are 1-32 chars of [a-z0-9_-]"), tierSchema)
  .refine((t) => Object.hasOwn(t, DEFAULT_TIER), { message: `the tier "${DEFAULT_TIER}" must be defined` });

/**
 * Validates a TIERS_FILE document and returns the frozen table. A tier without `reads_per_s` (a file
 * written before the reads limit existed) gets the built-in tier's value of the same name, or no
 * limit (`null`) under a name that is not built in: such a file keeps working, a built-in name gets
 * the reads limit it would have had without a file, and a tier of the file's own is not read-limited.
 * @throws Error naming `source` and every invalid path.
 */
export function parseTiers(doc: unknown, source = "TIERS_FILE"): Tiers {
  const result = tiersFileSchema.safeParse(doc);
  if (!result.success) {
    const lines = result.error.issues.map(
      (i) => `  ${i.path.map(String).join(".") || "(root)"}: ${i.message}`,
    );
    throw new Error(`${source}: invalid tiers file:\n${lines.join("\n")}`);
  }
  const tiers: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(result.data)) {
    const builtIn = Object.hasOwn(DEFAULT_TIERS, name) ? DEFAULT_TIERS[name as TierName] : undefined;
    tiers[name] = {
      ...t,
      reads_per_s: t.reads_per_s === undefined ? (builtIn?.reads_per_s ?? null) : t.reads_per_s,
    };
  }
  return deepFreeze(JSON.parse(JSON.stringify(tiers)) as Record<string, Tier>);
}

/**
 * The per-customer rate limits of API.md §1, each a quota per fixed window: `submits` (generation
 * submits, the tier's `submits_per_min`) and `reads` (authenticated reads, `reads_per_s`). The names
 * are the policy names of the RateLimit-Policy and RateLimit headers and of the limiter's Redis keys.
 */
export const RATE_POLICIES = {
  submits: { windowS: 60 },
  reads: { windowS: 1 },
} as const satisfies Record<string, { readonly windowS: number }>;

export type RatePolicy = keyof typeof RATE_POLICIES;

/** The tier's quota under `policy` per window ({@link RATE_POLICIES}); `null` = no limit. */
export function rateLimitOf(
  tier: Pick<Tier, "submits_per_min" | "reads_per_s">,
  policy: RatePolicy,
): number | null {
  return policy === "submits" ? tier.submits_per_min : tier.reads_per_s;
}

/** True when the tier may submit jobs at `priority`. */
export function isPriorityAllowed(tier: Pick<Tier, "priorities">, priority: Priority): boolean {
  return tier.priorities.includes(priority);
}

/** The tier called `name`, or `undefined` (an unknown tier is answered 401 by auth). */
/** The largest fair-share weight of the table (the priority offsets are scaled to it). */
export function maxWeight(tiers: Tiers): number {
  return Math.max(1, ...Object.values(tiers).map((t) => t.weight));
}

export function tierOf(tiers: Tiers, name: string): Tier | undefined {
  return Object.hasOwn(tiers, name) ? tiers[name] : undefined;
}

/** Price of one GPU-second of `family/model` on the tier, in integer micro-USD (0 when unpriced). */
export function pricePerGpuSecond(tier: Tier, family: string, model: string): number {
  const prices = tier.price_micro_usd_per_gpu_s;
  if (prices === undefined) return 0;
  const key = formatFamilyModel(family, model);
  return prices.models !== undefined && Object.hasOwn(prices.models, key)
    ? (prices.models[key] ?? prices.default)
    : prices.default;
}
