// Per-customer quotas in fixed windows, counted in Redis by rate-limiter-flexible's RateLimiterRedis:
// one atomic script call per unit taken (SET NX EX, INCRBY, PTTL), so every API process shares one
// count.
import type { RedisClient } from "../infra/redis-client.js";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { createKeys } from "./keys.js";
import { createLru } from "../core/lru.js";

/**
 * A process takes units from Redis in blocks: 1/BLOCK_SHARE of what the window had left at its last
 * take, at most BLOCK_MAX, and one at a time while that is unknown or small. Far from the limit a
 * process asks Redis once per block; near it, once per unit (exact).
 */
const BLOCK_SHARE = 16;
const BLOCK_MAX = 100;
/** Customers whose current block a process keeps, per quota (least recently used go first). */
const BLOCKS_KEPT = 10_000;

/** Units of a customer's window this process took from Redis and has not handed out yet. */
interface Block {
  left: number;
  /** The window's quota is spent (or a block asked for more than was left): refused until it ends. */
  readonly refused: boolean;
  /** When the window ends (ms, this process's clock). */
  readonly resetAt: number;
  /** What Redis had left in the window after this block was taken. */
  readonly remaining: number;
}

/** The outcome of taking one unit of a quota. */
export interface QuotaUse {
  /** Whether the unit fit in the quota (the request may go on). */
  readonly allowed: boolean;
  /** Units left in the current window after this one (0 when refused). */
  readonly remaining: number;
  /** Milliseconds until the current window ends and the count starts over. */
  readonly resetMs: number;
}

/** One quota: at most `limit` units per fixed window of `windowS` seconds, for each customer. */
export interface Quota {
  readonly policy: string;
  readonly limit: number;
  readonly windowS: number;
  /**
   * Takes one unit of `customer`'s quota; the window opens with the first unit taken. Atomic across
   * processes.
   * @throws the Redis client's error when Redis cannot answer (the API's error handler: 503).
   */
  take(customer: string): Promise<QuotaUse>;
  /**
   * {@link take} when this process's block answers it without Redis (the usual case), at once;
   * undefined when only {@link take} can (no block, a block used up, a window over).
   */
  takeLocal(customer: string): QuotaUse | undefined;
}

export interface RateLimitStore {
  /**
   * The quota of `limit` per `windowS` seconds under `policy` (the policy names the Redis keys; two
   * quotas of one policy share each customer's count).
   * @throws RangeError unless `limit` and `windowS` are positive integers.
   */
  quota(policy: string, limit: number, windowS: number): Quota;
}

export interface RateLimitStoreOptions {
  /** The API's client (fail-fast profile: no offline queue, a command timeout). */
  readonly redis: RedisClient;
  readonly prefix: string;
}

/**
 * The store on `redis` under `prefix` (keys.ts `rateLimit`). Its script call is a plain command on
 * the client, auto-pipelined with the client's other commands (sending it through the scheduler's
 * capped pipelines measured the same: docs/decisions.md "Rate limits").
 *
 * Units are taken in blocks (BLOCK_SHARE, BLOCK_MAX above): never more than the limit in a window
 * across processes; a block taken by one process and not used up by the window's end is lost to the
 * others, which can refuse a customer at most a few units early (a block is at most 1/16 of what was
 * left when it was taken).
 *
 * Once a customer's count is past its limit, the process refuses them from memory until the window
 * ends (`inMemoryBlockOnConsumed`): the window is fixed, so every unit asked for before its end
 * would be refused by Redis anyway, and a client that keeps sending costs no Redis command.
 */
export function createRateLimitStore(opts: RateLimitStoreOptions): RateLimitStore {
  const keys = createKeys(opts.prefix);

  return {
    quota(policy, limit, windowS) {
      if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError("limit must be a positive integer");
      if (!Number.isSafeInteger(windowS) || windowS < 1)
        throw new RangeError("windowS must be a positive integer");
      // Each limiter defines the library's one script command (`rlflxIncr`) on the client again: the
      // same script, so the same command.
      const limiter = new RateLimiterRedis({
        storeClient: opts.redis,
        keyPrefix: keys.rateLimitPrefix(policy),
        points: limit,
        duration: windowS,
        inMemoryBlockOnConsumed: limit + 1,
      });
      const blocks = createLru<string, Block>(BLOCKS_KEPT);
      /** Customers whose next block this process is asking Redis for, and that call. */
      const fetching = new Map<string, Promise<void>>();
      /** A unit of the customer's current block, or its refusal; undefined when Redis must be asked. */
      const takeLocal = (customer: string, now: number): QuotaUse | undefined => {
        const block = blocks.get(customer);
        if (block === undefined || now >= block.resetAt) return undefined;
        if (block.refused) return { allowed: false, remaining: 0, resetMs: block.resetAt - now };
        if (block.left <= 0) return undefined;
        block.left -= 1;
        return { allowed: true, remaining: block.remaining + block.left, resetMs: block.resetAt - now };
      };
      return {
        policy,
        limit,
        windowS,
        takeLocal: (customer) => takeLocal(customer, Date.now()),
        async take(customer) {
          for (;;) {
            const now = Date.now();
            const local = takeLocal(customer, now);
            if (local !== undefined) return local;
            const block = blocks.get(customer);
            // One call for a customer's next block at a time: the others wait for it and share it.
            const pending = fetching.get(customer);
            if (pending !== undefined) {
              // its failure (Redis away) is theirs too: every waiter answers at once, none retries
              await pending;
              continue;
            }
            const known = block !== undefined && now < block.resetAt ? block.remaining : 0;
            const size = Math.min(BLOCK_MAX, Math.max(1, Math.floor(known / BLOCK_SHARE)));
            const fetch = limiter.consume(customer, size).then(
              (res) => {
                blocks.set(customer, {
                  left: size,
                  resetAt: now + res.msBeforeNext,
                  remaining: res.remainingPoints,
                  refused: false,
                });
              },
              (err: unknown) => {
                // The library rejects with its result when the quota is spent, with the client's error else.
                if (!(err instanceof RateLimiterRes)) throw err;
                blocks.set(customer, {
                  left: 0,
                  resetAt: now + err.msBeforeNext,
                  remaining: 0,
                  refused: true,
                });
              },
            );
            fetching.set(customer, fetch);
            try {
              await fetch;
            } finally {
              fetching.delete(customer);
            }
          }
        },
      };
    },
  };
}
