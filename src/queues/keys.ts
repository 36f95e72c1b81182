// Redis key and channel names of the scheduler and its stores, and the layout of the order key: the
// one definition of each (lib.lua builds the same names with `key(...)`; test/integration/
// lua-mirrors.test.ts checks every name the scripts use against these). All share the prefix's hash
// tag.
import { PRIORITIES, PRIORITY_CLASS, type Priority } from "../core/job.js";

export interface Keys {
  readonly prefix: string;
  /** A job's record (hash; lib.lua lists its fields). */
  job(id: string): string;
  /** A job's events (list of "<name>\n<data JSON>"; an event's id is its 1-based index). */
  events(id: string): string;
  /** Global order of queued jobs (score = order key); position = rank. */
  readonly queue: string;
  /** The admission sequence (the second part of the order key). */
  readonly queueSeq: string;
  /** The dispatchable queued jobs of one route (sorted set, score = order key). */
  routeQueue(route: string): string;
  /** Routes that have dispatchable jobs (set). */
  readonly queuedRoutes: string;
  /** Queued jobs waiting for their retry backoff (sorted set, score = not before, ms). */
  readonly backoff: string;
  /** Queued jobs with a ttl the client sent (sorted set, score = deadline, ms). */
  readonly ttlIndex: string;
  /** Terminal jobs by completion time (sorted set; retention by count). */
  readonly done: string;
  /** Backends cooling down after a busy answer (hash: backend id -> until, ms). */
  readonly cooldowns: string;
  /** The kept reply of a dispatching call, by its token base (a resend gets it again). */
  callReply(tokenBase: string): string;
  /** Route statistics (hash; serviceTimeField(route) = measured service time, ms). */
  readonly stats: string;
  /** Backends that have lease sets (set). */
  readonly leaseBackends: string;
  /** Slot leases of one backend (sorted set: attempt id -> expiry, ms). */
  lease(backendId: string): string;
  /** Published backend states (hash: backend id -> JSON). */
  readonly registry: string;
  /** Breaker states of one backend as each worker process reported them (hash: worker id -> JSON). */
  breakers(backendId: string): string;
  /** An idempotency key of a customer (by the SHA-256 hex of the key itself). */
  idempotency(customer: string, keyHash: string): string;
  /** Customers who may read a CAS object with their bearer token (set; see object-grants.ts). */
  objectOwners(digest: string): string;
  /**
   * What the rate limiter prefixes to a customer id under `policy` (core/tiers.ts RATE_POLICIES):
   * rate-limiter-flexible's `keyPrefix`, which it joins to the id with a colon.
   */
  rateLimitPrefix(policy: string): string;
  /** A customer's count in the current window of `policy` (integer string, expiring with the window). */
  rateLimit(policy: string, customer: string): string;
  readonly eventChannel: string;
  readonly wakeChannel: string;
  readonly cancelChannel: string;
  /** CAS references of queued and running jobs (hash: digest -> count; lib.lua release_objects). */
  readonly casLive: string;
  /** CAS pins (sorted set: digest -> time until which it is kept, ms; scores only grow). */
  readonly casPins: string;
  /** The CAS collector's lock (one pass at a time across processes) and where its walk stands. */
  readonly casGcLock: string;
  readonly casGcCursor: string;
}

/** The field of `stats` holding a route's service time estimate (finish.lua writes "svc:" .. route). */
export const SERVICE_TIME_FIELD = "svc:";
export const serviceTimeField = (route: string): string => `${SERVICE_TIME_FIELD}${route}`;

export function createKeys(prefix: string): Keys {
  const rateLimitPrefix = (policy: string) => `${prefix}:rl:${policy}`;
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    events: (id) => `${prefix}:ev:${id}`,
    queue: `${prefix}:q`,
    queueSeq: `${prefix}:q:seq`,
    routeQueue: (route) => `${prefix}:q:r:${route}`,
    queuedRoutes: `${prefix}:q:routes`,
    backoff: `${prefix}:q:later`,
    ttlIndex: `${prefix}:q:ttl`,
    done: `${prefix}:done`,
    cooldowns: `${prefix}:cool`,
    callReply: (tokenBase) => `${prefix}:call:${tokenBase}`,
    stats: `${prefix}:stats`,
    leaseBackends: `${prefix}:lease:backends`,
    lease: (backendId) => `${prefix}:lease:${backendId}`,
    registry: `${prefix}:backends`,
    breakers: (backendId) => `${prefix}:backends:breakers:${backendId}`,
    idempotency: (customer, keyHash) => `${prefix}:idem:${customer}:${keyHash}`,
    objectOwners: (digest) => `${prefix}:own:${digest}`,
    rateLimitPrefix,
    // rate-limiter-flexible's getKey: `${keyPrefix}:${key}`.
    rateLimit: (policy, customer) => `${rateLimitPrefix(policy)}:${customer}`,
    eventChannel: `${prefix}:ch:ev`,
    wakeChannel: `${prefix}:ch:wake`,
    cancelChannel: `${prefix}:ch:cancel`,
    casLive: `${prefix}:cas:live`,
    casPins: `${prefix}:cas:pin`,
    casGcLock: `${prefix}:cas:gc:lock`,
    casGcCursor: `${prefix}:cas:gc:cursor`,
  };
}

/** BullMQ queue carrying started attempts to the workers. */
export const RENDER_QUEUE = "render";

// The order key (docs/decisions.md "Order"): a queued job's score in the global order is its
// priority class times the class width plus its admission sequence, so classes never interleave and
// a class is FIFO. lib.lua's `order_key` computes every score; this is its mirror for readers.

/** Order-key width of one priority class (2^40 admissions per class before scores would overlap). */
export const CLASS_WIDTH = 2 ** 40;

/** The order key of the `seq`-th admission in priority class `priorityClass` (lib.lua `order_key`). */
export function orderKey(priorityClass: number, seq: number): number {
  return priorityClass * CLASS_WIDTH + seq;
}

/** The scores of one priority's jobs in the order: from `min` up to, not including, `max`. */
export function priorityScores(priority: Priority): { readonly min: number; readonly max: number } {
  const cls = PRIORITY_CLASS[priority];
  return { min: orderKey(cls, 0), max: orderKey(cls + 1, 0) };
}

/**
 * How many of the queued jobs (`depth` per priority) a job admitted now at `priority` would find
 * ahead of it: those of its own priority and of every priority before it in the order.
 */
export function queuedAhead(depth: Readonly<Record<Priority, number>>, priority: Priority): number {
  const cls = PRIORITY_CLASS[priority];
  let ahead = 0;
  for (const p of PRIORITIES) if (PRIORITY_CLASS[p] <= cls) ahead += depth[p];
  return ahead;
}
