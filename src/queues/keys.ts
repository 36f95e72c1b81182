// Redis key and channel names of the scheduler and job store. All share the prefix's hash tag.

export interface Keys {
  readonly prefix: string;
  events(id: string): string;
  /** Global order of queued jobs (score = order key); position = rank. */
  readonly queue: string;
  readonly stats: string;
  readonly leaseBackends: string;
  lease(backendId: string): string;
  /** Published backend states (hash: backend id -> JSON). */
  readonly registry: string;
  /** Breaker states of one backend as each worker process reported them (hash: worker id -> JSON). */
  breakers(backendId: string): string;
  /** An idempotency key of a customer (by the SHA-256 hex of the key itself). */
  idempotency(customer: string, keyHash: string): string;
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

export function createKeys(prefix: string): Keys {
  return {
    prefix,
    events: (id) => `${prefix}:ev:${id}`,
    queue: `${prefix}:q`,
    stats: `${prefix}:stats`,
    leaseBackends: `${prefix}:lease:backends`,
    lease: (backendId) => `${prefix}:lease:${backendId}`,
    registry: `${prefix}:backends`,
    breakers: (backendId) => `${prefix}:backends:breakers:${backendId}`,
    idempotency: (customer, keyHash) => `${prefix}:idem:${customer}:${keyHash}`,
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

/** Order-key width of one priority class (2^40 admissions per class before scores would overlap). */
export const CLASS_WIDTH = 2 ** 40;
