// Everything the API's routes need, injected by src/main.
import type { HeadSignal } from "../core/head-signal.js";
import type { Hono } from "hono";
import type { Logger } from "pino";
import type { RedisClient } from "../infra/redis-client.js";
import type { Catalog } from "../core/catalog.js";
import type { CostModel } from "../core/cost.js";
import type { Tiers } from "../core/tiers.js";
import type { IdGenerator } from "../core/ids.js";
import type { AdmissionLog, BlobStore, ImageInspector, Ledger, OutboundHttp } from "../core/ports.js";
import type { OutboundPolicy } from "../core/webhook-target.js";
import type { Clock } from "../core/time.js";
import type { OutputHandover } from "../core/output-handover.js";
import type { JobStore } from "../queues/job-store.js";
import type { Scheduler } from "../queues/scheduler.js";
import type { IdempotencyStore } from "../queues/idempotency-store.js";
import type { RateLimitStore } from "../queues/rate-limit-store.js";
import type { WebhookLog } from "../queues/webhook-log.js";
import type { WebhookSecrets } from "../queues/webhook-secrets.js";
import type { WebhookTask } from "../core/webhook-delivery.js";
import type { UsageStore } from "../queues/usage-store.js";
import type { OutboxStore } from "../queues/outbox-store.js";
import type { ComplianceStore } from "../queues/compliance-store.js";
import type { AuthSources, Principal } from "./auth.js";
import type { BodyReader } from "./body.js";
import type { CapacityView } from "./capacity.js";
import type { EventHub } from "./event-hub.js";
import type { Presenter } from "./present.js";
import type { ApiEnv } from "./context.js";
import type { ApiRecorder } from "../core/metrics.js";
import type { MetricsRouteDeps } from "./routes/metrics.js";
import type { AuditReads } from "./audit-reads.js";
import type { PoolRouter } from "../core/pools.js";
import type { ReplicationCheck } from "./replicated.js";

export interface ApiConfig {
  readonly syncBudgetMs: number;
  /** SYNC_CANCEL_ON_DISCONNECT: a sync client that leaves while waiting cancels its job. */
  readonly syncCancelOnDisconnect: boolean;
  readonly minTtlS: number;
  readonly maxTtlS: number;
  readonly heartbeatMs: number;
  /** How often SSE streams of queued jobs re-read their position. */
  readonly positionPollMs: number;
  /** Webhook and input-image URLs: `WEBHOOK_ALLOW_PRIVATE`, `OUTBOUND_ALLOWED_PORTS`. */
  readonly outbound: OutboundPolicy;
  /** `INPUT_IMAGE_MAX_BYTES`: largest input image fetched from a URL. */
  readonly inputImageMaxBytes: number;
  /** `INPUT_FETCH_TIMEOUT_MS`: deadline of one input-image fetch. */
  readonly inputFetchTimeoutMs: number;
  /** `INPUT_IMAGE_BUDGET_BYTES`: input-image bytes the admissions of this process may hold at once. */
  readonly inputImageBudgetBytes: number;
  readonly retentionS: number;
  readonly urlKey: Uint8Array;
  /** How long an idempotency key is held for an admission being sent (IDEMPOTENCY_HOLD_MS). */
  readonly idempotencyHoldMs: number;
  /** ttl (s) of a job sent without one (DEFAULT_TTL_S). */
  readonly defaultTtlS: number;
  /** The aging bound (AGING_BOUND_S, ms): the priority offsets of the order (GET /queue's ETAs). */
  readonly agingBoundMs: number;
  /** OUTPUT_URL_TTL_S: the lifetime of signed object URLs (0 = never expire); bounds accepted `exp`. */
  readonly outputUrlTtlS: number;
  /** Presigned uploads (API.md §3 Uploads). */
  readonly uploads: UploadConfig;
}

/** What the upload routes need besides the rest of the API's configuration. */
export interface UploadConfig {
  /** HMAC key of upload URLs (derived for that purpose alone). */
  readonly key: Uint8Array;
  /** UPLOAD_URL_TTL_S: how long an upload URL works. */
  readonly urlTtlS: number;
  /**
   * The longest a PUT may stream (HTTP_REQUEST_TIMEOUT_MS, which the server enforces on every
   * request body): an asset's claim lasts this long plus a margin, so a PUT whose process died
   * leaves the asset to another PUT after it.
   */
  readonly putTimeoutMs: number;
  /** How long an uploaded asset stays usable (JOB_RETENTION_S): its record, grant and pin. */
  readonly retentionS: number;
}

/** What the webhook routes need (README "Webhooks"). */
export interface WebhookApi {
  readonly secrets: WebhookSecrets;
  readonly log: WebhookLog;
  /** Adds the `replay`-th replay of a delivery to the `webhooks` queue. */
  enqueueReplay(task: WebhookTask, replay: number): Promise<void>;
}

/** One pool's own reads (the top-level store and capacity add the pools up). */
export interface PoolView {
  readonly name: string;
  /** Its key prefix (core/pools.ts poolPrefix). */
  readonly prefix: string;
  readonly store: JobStore;
  readonly capacity: CapacityView;
  readonly outbox: Pick<OutboxStore, "lag">;
}

export interface ApiDeps {
  readonly redis: RedisClient;
  readonly scheduler: Scheduler;
  readonly store: JobStore;
  readonly idempotency: IdempotencyStore;
  /** Per-customer quota counts (submits per minute, reads per second) shared by every API process. */
  readonly rateLimits: RateLimitStore;
  readonly hub: EventHub;
  readonly blobs: BlobStore;
  /** Sync outputs left by the worker role of this process, taken instead of read from the CAS. */
  readonly handover?: Pick<OutputHandover, "take">;
  /** The billing ledger (read: the part-hours of GET /usage) and the usage counts in Redis. */
  readonly ledger: Ledger;
  readonly usage: UsageStore;
  /** The audit log: receipts, checkpoints, proofs, segments and keys (API.md §3 "Receipts"). */
  readonly audit: AuditReads;
  /** The outbox, for its relay lag (GET /ready for admins). */
  readonly outbox: Pick<OutboxStore, "lag">;
  /** The client for customer-given URLs (input images; webhook deliveries later). */
  readonly outboundHttp: OutboundHttp;
  /** Decodes and checks untrusted input images. */
  readonly imageInspector: ImageInspector;
  readonly catalog: Catalog;
  readonly tiers: Tiers;
  readonly capacity: CapacityView;
  /** Work units of requests and ms per unit of models (core/cost.ts). */
  readonly cost: CostModel;
  readonly present: Presenter;
  /** The process's JSON body reader (its budget and counters are per process). */
  readonly bodies: BodyReader;
  readonly authenticate: (header: string | undefined) => Promise<Principal>;
  /** A cached principal of an already verified token, without waiting. */
  readonly peekPrincipal?: (header: string | undefined) => Principal | undefined;
  /** The token key sources for admins (GET /ready; Authenticator.sources()). */
  readonly authSources?: () => AuthSources;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  /**
   * The pools (POOLS_FILE; docs/decisions.md "Pools"): which pool a model's jobs go to, and each
   * pool's own store and capacity for the per-pool figures of GET /queue, GET /ready and metrics.
   * Absent: a single pool (scheduler, store and capacity above are that pool's).
   */
  readonly pools?: PoolRouter;
  readonly poolViews?: readonly PoolView[];
  readonly logger: Logger;
  readonly config: ApiConfig;
  /** False while the process shuts down (GET /ready answers 503). */
  readonly accepting: () => boolean;
  /** True while Redis is near its memory limit: admissions answer 503 (read on a timer, not per call). */
  readonly redisNearLimit: () => boolean;
  /**
   * REDIS_WAIT_REPLICAS: every 202 that acknowledges a job waits until that many replicas hold it
   * (api/replicated.ts); undefined: off (the job is on the primary alone when it is answered).
   */
  readonly replication?: ReplicationCheck;
  /** The webhook routes' stores; without them the routes are not mounted. */
  readonly webhooks?: WebhookApi;
  /** The playground's files by name (`index.html`, its stylesheet and script), read at start. */
  readonly playground: ReadonlyMap<string, Uint8Array>;
  /** The admin face (login and Bull Board): an app of its own that answers `paths`. */
  readonly admin?: {
    readonly paths: readonly string[];
    readonly fetch: Hono<ApiEnv>["fetch"];
  };
  /** The stored compliance reports (GET /admin/compliance/reports); absent: the routes are not mounted. */
  readonly compliance?: Pick<ComplianceStore, "list" | "get">;
  /** The admissions journal (docs/decisions.md "Compliance"); absent: admissions are not journaled. */
  readonly admissions?: AdmissionLog;
  /** The worker role of this process, told of each admission at the head of the queue (one pool only). */
  readonly heads?: Pick<HeadSignal, "admitted">;
  /** What requests and admissions record: the process's metrics. */
  readonly metrics: ApiRecorder;
  /** GET /metrics (METRICS_TOKEN, the fleet's exposition); without it the route is not mounted. */
  readonly metricsRoute?: MetricsRouteDeps;
}
