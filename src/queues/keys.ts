// Redis key and channel names of the scheduler and its stores, and the layout of the order key: the
// one definition of each (lib.lua builds the same names with `key(...)`; test/integration/
// lua-mirrors.test.ts checks every name the scripts use against these). All share the prefix's hash
// tag.
import type { Priority } from "../core/job.js";

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
  /** Model statistics (hash; workRateField(family/model) = measured ms per work unit, core/cost.ts). */
  readonly stats: string;
  /** Backends that have lease sets (set). */
  readonly leaseBackends: string;
  /** Slot leases of one backend (sorted set: attempt id -> expiry, ms). */
  lease(backendId: string): string;
  /** Published backend states (hash: backend id -> JSON). */
  readonly registry: string;
  /** Breaker states of one backend as each worker process reported them (hash: worker id -> JSON). */
  breakers(backendId: string): string;
  /**
   * Worker processes that announced their slots (sorted set: worker id -> expiry of the last
   * announcement, ms); entries stay a while after they expire (worker-slots.ts).
   */
  readonly workers: string;
  /** A worker process's announcement (JSON {slots, backends}; expires with it, PX = LOCK_MS). */
  workerSlots(workerId: string): string;
  /** An idempotency key of a customer (by the SHA-256 hex of the key itself). */
  idempotency(customer: string, keyHash: string): string;
  /** Customers who may read a CAS object with their bearer token (set; see object-grants.ts). */
  objectOwners(digest: string): string;
  /**
   * A sync job's output bytes, stored by finish.lua with the settle until the worker has written
   * and fsynced the CAS object (string; sync-outputs.ts). Read as the object meanwhile.
   */
  syncOutput(digest: string): string;
  /** The sync outputs still held in Redis (sorted set: digest -> when stored, ms; the sweeper's list). */
  readonly syncOutputs: string;
  /**
   * An uploaded asset (hash; asset-store.ts lists its fields): pending until its PUT is done, then
   * the digest it names. Expires with its upload URL while pending, with the retention once done.
   */
  asset(id: string): string;
  /**
   * Fair-share state (hash): `V` the virtual time, `W` the summed weight of the active tenants, `C`
   * the fleet's slots as the last admission knew them, the queued count per priority (fields
   * `high`, `normal`, `low`) and per tier and priority ({@link tierDepthField}).
   */
  readonly fair: string;
  /**
   * A tenant's (customer's) fair-share record (hash): `F` its virtual finish time, `w` its weight,
   * `aw` the weight it counts for in `W` while active, `cap` its running-at-once limit (0 = none),
   * `q` queued, `r` holding a slot, `h` held at its running limit, `gpu` measured GPU ms since it became active. Deleted when it becomes inactive.
   */
  tenant(customer: string): string;
  /** Tenants with a job queued or running (set). */
  readonly activeTenants: string;
  /** The customer of an attempt holding a slot (string; set at its start, taken at its end). */
  attemptOwner(attemptId: string): string;
  /** A tenant's queued jobs held back at its running-at-once limit (sorted set, score = order key). */
  held(customer: string): string;
  /** Where expire.lua's sweep of the default ttls stands in the order (a rank). */
  readonly ttlSweep: string;
  /**
   * What the rate limiter prefixes to a customer id under `policy` (core/tiers.ts RATE_POLICIES):
   * rate-limiter-flexible's `keyPrefix`, which it joins to the id with a colon.
   */
  rateLimitPrefix(policy: string): string;
  /** A customer's count in the current window of `policy` (integer string, expiring with the window). */
  rateLimit(policy: string, customer: string): string;
  /**
   * The outbox stream: every terminal job event and every event a job's webhook subscribes to, with
   * the job's record (lib.lua add_event; src/core/outbox.ts), read by the pipeline's relay.
   */
  readonly outbox: string;
  /** A job's billing marker: "pending" while its ledger line is written, then "done" (bill.lua). */
  billed(jobId: string): string;
  /** Who is billing a job now (its runner's id, for a lock's time): one runner at a time. */
  billingLease(jobId: string): string;
  /**
   * A customer's usage of one UTC day (YYYY-MM-DD): a hash of `<hour>|<family/model>|j|g|c` → jobs,
   * GPU ms, cost in micro-USD (bill.lua; read by queues/usage-store.ts).
   */
  usage(customer: string, day: string): string;
  /** Job events, a message per event: `"<id> <event name>"` (lib.lua add_event; api/event-hub.ts). */
  readonly eventChannel: string;
  /**
   * The channel of the previous release's API, which expects the bare job id: still published to,
   * so that a rolling deploy (or a rollback) keeps its streams and sync waits woken. Drop it in the
   * next release.
   */
  readonly legacyEventChannel: string;
  readonly wakeChannel: string;
  readonly cancelChannel: string;
  /** CAS references of queued and running jobs (hash: digest -> count; lib.lua release_objects). */
  readonly casLive: string;
  /** CAS pins (sorted set: digest -> time until which it is kept, ms; scores only grow). */
  readonly casPins: string;
  /** The CAS collector's lock (one pass at a time across processes) and where its walk stands. */
  readonly casGcLock: string;
  readonly casGcCursor: string;
  /** A tenant's webhook signing secrets (hash: `cur`, `prev`, `prev_until` ms; webhook-secrets.ts). */
  webhookSecret(customer: string): string;
  /** Webhook URLs of a tenant that answered 410 Gone (hash: URL -> when, ms; webhook-log.ts). */
  webhookDisabled(customer: string): string;
  /** A job's webhook deliveries (sorted set: delivery id -> event number). */
  webhookDeliveries(jobId: string): string;
  /** One webhook delivery (hash; webhook-log.ts lists its fields). */
  webhookDelivery(deliveryId: string): string;
  /** A webhook delivery's latest attempts (list of JSON, oldest first, capped). */
  webhookAttempts(deliveryId: string): string;
  /**
   * An API key's record, by its prefix (hash; api-key-store.ts lists its fields: the keyed hash of the
   * key, never the key or its secret).
   */
  apiKey(keyPrefix: string): string;
  /** Every API key's prefix (set; `keys list`). */
  readonly apiKeys: string;
  /** The API key prefixes of one customer (set; `keys list --customer`). */
  apiKeysOf(customer: string): string;
  /** Revoked API keys' prefixes are published here; every API process drops them from its cache. */
  readonly apiKeyChannel: string;
  /**
   * A customer's open WebSocket connections across API processes (sorted set: connection id -> lease
   * expiry, ms; ws_lease.lua, ws-leases.ts).
   */
  wsConnections(customer: string): string;
  /**
   * Processes that publish their metrics (sorted set: process id -> expiry of its last snapshot, ms;
   * queues/metrics-store.ts).
   */
  readonly metricsProcesses: string;
  /** A process's last metrics snapshot (JSON; expires with it). */
  metricsSnapshot(processId: string): string;
  /** Stored compliance reports (sorted set: CAS digest -> generation time, ms; compliance-store.ts). */
  readonly complianceReports: string;
  /** The stored reports' summaries (hash: CAS digest -> summary JSON). */
  readonly complianceSummaries: string;
  // The audit log (docs/decisions.md "Audit log: the appender"; queues/audit-store.ts reads and
  // writes them, the audit_*.lua scripts change them).
  /** The committed tree size (leaves appended; integer string, absent = 0). */
  readonly auditSize: string;
  /** Segment k → the digest of its blob in the CAS (list; the last one the open segment's latest partial). */
  readonly auditSegments: string;
  /** Sealed segment k → the hex root of its S leaves (list). */
  readonly auditRoots: string;
  /** Job id → its leaf index (hash). */
  readonly auditLeaf: string;
  /** The open segment's leaves: canonical records in leaf order (list; emptied when it is sealed). */
  readonly auditTail: string;
  /** Records waiting for the appender: job id → canonical record (hash). */
  readonly auditStaged: string;
  /** The staged job ids in arrival order (list): what the appender takes next. */
  readonly auditStagedOrder: string;
  /** The appender's lock: `<fence>:<owner>`, expiring unless renewed (string, PX). */
  readonly auditLock: string;
  /** The fencing counter: one more for every lock taken (integer string). */
  readonly auditFence: string;
  /** The latest signed checkpoint (JSON). */
  readonly auditCheckpoint: string;
  /** Recent signed checkpoints, newest first (list, bounded). */
  readonly auditCheckpoints: string;
  /** Public keys that signed checkpoints: key id → public JWK (hash; the JWKS route serves them). */
  readonly auditKeys: string;
  /** Digests of the CAS blobs the log references (set; the CAS collector keeps them, refs.lua). */
  readonly auditBlobs: string;
  /**
   * A counter the API increments before each Redis WAIT (REDIS_WAIT_REPLICAS; queues/replica-wait.ts):
   * the write whose replication the WAIT waits for, placed after the jobs it confirms.
   */
  readonly replicaMark: string;
  // Deployment-wide limits across pools (docs/decisions.md "Pools"; limits-ledger.ts, pool-limits.ts).
  // The ledger's keys are under REDIS_PREFIX; lim:gone and lim:wait under each pool's prefix.
  /**
   * The ledger (sorted set: entry `<q|r>\t<customer>\t<member>` -> when taken, ms, or
   * LIMIT_ENTRY_HELD once the sweeper saw it held): queued places and running permits of every pool.
   */
  readonly limitLedger: string;
  /** The ledger's counts (hash: `q:<customer>`, `r:<customer>`, `q` everyone's queued places). */
  readonly limitCounts: string;
  /** The permits' counter (their members' `<n>`: lim_claim.lua). */
  readonly limitSeq: string;
  /** Customers whose running permit was released are published here (every worker's broker listens). */
  readonly limitChannel: string;
  /** The sweeper's lock (one sweep at a time across processes). */
  readonly limitSweepLock: string;
  /** A pool's ended ledger entries, not yet released (list, oldest first; lib.lua lim_gone). */
  readonly limitGone: string;
  /** A pool's tenants with jobs held for want of a permit (set; dispatch adds, lim_held.lua removes). */
  readonly limitWaiting: string;
}

/**
 * The field of `stats` holding a model's measured ms per work unit (finish.lua writes "rate:" ..
 * family/model: an EWMA of the attempts' wall time ÷ the job's work units).
 */
export const WORK_RATE_FIELD = "rate:";
export const workRateField = (familyModel: string): string => `${WORK_RATE_FIELD}${familyModel}`;

export function createKeys(prefix: string): Keys {
  const rateLimitPrefix = (policy: string) => `${prefix}:rl:${policy}`;
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    events: (id) => `${prefix}:ev:${id}`,
    outbox: `${prefix}:outbox`,
    billed: (jobId) => `${prefix}:billed:${jobId}`,
    billingLease: (jobId) => `${prefix}:billed:lease:${jobId}`,
    usage: (customer, day) => `${prefix}:usage:${customer}:${day}`,
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
    workers: `${prefix}:workers`,
    workerSlots: (workerId) => `${prefix}:workers:slots:${workerId}`,
    idempotency: (customer, keyHash) => `${prefix}:idem:${customer}:${keyHash}`,
    objectOwners: (digest) => `${prefix}:own:${digest}`,
    syncOutput: (digest) => `${prefix}:out:${digest}`,
    syncOutputs: `${prefix}:outs`,
    asset: (id) => `${prefix}:asset:${id}`,
    fair: `${prefix}:fair`,
    tenant: (customer) => `${prefix}:t:${customer}`,
    activeTenants: `${prefix}:tenants`,
    attemptOwner: (attemptId) => `${prefix}:att:${attemptId}`,
    held: (customer) => `${prefix}:q:held:${customer}`,
    ttlSweep: `${prefix}:q:sweep`,
    rateLimitPrefix,
    // rate-limiter-flexible's getKey: `${keyPrefix}:${key}`.
    rateLimit: (policy, customer) => `${rateLimitPrefix(policy)}:${customer}`,
    eventChannel: `${prefix}:ch:evn`,
    legacyEventChannel: `${prefix}:ch:ev`,
    wakeChannel: `${prefix}:ch:wake`,
    cancelChannel: `${prefix}:ch:cancel`,
    casLive: `${prefix}:cas:live`,
    casPins: `${prefix}:cas:pin`,
    casGcLock: `${prefix}:cas:gc:lock`,
    casGcCursor: `${prefix}:cas:gc:cursor`,
    webhookSecret: (customer) => `${prefix}:wh:sec:${customer}`,
    webhookDisabled: (customer) => `${prefix}:wh:off:${customer}`,
    webhookDeliveries: (jobId) => `${prefix}:wh:job:${jobId}`,
    webhookDelivery: (deliveryId) => `${prefix}:wh:d:${deliveryId}`,
    webhookAttempts: (deliveryId) => `${prefix}:wh:d:${deliveryId}:att`,
    apiKey: (keyPrefix) => `${prefix}:apikey:${keyPrefix}`,
    apiKeys: `${prefix}:apikeys`,
    apiKeysOf: (customer) => `${prefix}:apikeys:c:${customer}`,
    apiKeyChannel: `${prefix}:ch:apikey`,
    wsConnections: (customer) => `${prefix}:ws:${customer}`,
    metricsProcesses: `${prefix}:metrics`,
    metricsSnapshot: (processId) => `${prefix}:metrics:${processId}`,
    complianceReports: `${prefix}:compliance:reports`,
    complianceSummaries: `${prefix}:compliance:summary`,
    auditSize: `${prefix}:audit:size`,
    auditSegments: `${prefix}:audit:segs`,
    auditRoots: `${prefix}:audit:roots`,
    auditLeaf: `${prefix}:audit:leaf`,
    auditTail: `${prefix}:audit:tail`,
    auditStaged: `${prefix}:audit:staged`,
    auditStagedOrder: `${prefix}:audit:staged:order`,
    auditLock: `${prefix}:audit:lock`,
    auditFence: `${prefix}:audit:fence`,
    auditCheckpoint: `${prefix}:audit:cp`,
    auditCheckpoints: `${prefix}:audit:cps`,
    auditKeys: `${prefix}:audit:keys`,
    auditBlobs: `${prefix}:audit:blobs`,
    replicaMark: `${prefix}:wait:mark`,
    limitLedger: `${prefix}:lim:led`,
    limitCounts: `${prefix}:lim:n`,
    limitSeq: `${prefix}:lim:seq`,
    limitChannel: `${prefix}:lim:ch`,
    limitSweepLock: `${prefix}:lim:sweep`,
    limitGone: `${prefix}:lim:gone`,
    limitWaiting: `${prefix}:lim:wait`,
  };
}

/**
 * The field of `fair` counting the queued jobs of a tier and priority (lib.lua depth_field, kept by
 * queue_join and queue_leave; the metrics' queue depth reads them).
 */
export const tierDepthField = (tier: string, priority: Priority): string => `q:${tier}:${priority}`;

/** The tier and priority of a {@link tierDepthField}, or undefined for another field of `fair`. */
export function parseTierDepthField(field: string): { tier: string; priority: string } | undefined {
  const m = /^q:(.*):([a-z]+)$/.exec(field);
  return m ? { tier: m[1]!, priority: m[2]! } : undefined;
}

/** BullMQ queue carrying started attempts to the workers. */
export const RENDER_QUEUE = "render";
/**
 * A field of a usage hash (keys.usage): the counts of one UTC hour (0-23) and `family/model`, `kind`
 * j (jobs), g (GPU ms) or c (cost, micro-USD); bill.lua appends the kind to the field without it.
 */
export const usageField = (hour: number, model: string, kind: "j" | "g" | "c" | "" = ""): string =>
  `${hour}|${model}|${kind}`;

/** BullMQ follow-up queue of finished jobs to bill (src/pipeline/billing.ts). */
export const BILLING_QUEUE = "billing";
/** BullMQ follow-up queue of webhook deliveries (src/pipeline/webhooks; job data and options: webhook-jobs.ts). */
export const WEBHOOKS_QUEUE = "webhooks";
/** BullMQ follow-up queue of finished jobs' audit records to stage for the appender (src/pipeline/audit-stage.ts). */
export const AUDIT_QUEUE = "audit";
/**
 * BullMQ follow-up queue of finished jobs' analytics rows, written to ClickHouse in batches
 * (src/pipeline/analytics.ts); only relays whose process runs its consumer add to it.
 */
export const ANALYTICS_QUEUE = "analytics";
/** BullMQ queue of the compliance job scheduler (src/pipeline/compliance.ts: one run per period). */
export const COMPLIANCE_QUEUE = "compliance";
/** The follow-up queues the relay feeds, as the board and the metrics list them. */
export const FOLLOW_UP_QUEUES = [BILLING_QUEUE, WEBHOOKS_QUEUE, AUDIT_QUEUE, ANALYTICS_QUEUE] as const;
/** The outbox's consumer group: the pipeline's relays (src/pipeline/relay.ts). */
export const OUTBOX_GROUP = "relay";

// The order key (docs/decisions.md "Fair share"): a queued job's score is its order key — its
// tenant's virtual start time plus its priority offset, in fleet milliseconds — in units of 1/8 ms,
// times 2^17, plus its admission sequence modulo 2^17, so equal keys start first come, first served.
// Scores stay exact integers (below 2^53) for 2^36 / 8 ms ≈ 99 days of virtual time. lib.lua's
// `order_key` computes every score; this is its mirror for readers.

/** Order keys are kept in 1/ORDER_RESOLUTION ms. */
export const ORDER_RESOLUTION = 8;
/** The admission sequence's share of a score: ties of the order key go by admission. */
export const SEQ_SPAN = 2 ** 17;

/** The score of the `seq`-th admission with order key `vkey` (fleet ms; lib.lua `order_key`). */
export function orderKey(vkey: number, seq: number): number {
  return Math.floor(vkey * ORDER_RESOLUTION) * SEQ_SPAN + (seq % SEQ_SPAN);
}

/**
 * The priority offset of the order key (virtual ms: one unit is a millisecond of the whole fleet for
 * one unit of weight): `high` 0, `normal` half the aging bound, `low` the aging bound, divided by the
 * largest tier weight `maxWeight` (docs/decisions.md "Fair share": newer higher-priority work of
 * tenants of summed weight w passes a job for at most its offset · w of fleet time, so at most the
 * bound while w ≤ maxWeight). The same for every job of a priority, so a priority's jobs interleave by
 * their tenants' start times alone.
 */
export function priorityOffset(priority: Priority, agingBoundMs: number, maxWeight: number): number {
  const ms = priority === "high" ? 0 : priority === "normal" ? agingBoundMs / 2 : agingBoundMs;
  return ms / Math.max(1, maxWeight);
}
