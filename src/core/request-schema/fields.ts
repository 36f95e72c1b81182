// The request field tables: which fields each route and modality accepts, bounds and defaults.
import type { Modality } from "../formats.js";
import type { NoiseType, WebhookEvent } from "./types.js";

/** Prompt length bounds in characters (Unicode code points). */
export const PROMPT_MAX_CHARS = 4000;
export const NEGATIVE_PROMPT_MAX_CHARS = 2000;
/** Seed bounds (unsigned 32-bit). */
export const SEED_MAX = 4_294_967_295;
/** Events a webhook may subscribe to; the default subscription is the terminal ones. */
export const WEBHOOK_EVENTS: readonly WebhookEvent[] = [
  "started",
  "progress",
  "complete",
  "error",
  "cancelled",
];
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEvent[] = ["complete", "error", "cancelled"];
export const NOISE_TYPES: readonly NoiseType[] = ["gaussian", "perlin", "brownian", "fractal"];

/** Defaults of the original request schemas. */
export const DEFAULTS = Object.freeze({
  image: { cfg: 1, count: 1, strength: 0.8, steps: 25 },
  video: { duration: 2, lightning: false, steps: 28 },
  lora_weight: 1,
});

const COMMON_FIELDS = [
  "prompt",
  "negative_prompt",
  "image",
  "seed",
  "steps",
  "cfg",
  "sampler",
  "scheduler",
  "lora",
] as const;
const IMAGE_ONLY_FIELDS = [
  "mask",
  "strength",
  "guidance",
  "count",
  "noise_type",
  "eta",
  "clip_skip",
  "detail_amount",
  "detail_start",
  "detail_end",
] as const;
const VIDEO_ONLY_FIELDS = ["duration", "shift", "motion_strength", "lightning"] as const;
/** The members of a `POST /queue` body that name the route. */
export const ROUTING_FIELDS = ["modality", "family", "model", "task"] as const;
const QUEUE_FIELDS = [
  "format",
  "backend",
  "priority",
  "webhook",
  "webhook_events",
  "ttl",
  "idempotency_key",
] as const;

/** Body fields a generation request of each modality accepts (the sync route's whole schema). */
export const GENERATION_FIELDS: Readonly<Record<Modality, readonly string[]>> = Object.freeze({
  image: [...COMMON_FIELDS, ...IMAGE_ONLY_FIELDS],
  video: [...COMMON_FIELDS, ...VIDEO_ONLY_FIELDS],
});

/** Body fields `POST /queue` accepts besides the generation fields. */
export const QUEUE_ONLY_FIELDS: readonly string[] = [...ROUTING_FIELDS, ...QUEUE_FIELDS];

/** Every field a body may carry, per modality and route (looked up on every request). */
export const SYNC_BODY_FIELDS: Readonly<Record<Modality, ReadonlySet<string>>> = {
  image: new Set(GENERATION_FIELDS.image),
  video: new Set(GENERATION_FIELDS.video),
};
export const QUEUE_BODY_FIELDS: Readonly<Record<Modality, ReadonlySet<string>>> = {
  image: new Set([...GENERATION_FIELDS.image, ...QUEUE_ONLY_FIELDS]),
  video: new Set([...GENERATION_FIELDS.video, ...QUEUE_ONLY_FIELDS]),
};

/** Fields the server owns (job state, billing, identity); a client sending one gets 400 `server_owned`. */
export const SERVER_OWNED_FIELDS: ReadonlySet<string> = new Set([
  "id",
  "job_id",
  "customer_id",
  "tenant_id",
  "user_id",
  "tier",
  "status",
  "attempts",
  "attempt_log",
  "position",
  "progress",
  "eta_seconds",
  "events_url",
  "output",
  "outputs",
  "created_at",
  "started_at",
  "completed_at",
  "updated_at",
  "gpu_ms",
  "gpu_seconds",
  "price_micro_usd",
  "cost_micro_usd",
  "backend_id",
  "error",
  "request",
  "request_id",
  "input_digest",
  "output_digests",
]);
