// Everything the API's routes need, injected by src/main.
import type { Logger } from "pino";
import type { Redis } from "ioredis";
import type { Catalog } from "../core/catalog.js";
import type { Tiers } from "../core/tiers.js";
import type { IdGenerator } from "../core/ids.js";
import type { BlobStore } from "../core/ports.js";
import type { Clock } from "../core/time.js";
import type { JobStore } from "../queues/job-store.js";
import type { Scheduler } from "../queues/scheduler.js";
import type { Principal } from "./auth.js";
import type { BodyReader } from "./body.js";
import type { CapacityView } from "./capacity.js";
import type { EventHub } from "./event-hub.js";
import type { Presenter } from "./present.js";

export interface ApiConfig {
  readonly syncBudgetMs: number;
  readonly minTtlS: number;
  readonly maxTtlS: number;
  readonly heartbeatMs: number;
  /** How often SSE streams of queued jobs re-read their position. */
  readonly positionPollMs: number;
  readonly webhookAllowPrivate: boolean;
  readonly retentionS: number;
  readonly urlKey: Uint8Array;
}

export interface ApiDeps {
  readonly redis: Redis;
  readonly scheduler: Scheduler;
  readonly store: JobStore;
  readonly hub: EventHub;
  readonly blobs: BlobStore;
  readonly catalog: Catalog;
  readonly tiers: Tiers;
  readonly capacity: CapacityView;
  readonly present: Presenter;
  /** The process's JSON body reader (its budget and counters are per process). */
  readonly bodies: BodyReader;
  readonly authenticate: (header: string | undefined) => Promise<Principal>;
  /** A cached principal of an already verified token, without waiting. */
  readonly peekPrincipal?: (header: string | undefined) => Principal | undefined;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  readonly config: ApiConfig;
  /** False while the process shuts down (GET /ready answers 503). */
  readonly accepting: () => boolean;
}
