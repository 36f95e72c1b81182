// The response side of the document: what the routes answer (API.md §3), as zod schemas converted
// like the request schemas (output side). The routes build these bodies by hand (core/job.ts
// toPublicJob, the route files); test/integration/openapi.test.ts checks real answers against them.
import { z } from "zod";
import { catalogLoraSchema, catalogModelSchema, ENGINES, TASKS, type Task } from "../../core/catalog.js";
import { STATUS_OF, type ErrorCode } from "../../core/errors.js";
import { MODALITIES, type Modality } from "../../core/formats.js";
import { JOB_ID_RE } from "../../core/ids.js";
import { JOB_ERROR_MESSAGE, type JobErrorCode } from "../../core/job-errors.js";
import { PRIORITIES } from "../../core/job.js";
import { SEED_MAX, WEBHOOK_EVENTS } from "../../core/request-schema.js";
import { DELIVERY_ID_RE, type DeliveryState } from "../../core/webhook-delivery.js";
import { USAGE_GROUPINGS } from "../usage.js";
import { componentSchemas, createComponentRegistry, type JsonSchema } from "./json-schema.js";

const tuple = <T extends string>(values: readonly T[]) => values as [T, ...T[]];
const keysOf = <K extends string>(record: Readonly<Record<K, unknown>>) => tuple(Object.keys(record) as K[]);

/** Every problem code (core/errors.ts), in the order of its status table. */
export const ERROR_CODES: readonly ErrorCode[] = keysOf(STATUS_OF);

const DELIVERY_STATES: Readonly<Record<DeliveryState, true>> = {
  pending: true,
  delivered: true,
  "failed-retrying": true,
  dead: true,
  skipped: true,
};

const dateTime = () => z.string().meta({ format: "date-time" });
const uri = () => z.string().meta({ format: "uri" });
const count = () => z.int().min(0);

const RequestId = z
  .string()
  .regex(/^req_[A-Za-z0-9]+$/)
  .meta({ examples: ["req_3kVxW9b2Lq8NzR4tYp6m1A"] });
const JobId = z
  .string()
  .regex(JOB_ID_RE)
  .meta({ examples: ["j_7Xy9kL2mN4pQ8rS1tU3vW5"] });
const JobStatus = z.enum(["queued", "running", "complete", "error", "cancelled"]);
const modality = z.enum(tuple<Modality>(MODALITIES));
const task = z.enum(tuple<Task>(TASKS));
const priority = z.enum(PRIORITIES);

const JobError = z.object({
  code: z.enum(keysOf<JobErrorCode>(JOB_ERROR_MESSAGE)),
  message: z.string(),
  retriable: z.boolean(),
});

const AttemptLogEntry = z.object({
  attempt: z.int().min(1),
  backend: z.string(),
  started_at: dateTime(),
  ended_at: dateTime().optional(),
  outcome: z
    .string()
    .meta({ description: "complete, retry, busy, failed, lost or cancelled; absent while it runs." })
    .optional(),
  busy_handbacks: count().optional(),
  error: z.string().meta({ description: "Admins only: the attempt's error code." }).optional(),
  detail: z.string().meta({ description: "Admins only: what the backend answered." }).optional(),
});

const Job = z.object({
  id: JobId,
  status: JobStatus,
  modality,
  family: z.string(),
  model: z.string(),
  task,
  format: z.string(),
  priority,
  position: count()
    .meta({ description: "Jobs that start before this one if nothing new arrives (queued only); 0 = next." })
    .optional(),
  held: z
    .literal("concurrency_limit")
    .meta({ description: "Waits only for its tenant's running-at-once limit." })
    .optional(),
  progress: z.number().min(0).max(1),
  eta_seconds: count().optional(),
  seed: z.int().min(0).max(SEED_MAX).optional(),
  output: uri().meta({ description: "Signed URL of the (first) output." }).optional(),
  outputs: z.array(uri()).optional(),
  error: JobError.optional(),
  created_at: dateTime(),
  started_at: dateTime().optional(),
  completed_at: dateTime().optional(),
  attempts: count(),
  attempt_log: z.array(AttemptLogEntry),
  gpu_ms: z.number().min(0).optional(),
  backend: z.string().meta({ description: "The backend id that ran (or runs) the job." }).optional(),
  request: z.record(z.string(), z.unknown()).meta({ description: "The validated request." }),
});

const JobCreated = z.object({
  id: JobId,
  status: JobStatus.meta({
    description: "`queued`; a replay after a lost answer shows the job as it is now.",
  }),
  position: count().optional(),
  eta_seconds: count().optional(),
  events_url: uri(),
  created_at: dateTime(),
});

const SyncOutputs = z.object({
  id: JobId,
  status: z.literal("complete"),
  seed: z.int().min(0).max(SEED_MAX).optional(),
  outputs: z.array(uri()),
  gpu_ms: z.number().min(0).optional(),
});

const byPriority = (value: z.ZodType) => z.object({ high: value, normal: value, low: value });
const QueueFigures = {
  depth: byPriority(count()),
  running: count(),
  eta_seconds: z
    .object({ high: count().optional(), normal: count().optional(), low: count().optional() })
    .meta({ description: "How long a new job of the caller would wait at each priority." }),
};
const QueueStatus = z.object({
  ...QueueFigures,
  pools: z.record(z.string(), z.object(QueueFigures)).optional().meta({
    description:
      "With pools (POOLS_FILE): each pool's own figures, by name (`default`: the models no pool names); the members above add the pools up.",
  }),
});

// A model and a LoRA as the catalogue's own schema has them (`GET /models` lists each model without
// its `limits`, and `backends` only the engines some configured backend provides, maybe none).
const ModelCapability = catalogModelSchema.omit({ limits: true }).extend({
  backends: z.array(z.enum(ENGINES)).meta({ description: "Engines some configured backend provides." }),
});
const ModelsResponse = z.object({ image: z.array(ModelCapability), video: z.array(ModelCapability) });
const AliasesResponse = z.record(z.string(), z.object({ family: z.string(), model: z.string() }));
const Lora = catalogLoraSchema;

const CreateUploadResponse = z.object({
  upload_url: uri().meta({ description: "PUT the bytes here (no token: the URL is signed)." }),
  asset_url: uri().meta({ description: "Use as `image`/`mask` once the PUT is done." }),
  expires_at: dateTime(),
});
const UploadedObject = z.object({ digest: z.string(), url: uri() });

const UsageSums = { jobs: count(), gpu_seconds: z.number().min(0), cost_micro_usd: count() };
const UsageReport = z.object({
  from: dateTime(),
  to: dateTime(),
  customer_id: z.string(),
  group_by: z.enum(USAGE_GROUPINGS).optional(),
  total: z.object(UsageSums),
  groups: z.array(z.object({ key: z.string(), ...UsageSums })),
});

const WebhookSecret = z.object({
  secret: z.string().regex(/^whsec_/),
  previous_valid_until: dateTime().optional(),
});
const DeliveryLog = z.object({
  job_id: JobId,
  deliveries: z.array(
    z.object({
      id: z.string().regex(DELIVERY_ID_RE),
      event: z.enum(WEBHOOK_EVENTS),
      type: z.string(),
      url: z.string(),
      state: z.enum(keysOf(DELIVERY_STATES)),
      created_at: dateTime(),
      updated_at: dateTime(),
      replays: count().optional(),
      attempts: z.array(
        z.object({
          at: dateTime(),
          duration_ms: z.number().min(0),
          status_code: z.int().optional(),
          error: z.string().optional(),
          replay: count().optional(),
        }),
      ),
    }),
  ),
});
const ReplayAccepted = z.object({
  id: z.string().regex(DELIVERY_ID_RE),
  job_id: JobId,
  state: z.literal("pending"),
  replay: z.int().min(1),
});
const WebhookEvent = z.object({
  type: z.enum(tuple(WEBHOOK_EVENTS.map((e) => `job.${e}`))),
  timestamp: dateTime(),
  data: Job,
});

const Health = z.object({ status: z.literal("ok") });
const adminOnly = (what: string) =>
  z
    .unknown()
    .meta({ description: `Admins only: ${what}.` })
    .optional();
const Ready = z.object({
  status: z.enum(["ready", "unavailable"]),
  redis: z.enum(["ok", "down"]),
  shutting_down: z.literal(true).optional(),
  backends: adminOnly("each backend's engine, capacity, health, leases, breakers and models"),
  queue: adminOnly("queued and running jobs"),
  capacity: adminOnly("usable slots, running jobs, measured ms per work unit"),
  workers: adminOnly("live worker processes and their slots"),
  tenants: adminOnly("each active tenant's weight, share, queued, running and held jobs"),
  requests: adminOnly("request bodies being read"),
  pipeline: adminOnly("the outbox backlog"),
  auth: adminOnly("which keys verify tokens (never a secret)"),
});

const Problem = z
  .object({
    type: uri().meta({ description: "`https://render-gateway.dev/errors/<code>`" }),
    title: z.string(),
    status: z.int().min(400).max(599),
    detail: z.string(),
    instance: RequestId,
    error: z.enum(tuple(ERROR_CODES)).meta({ description: "The problem code (also the end of `type`)." }),
    message: z.string().meta({ description: "Same as `detail` (the original API's member)." }),
    request_id: RequestId,
    details: z
      .record(z.string(), z.unknown())
      .meta({ description: "e.g. `{field, constraint}` of a validation error." })
      .optional(),
  })
  .meta({
    description:
      "An RFC 9457 problem document (`application/problem+json`) that also carries the original " +
      "API's envelope (`error`, `message`, `request_id`, `details`).",
  });

/** The response component schemas, named as the original spec names them where it has them. */
export function responseSchemas(): Record<string, JsonSchema> {
  const registry = createComponentRegistry();
  const named: Record<string, z.ZodType> = {
    JobId,
    RequestId,
    JobStatus,
    Job,
    JobCreated,
    SyncAccepted: Job.extend({ events_url: uri() }),
    SyncOutputs,
    QueueStatus,
    ModelCapability,
    ModelsResponse,
    AliasesResponse,
    Lora,
    LorasResponse: z.object({ loras: z.array(Lora) }),
    CreateUploadResponse,
    UploadedObject,
    UsageReport,
    WebhookSecret,
    DeliveryLog,
    ReplayAccepted,
    WebhookEvent,
    Health,
    Ready,
    Problem,
  };
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  return componentSchemas(registry, "output");
}
