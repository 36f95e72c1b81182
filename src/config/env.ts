// The whole environment as one zod schema, parsed once at start and frozen (STYLE.md habit 3).
import { z } from "zod";
import { unknownSettings } from "./env-names.js";
import {
  unsetIfBlank,
  int,
  optionalInt,
  portList,
  originList,
  hostPortList,
  rate,
  bool,
  byteSize,
  share,
  MAX_TTL_S,
  optionalString,
  jwksUrlProblem,
} from "./env-values.js";
import { redisTargetIssues } from "./env-redis.js";
const variables = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().min(1).default("127.0.0.1"),
  DATA_DIR: z.string().min(1).default("./data"),
  PUBLIC_URL: optionalString.pipe(z.url().optional()),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),

  REDIS_URL: optionalString.pipe(z.url().optional()),
  /** Sentinels that name the primary (instead of REDIS_URL; README "Redis high availability"). */
  REDIS_SENTINELS: hostPortList(26379),
  /** Nodes of a Redis Cluster to start from (instead of REDIS_URL or REDIS_SENTINELS). */
  REDIS_CLUSTER_NODES: hostPortList(6379),
  /** The primary's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_NAME: optionalString,
  /** The sentinels' own password (their `requirepass`); the data nodes' is REDIS_PASSWORD. */
  REDIS_SENTINEL_PASSWORD: optionalString,
  /** TLS to the sentinels. */
  REDIS_SENTINEL_TLS: bool(false),
  /** With REDIS_SENTINELS or REDIS_CLUSTER_NODES: the data nodes' ACL user and password (REDIS_URL: in the URL). */
  REDIS_USERNAME: optionalString,
  REDIS_PASSWORD: optionalString,
  /** With REDIS_SENTINELS or REDIS_CLUSTER_NODES: TLS to the data nodes (with REDIS_URL: a rediss:// URL). */
  REDIS_TLS: bool(false),
  /** PEM file of CA certificates trusted for Redis's TLS (rediss://, REDIS_TLS, REDIS_SENTINEL_TLS). */
  REDIS_TLS_CA_FILE: optionalString,
  /** Longest pause between two reconnect attempts to Redis (ms). */
  REDIS_RECONNECT_MAX_MS: int(1_000, 10, 60_000),
  /**
   * Replicas that must acknowledge an admission (Redis WAIT) before it is answered 202; 0 = off
   * (docs/decisions.md "Redis high availability").
   */
  REDIS_WAIT_REPLICAS: int(0, 0, 16),
  /** How long an admission waits for those acknowledgements (ms); then it answers 503. */
  REDIS_WAIT_MS: int(500, 1, 60_000),
  /** Key prefix of every Redis key; the braces make it a Redis Cluster hash tag. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9{}_-]{1,32}$/)
    .default("{rg}"),
  /** Scheduler script calls per Redis pipeline (docs/decisions.md "Script pipelines"); 0 = off. */
  REDIS_PIPELINE_MAX: int(16, 0, 1024),
  /** API: how long a Redis command may take before the request answers 503 (ms). */
  REDIS_COMMAND_TIMEOUT_MS: int(2_000, 50, 60_000),
  /** How long an admission whose reply was lost keeps trying to learn its outcome (ms). */
  ADMIT_RESOLVE_MS: int(3_000, 0, 60_000),
  /** How long an idempotency key is held for the admission being sent (ms); then it is settled. */
  IDEMPOTENCY_HOLD_MS: int(15_000, 100, 300_000),
  /** maxmemory of the embedded redis-server (bytes); unset: sized from the machine's memory. */
  REDIS_MAXMEMORY: byteSize,
  /** Share of Redis's maxmemory in use above which admissions are refused (503) (README "Storage"). */
  REDIS_MEMORY_ADMIT_MAX: share(0.9),
  /** How often the API reads Redis's memory use (INFO memory). */
  REDIS_MEMORY_CHECK_MS: int(1_000, 50),
  /**
   * ClickHouse of the analytics stage (`http(s)://host:8123`); unset: `start` embeds a clickhouse-server
   * found on the PATH or in /usr/sbin, or runs without analytics (README "Analytics").
   */
  CLICKHOUSE_URL: optionalString.pipe(z.url().optional()),
  /** The database of the analytics tables (created on start). */
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "a plain identifier: letters, digits and _")
    .default("render_gateway"),
  CLICKHOUSE_USER: optionalString,
  CLICKHOUSE_PASSWORD: optionalString,
  /** `off`: no analytics stage even when a ClickHouse could be used. */
  ANALYTICS: z.preprocess(unsetIfBlank, z.enum(["on", "off"]).default("on")),
  /** Rows one analytics insert carries at most (also the jobs one pipeline process holds for it). */
  ANALYTICS_BATCH: int(500, 1, 10_000),
  /** How long a row waits for its batch to fill before the batch is written anyway (ms). */
  ANALYTICS_FLUSH_MS: int(1_000, 1, 60_000),
  /** Longest pause between two tries of a batch ClickHouse refused or did not answer (ms). */
  ANALYTICS_RETRY_MAX_MS: int(30_000, 10, 3_600_000),
  /** Pause between two sweeps of the rollup (ms); 0: no sweep, not even the fill at start. */
  ANALYTICS_SWEEP_MS: int(600_000, 0, 86_400_000),
  /** Hours a rollup sweep recomputes, the current one included. */
  ANALYTICS_SWEEP_HOURS: int(6, 1, 8_760),

  BACKENDS_FILE: optionalString,
  CATALOG_FILE: optionalString,
  TIERS_FILE: optionalString,
  /** Named pools: independent schedulers, each under its own hash tag (docs/decisions.md "Pools"). */
  POOLS_FILE: optionalString,
  /**
   * With pools: how old an entry of the deployment-wide limits' ledger must be before the sweeper
   * checks it against its pool (ms); a leftover of a crash is released within this plus
   * POOL_LIMITS_SWEEP_MS (docs/decisions.md "Pools").
   */
  POOL_LIMITS_GRACE_MS: int(30_000, 100, 3_600_000),
  /** With pools: time between two passes of that sweeper (ms; one process at a time). */
  POOL_LIMITS_SWEEP_MS: int(5_000, 50, 600_000),

  JWT_SECRET: optionalString.pipe(
    z.string().min(32, "JWT_SECRET must have at least 32 characters").optional(),
  ),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  /**
   * HMAC key of stored API keys (README "API keys"). Unset: derived from the dev secret without
   * JWT_SECRET; with JWT_SECRET set, API keys are off until it is given.
   */
  API_KEY_PEPPER: optionalString.pipe(
    z.string().min(32, "API_KEY_PEPPER must have at least 32 characters").optional(),
  ),
  /** Longest time an API process answers from a cached API key before reading it again (revocation bound). */
  API_KEY_RECHECK_MS: int(1_000, 10, 60_000),
  /**
   * Longest time an API process answers from a cached API key while its revocation channel is up
   * (subscribed and answering pings): every revocation then reaches it as a message.
   */
  API_KEY_TRUST_MS: int(60_000, 10, 3_600_000),
  /** Least time between two last-used writes of one API key per API process. */
  API_KEY_LAST_USED_MS: int(60_000, 0),
  /** Longest lifetime a JWT may have left (`exp` - now, beyond the 30 s tolerance); also caps `token --ttl`. */
  JWT_MAX_TTL_S: int(86_400, 60, 31_536_000),
  /** Path of a file of public keys with kids: a JWKS JSON document or `kid:` + PEM SPKI entries. */
  JWT_PUBLIC_KEYS: optionalString,
  /** An identity provider's JWKS endpoint (https; plain http only to a loopback host). */
  JWKS_URL: optionalString.pipe(z.url().optional()),
  /** Least time between two fetches of JWKS_URL (a token with a new kid waits at most this long). */
  JWKS_COOLDOWN_MS: int(30_000, 100, 3_600_000),
  /** Age after which the JWKS is refetched in the background (its keys stay usable meanwhile). */
  JWKS_CACHE_MAX_AGE_MS: int(600_000, 1_000, 86_400_000),
  /** Deadline of one JWKS fetch. */
  JWKS_TIMEOUT_MS: int(5_000, 50, 60_000),
  /**
   * Longest life of the admin board's login cookie (its Max-Age; never past the credential's own
   * expiry). The credential in it is verified on every request anyway.
   */
  ADMIN_SESSION_TTL_S: int(43_200, 60, 2_592_000),

  /** API server: time to receive a request's headers (node's `headersTimeout`). */
  HTTP_HEADERS_TIMEOUT_MS: int(10_000, 100),
  /** API server: time to receive a whole request, body included (node's `requestTimeout`). */
  HTTP_REQUEST_TIMEOUT_MS: int(30_000, 100),
  /** API server: how long an idle keep-alive connection stays open (node's `keepAliveTimeout`). */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(5_000, 100),

  SYNC_BUDGET_MS: int(60_000, 100),
  /** A sync client that disconnects while waiting cancels its job. */
  SYNC_CANCEL_ON_DISCONNECT: bool(true),
  /**
   * A sync job's output is kept in Redis with the settle and written to the CAS after the answer
   * (false: written and fsynced before the settle, as every other output).
   */
  SYNC_OUTPUT_IN_REDIS: bool(true),
  /** How often a worker writes out sync outputs left in Redis, and how old they must be for it. */
  SYNC_OUTPUT_SWEEP_MS: int(5_000, 50),
  JOB_ATTEMPTS: int(5, 1, 100),
  LOCK_MS: int(30_000, 200),
  STALLED_INTERVAL_MS: int(5_000, 50),
  WORKER_CONCURRENCY: optionalInt(1, 1024),
  /** The pool (POOLS_FILE) whose backends and jobs a worker process runs; unset: the default pool. */
  WORKER_POOL: optionalString.pipe(
    z
      .string()
      .regex(/^[a-z][a-z0-9]{0,15}$/)
      .optional(),
  ),
  OUTPUT_URL_TTL_S: int(86_400, 0),
  MIN_TTL_S: int(60, 1, MAX_TTL_S),
  /** ttl of a job sent without one (it expires if it never starts); tests lower it below MIN_TTL_S. */
  DEFAULT_TTL_S: int(MAX_TTL_S, 1, MAX_TTL_S),
  JOB_RETENTION_S: int(86_400, 1),
  /**
   * The aging bound (s, fleet time): newer higher-priority work passes a `low` job for at most this
   * long, a `normal` job for half of it (docs/decisions.md "Fair share").
   */
  AGING_BOUND_S: int(600, 1, 86_400),
  /** Queued jobs of everyone at once; beyond it submits get 429 `queue_full`. */
  QUEUE_MAX: int(1_000_000, 1),
  JOB_RETENTION_COUNT: int(100_000, 10),
  /** How long CAS objects stay after the last reference ends; default OUTPUT_URL_TTL_S + 3600. */
  CAS_RETENTION_S: optionalInt(0, Number.MAX_SAFE_INTEGER),
  /** An object written less than this long ago is never collected. */
  CAS_GC_GRACE_S: int(3_600, 1),
  /** Time between the CAS collector's walks over the store. */
  CAS_GC_INTERVAL_MS: int(60_000, 50),
  /** Store entries one collector pass examines (bounded work per pass). */
  CAS_GC_BATCH: int(1_000, 1, 2_000),
  BACKOFF_BASE_MS: int(1_000, 1),
  BACKOFF_MAX_MS: int(30_000, 1),
  BUSY_COOLDOWN_MS: int(500, 0),
  /** ms of one reference image (the model's default steps, 1024×1024, one output) until one is measured. */
  DEFAULT_SERVICE_MS: int(5_000, 1),
  /** ms of one reference video (default steps, 720p, the default duration) until one is measured. */
  DEFAULT_VIDEO_SERVICE_MS: int(60_000, 1),
  SSE_HEARTBEAT_MS: int(15_000, 100),
  SHUTDOWN_GRACE_MS: int(30_000, 0),
  HEALTH_INTERVAL_MS: int(2_000, 50),
  BREAKER_WINDOW_MS: int(10_000, 100),
  BREAKER_VOLUME: int(5, 1),
  BREAKER_ERROR_PERCENT: int(50, 1, 100),
  BREAKER_RESET_MS: int(5_000, 50),
  /** Bytes all request bodies being read at once may hold in one API process (503 beyond). */
  BODY_BUDGET_BYTES: int(64 * 1024 * 1024, 1024),
  WEBHOOK_ALLOW_PRIVATE: bool(false),
  /** Deadline of one webhook delivery attempt, connecting included (README "Webhooks"). */
  WEBHOOK_TIMEOUT_MS: int(10_000, 10, 300_000),
  /** The first retry's delay; each next one doubles, up to WEBHOOK_RETRY_MAX_MS (with jitter). */
  WEBHOOK_RETRY_BASE_MS: int(5_000, 1),
  WEBHOOK_RETRY_MAX_MS: int(3_600_000, 1),
  /** How long a delivery is retried (from its hand-off) before it is dead-lettered. */
  WEBHOOK_RETRY_FOR_MS: int(86_400_000, 0),
  /** How long a rotated-out webhook secret keeps signing beside the new one. */
  WEBHOOK_SECRET_OVERLAP_MS: int(86_400_000, 0),
  /** How long a job's delivery log (and dead deliveries) are kept after their last change (s). */
  WEBHOOK_LOG_TTL_S: int(259_200, 1),
  /** Attempts kept per delivery in its log (the latest ones). */
  WEBHOOK_LOG_ATTEMPTS: int(50, 1, 1_000),
  /** Deliveries in flight at once in one pipeline process. */
  WEBHOOK_CONCURRENCY: int(16, 1, 1_024),
  /** Ports webhook and input-image URLs may name (README "Outbound calls"). */
  OUTBOUND_ALLOWED_PORTS: portList("443"),
  OUTBOUND_CONNECT_TIMEOUT_MS: int(5_000, 10),
  /** PEM file of CA certificates trusted besides Node's bundled ones (an internal image store). */
  OUTBOUND_CA_FILE: optionalString,
  INPUT_FETCH_TIMEOUT_MS: int(10_000, 10),
  INPUT_IMAGE_MAX_BYTES: int(10 * 1024 * 1024, 1024),
  INPUT_IMAGE_MAX_PIXELS: int(25_000_000, 1, 268_402_689),
  INPUT_DECODE_CONCURRENCY: int(2, 1, 64),
  /** Bytes of input images (fetched or inline) the admissions of one API process may hold (503 beyond). */
  INPUT_IMAGE_BUDGET_BYTES: int(128 * 1024 * 1024, 1024),
  /** Lifetime of a presigned upload URL (`POST /uploads`, API.md §3 Uploads): 1 h; tests lower it. */
  UPLOAD_URL_TTL_S: int(3_600, 1, 7 * 86_400),
  /** Bearer token of GET /metrics; unset: the route is open (README "Metrics and logs"). */
  METRICS_TOKEN: optionalString.pipe(
    z.string().min(16, "METRICS_TOKEN must have at least 16 characters").optional(),
  ),
  /**
   * How often every process publishes its metrics to Redis for GET /metrics (ms); a process that
   * died drops out after three of these.
   */
  METRICS_INTERVAL_MS: int(5_000, 50, 60_000),
  /** Outbox entries pending this long on a relay that went quiet are taken over by another (ms). */
  PIPELINE_CLAIM_MS: int(30_000, 50),
  /**
   * Lock of a follow-up job being run (ms): a pipeline process that died holding one is noticed, and
   * its job run again elsewhere, within about twice this.
   */
  PIPELINE_LOCK_MS: int(30_000, 100),
  /** Follow-up jobs (billing, webhooks) one pipeline process runs at once, per queue. */
  PIPELINE_CONCURRENCY: int(32, 1, 1024),
  /**
   * Fault injection for the crash tests only: the pipeline process kills itself (SIGKILL) the first
   * time it reaches this point — `after_read` (outbox entries read, not handed off),
   * `after_ledger` (a ledger line synced, the usage counts not yet updated), `audit_after_blob` (an
   * audit segment blob in the CAS, not committed), `audit_after_commit` (committed in Redis, the
   * index line not written) or `audit_after_index` (the index line written, no checkpoint yet).
   */
  PIPELINE_FAULT: z.preprocess(
    unsetIfBlank,
    z
      .enum(["after_read", "after_ledger", "audit_after_blob", "audit_after_commit", "audit_after_index"])
      .optional(),
  ),
  /** How long a billed job's marker is kept (s): longer than any redelivery of its event. */
  BILLING_MARKER_TTL_S: int(7 * 86_400, 60),
  /** How long per-customer usage counts are kept (s; GET /usage reads them). */
  USAGE_RETENTION_S: int(400 * 86_400, 3_600),
  /**
   * Leaves per audit log segment (a power of two; README "Receipts"): each segment is one CAS blob,
   * the open one written anew at every append. Fixed for the life of a log.
   */
  AUDIT_SEGMENT_SIZE: int(1_024, 2, 65_536).refine((n) => (n & (n - 1)) === 0, {
    message: "AUDIT_SEGMENT_SIZE must be a power of two",
  }),
  /** At most one signed checkpoint per this many ms while records arrive (ms). */
  AUDIT_CHECKPOINT_MS: int(1_000, 10, 3_600_000),
  /**
   * The appender's lock (ms): one pipeline process appends at a time; when it dies another takes
   * over within about this long.
   */
  AUDIT_LOCK_MS: int(10_000, 100, 600_000),
  /**
   * The checkpoint signing key: a 32-byte Ed25519 seed, base64url. Unset: a key made once under
   * DATA_DIR/audit/keys (0600).
   */
  AUDIT_SIGNING_KEY: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{43}$/, "AUDIT_SIGNING_KEY must be a 32-byte seed in base64url (43 characters)")
      .optional(),
  ),
  /** The audit log's id in its checkpoints; unset: one made once under DATA_DIR/audit. */
  AUDIT_LOG_ID: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,64}$/, "AUDIT_LOG_ID must be 1-64 characters of A-Z a-z 0-9 . _ : -")
      .optional(),
  ),

  /**
   * How often an API process writes the admissions it journaled (ms; README "Compliance"): a process
   * that dies loses at most this long of its journal.
   */
  ADMISSIONS_FLUSH_MS: int(100, 1, 60_000),
  /** A customer × model × hour whose sources differ by more than this share is flagged. */
  RECONCILE_TOLERANCE: rate(0.001),
  /** An admitted job with no terminal record anywhere this long after its admission is lost (ms). */
  RECONCILE_LOST_AFTER_MS: int(600_000, 0),
  /** Jobs one report lists at most (differences; lost jobs), the rest counted. */
  RECONCILE_MAX_IDS: int(1_000, 1, 100_000),
  /** How often the pipeline reconciles (ms); 0: no scheduled run (the CLI's `reconcile` still works). */
  COMPLIANCE_EVERY_MS: int(300_000, 0),
  /** Complete UTC hours a scheduled run covers besides the current one. */
  COMPLIANCE_HOURS: int(1, 0, 168),
  /** A scheduled run stops this long before now: what just finished may still be in the pipeline (ms). */
  COMPLIANCE_SETTLE_MS: int(300_000, 0),
  /** How long stored reports stay listed and in the CAS (s). */
  COMPLIANCE_RETENTION_S: int(90 * 86_400, 60),
  /**
   * One scheduled run in this many reads and verifies the whole audit log; the others verify only
   * the leaves appended since the last run (README "Compliance"). 1: every run reads it whole.
   */
  COMPLIANCE_FULL_VERIFY_EVERY: int(288, 1, 1_000_000),

  /** WebSocket `/ws` (README "WebSocket (/ws)"): time a connection without a header token has to authenticate. */
  WS_AUTH_TIMEOUT_MS: int(5_000, 50, 60_000),
  /** A connection with no job in flight that sends nothing for this long is closed (4000). */
  WS_IDLE_TIMEOUT_MS: int(120_000, 50, 86_400_000),
  /** Ping interval; a peer that has not answered the previous ping by the next is dropped. */
  WS_PING_INTERVAL_MS: int(30_000, 50, 600_000),
  /** Open connections of one customer across all API processes (the next is closed with 4429). */
  WS_MAX_CONNECTIONS_PER_TENANT: int(16, 1, 1_000_000),
  /** Jobs one connection submits or follows at once (more: `error` `queue_full`). */
  WS_MAX_JOBS_PER_CONNECTION: int(64, 1, 100_000),
  /** Largest client message (bytes); a larger one closes the connection (1009). */
  WS_MAX_MESSAGE_BYTES: int(2 * 1024 * 1024, 1024, 10 * 1024 * 1024),
  /** Client messages per second per connection (a burst of as many); more: `error` `rate_limited`. */
  WS_MESSAGES_PER_S: int(50, 1, 100_000),
  /** Bytes waiting to be sent on a connection above which progress and frames are coalesced. */
  WS_HIGH_WATER_BYTES: int(256 * 1024, 1024),
  /** Bytes waiting on a connection that, held for WS_SLOW_READER_MS, close it as a slow reader (4408). */
  WS_MAX_BUFFERED_BYTES: int(4 * 1024 * 1024, 1024),
  WS_SLOW_READER_MS: int(10_000, 10, 600_000),
  /** Comma-separated origins a browser may connect from (`https://app.example.com`); unset: any. */
  WS_ALLOWED_ORIGINS: originList,

  SIM_PORT: optionalInt(0, 65535),
  SIM_STEP_MS: int(20, 0),
  SIM_CAPACITY: int(16, 1),
  SIM_FAIL_RATE: rate(0),
  SIM_HANG_RATE: rate(0),
  /**
   * Bearer token of the simulator's mutating routes (`PUT /sim/config`, `POST /sim/stats/reset`);
   * without it they answer loopback clients only.
   */
  SIM_CONFIG_TOKEN: optionalString.pipe(
    z.string().min(16, "SIM_CONFIG_TOKEN must have at least 16 characters").optional(),
  ),
});

/** The environment schema: each variable, then the rules that tie several together. */
export const envSchema = variables
  .superRefine((env, ctx) => {
    // (A value that is no URL at all was reported by the field already.)
    const jwks = env.JWKS_URL !== undefined && URL.canParse(env.JWKS_URL) ? new URL(env.JWKS_URL) : undefined;
    const jwksProblem = jwks === undefined ? undefined : jwksUrlProblem(jwks);
    if (jwksProblem !== undefined) ctx.addIssue({ code: "custom", path: ["JWKS_URL"], message: jwksProblem });
    if (env.BACKOFF_BASE_MS > env.BACKOFF_MAX_MS) {
      ctx.addIssue({
        code: "custom",
        path: ["BACKOFF_BASE_MS"],
        message: `BACKOFF_BASE_MS (${env.BACKOFF_BASE_MS}) must not exceed BACKOFF_MAX_MS (${env.BACKOFF_MAX_MS})`,
      });
    }
    if (env.WEBHOOK_RETRY_BASE_MS > env.WEBHOOK_RETRY_MAX_MS) {
      ctx.addIssue({
        code: "custom",
        path: ["WEBHOOK_RETRY_BASE_MS"],
        message: `WEBHOOK_RETRY_BASE_MS (${env.WEBHOOK_RETRY_BASE_MS}) must not exceed WEBHOOK_RETRY_MAX_MS (${env.WEBHOOK_RETRY_MAX_MS})`,
      });
    }
    if (env.API_KEY_TRUST_MS < env.API_KEY_RECHECK_MS) {
      ctx.addIssue({
        code: "custom",
        path: ["API_KEY_TRUST_MS"],
        message: `API_KEY_TRUST_MS (${env.API_KEY_TRUST_MS}) must not be below API_KEY_RECHECK_MS (${env.API_KEY_RECHECK_MS})`,
      });
    }
    if (env.WS_HIGH_WATER_BYTES > env.WS_MAX_BUFFERED_BYTES) {
      ctx.addIssue({
        code: "custom",
        path: ["WS_HIGH_WATER_BYTES"],
        message: `WS_HIGH_WATER_BYTES (${env.WS_HIGH_WATER_BYTES}) must not exceed WS_MAX_BUFFERED_BYTES (${env.WS_MAX_BUFFERED_BYTES})`,
      });
    }
    redisTargetIssues(env, ctx);
    // Node refuses a server whose headers may take longer than the whole request.
    if (env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
      ctx.addIssue({
        code: "custom",
        path: ["HTTP_HEADERS_TIMEOUT_MS"],
        message: `HTTP_HEADERS_TIMEOUT_MS (${env.HTTP_HEADERS_TIMEOUT_MS}) must not exceed HTTP_REQUEST_TIMEOUT_MS (${env.HTTP_REQUEST_TIMEOUT_MS})`,
      });
    }
  })
  // A signed output URL handed out while its job was readable stays valid up to OUTPUT_URL_TTL_S,
  // rounded up to the hour: by default the object outlives every such URL.
  .transform((env) => ({ ...env, CAS_RETENTION_S: env.CAS_RETENTION_S ?? env.OUTPUT_URL_TTL_S + 3_600 }));

export type Env = Readonly<z.infer<typeof envSchema>>;

/**
 * Parses the environment. A bad value throws one error whose message names every offending
 * variable, before any connection is opened.
 */
export function parseEnv(source: Readonly<Record<string, string | undefined>>): Env {
  const unknown = unknownSettings(Object.keys(source), KNOWN_NAMES);
  if (unknown.length > 0) throw new Error(`invalid environment:\n${unknown.map((u) => `  ${u}`).join("\n")}`);
  const result = envSchema.safeParse(source);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid environment:\n${lines.join("\n")}`);
  }
  return Object.freeze(result.data);
}

/** Every variable the schema reads (the known names of the unknown-name rule, config/env-names.ts). */
export const KNOWN_NAMES: readonly string[] = Object.freeze(Object.keys(variables.shape));
