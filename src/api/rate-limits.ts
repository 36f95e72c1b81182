// The per-customer rate limits of API.md §1 on the HTTP side: which quota a request takes, the
// RateLimit-Policy/RateLimit headers it answers with, and the 429 `rate_limited` beyond the quota.
import { AppError, toError } from "../core/errors.js";
import { RATE_POLICIES, rateLimitOf, type RatePolicy, type Tiers } from "../core/tiers.js";
import type { Quota, QuotaUse, RateLimitStore } from "../queues/rate-limit-store.js";
import type { Principal } from "./auth.js";
import { isRedisWriteRefused } from "./problem.js";
import {
  rateLimitItemOf,
  rateLimitPolicyItem,
  retryAfterSeconds,
  wholeSecondsUntil,
} from "./rate-limit-headers.js";

/** Response headers (lower-case names) of a request that took a unit of a quota. */
export type RateHeaders = Readonly<Record<string, string>>;

export interface RateLimiter {
  /**
   * Takes one unit of the caller's quota under `policy` and returns the `ratelimit-policy` and
   * `ratelimit` headers to answer with; `undefined` — without asking Redis — for an admin and for a
   * tier without a limit under `policy`.
   * Also `undefined`, uncounted, while Redis refuses writes but answers (its memory limit, a
   * replica): reads go on there, and admissions fail on their own write.
   * @throws AppError 429 `rate_limited` with `Retry-After` (whole seconds until the window ends, at
   *   least 1) and the same two headers when the quota of the current window is spent; the Redis
   *   client's error when Redis cannot answer (503 `unavailable` through the error handler).
   */
  take(policy: RatePolicy, principal: Principal): Promise<RateHeaders | undefined>;
}

/** What a request that goes over each policy's quota is told it was doing. */
const ACTIVITY: Readonly<Record<RatePolicy, string>> = { submits: "generation submits", reads: "reads" };

/** A tier's quota under one policy, with its header values prepared once. */
interface TierQuota {
  readonly quota: Quota;
  readonly policyItem: string;
  readonly item: (remaining: number, resetS: number) => string;
}

/**
 * The limiter of a tiers table: each tier's quotas are set up here, once, so a request costs a map
 * lookup before its one Redis call.
 */
export function createRateLimiter(deps: {
  readonly tiers: Tiers;
  readonly store: RateLimitStore;
}): RateLimiter {
  const quotas = new Map<string, Partial<Record<RatePolicy, TierQuota>>>();
  for (const [name, tier] of Object.entries(deps.tiers)) {
    const own: Partial<Record<RatePolicy, TierQuota>> = {};
    for (const policy of Object.keys(RATE_POLICIES) as RatePolicy[]) {
      const limit = rateLimitOf(tier, policy);
      if (limit === null) continue;
      const { windowS } = RATE_POLICIES[policy];
      own[policy] = {
        quota: deps.store.quota(policy, limit, windowS),
        policyItem: rateLimitPolicyItem(policy, limit, windowS),
        item: rateLimitItemOf(policy),
      };
    }
    quotas.set(name, own);
  }

  /** The headers of a unit taken, or the 429 of a quota spent. */
  const answer = (tierQuota: TierQuota, use: QuotaUse, policy: RatePolicy, tier: string): RateHeaders => {
    const { quota, policyItem, item } = tierQuota;
    if (use.allowed) {
      return {
        "ratelimit-policy": policyItem,
        ratelimit: item(use.remaining, wholeSecondsUntil(use.resetMs)),
      };
    }
    // Retry-After and the effective window name the same moment (the draft asks that Retry-After
    // not be earlier than the end of the effective window).
    const retry = retryAfterSeconds(use.resetMs);
    throw new AppError(
      "rate_limited",
      `more than ${quota.limit} ${ACTIVITY[policy]} per ${quota.windowS} s on the ${tier} tier; retry in ${retry} s`,
      {
        details: { policy, limit: quota.limit, window_s: quota.windowS, tier },
        headers: {
          "retry-after": String(retry),
          "ratelimit-policy": policyItem,
          ratelimit: item(0, retry),
        },
      },
    );
  };

  /** A unit that this process's block cannot give: Redis is asked. */
  async function takeFromRedis(
    tierQuota: TierQuota,
    policy: RatePolicy,
    principal: Principal,
  ): Promise<RateHeaders | undefined> {
    let use;
    try {
      use = await tierQuota.quota.take(principal.customerId);
    } catch (err) {
      // A Redis that refuses writes (at its memory limit, a replica) cannot count, and what the
      // request does next needs no count: a read needs no write, and an admission gets the refusal
      // it always got (a job cannot be stored without a write either). It goes on uncounted.
      if (isRedisWriteRefused(err)) return undefined;
      throw err;
    }
    return answer(tierQuota, use, policy, principal.tier);
  }

  return {
    // Not async: a unit of the process's block (the usual request) is answered without an async
    // function's promises of its own.
    take(policy, principal) {
      try {
        if (principal.admin) return Promise.resolve(undefined);
        // auth refuses unknown tiers (401): a principal's tier is always in the table.
        const tierQuota = quotas.get(principal.tier)?.[policy];
        if (tierQuota === undefined) return Promise.resolve(undefined);
        const local = tierQuota.quota.takeLocal(principal.customerId);
        if (local === undefined) return takeFromRedis(tierQuota, policy, principal);
        return Promise.resolve(answer(tierQuota, local, policy, principal.tier));
      } catch (err) {
        // never a throw: a refusal (429) or anything else rejects, as from an async function
        return Promise.reject(toError(err));
      }
    },
  };
}
