// Generation request validation (API.md §3, §7): strict per-modality schemas and one parse per route.
import { z } from "zod";
import {
  PARAM_RANGES,
  SAMPLERS,
  SCHEDULERS,
  describeRange,
  paramRange,
  resolveRoute,
  type Catalog,
  type ModelEntry,
  type ParamRange,
  type Sampler,
  type Scheduler,
  type Task,
} from "./catalog.js";
import { AppError, validationError } from "./errors.js";
import {
  BACKEND_MAX_CHARS,
  FORMAT_MAX_CHARS,
  IDEMPOTENCY_KEY_MAX_CHARS,
  IMAGE_URL_MAX_CHARS,
  JSON_BODY_LIMITS,
  LORA_ID_MAX_CHARS,
  LORA_ITEM_MAX_MEMBERS,
  MAX_DATA_IMAGE_BYTES,
  MAX_LORAS,
  SHOWN_KEY_MAX_CHARS,
  WEBHOOK_URL_MAX_CHARS,
} from "./request-limits.js";
import { defaultFormat, formatSize, type Modality } from "./formats.js";
import { PRIORITIES, type Priority } from "./job.js";

// ---------------------------------------------------------------------------------------------------
// Public types

/**
 * A validated `image`/`mask` value. `data` refs still hold the inline bytes (base64): the API moves them
 * into the CAS at submit. `asset` refs are refused at admission in this version (there are no uploads
 * yet), and `url` refs are fetched into the CAS at admission, so queued jobs only ever hold `digest`
 * refs.
 */
export type ImageRef =
  | { readonly kind: "url"; readonly url: string }
  | {
      readonly kind: "data";
      readonly media_type: DataMediaType;
      readonly base64: string;
      /** Decoded size in bytes (≤ {@link MAX_DATA_IMAGE_BYTES}). */
      readonly size: number;
    }
  | { readonly kind: "digest"; readonly digest: string; readonly url?: string }
  | { readonly kind: "asset"; readonly asset_id: string; readonly url: string };

/** Media types a `data:` image may declare (`jpg` is normalised to `image/jpeg`). */
export type DataMediaType = "image/png" | "image/jpeg" | "image/webp";

/** A LoRA to apply: a catalogue id and its strength (negative inverts the effect). */
export interface LoraApplication {
  readonly id: string;
  readonly weight: number;
}

/** Noise distributions for SDE samplers (image requests). */
export type NoiseType = "gaussian" | "perlin" | "brownian" | "fractal";

/** Job events a webhook may subscribe to. */
export type WebhookEvent = "started" | "progress" | "complete" | "error" | "cancelled";

interface GenerationCommon {
  readonly family: string;
  readonly model: string;
  readonly format: string;
  readonly width: number;
  readonly height: number;
  readonly prompt: string;
  readonly negative_prompt?: string;
  readonly image?: ImageRef;
  /** Absent when the client sent none: the server picks one later and reports it. */
  readonly seed?: number;
  /** The client's value, else the model preset's (`fast` with video `lightning`, else `standard`). */
  readonly steps: number;
  readonly sampler?: Sampler;
  readonly scheduler?: Scheduler;
  readonly lora: readonly LoraApplication[];
}

/** A validated image generation request with defaults applied. */
export interface ImageGenerationRequest extends GenerationCommon {
  readonly modality: "image";
  readonly task: "t2i" | "i2i" | "edit";
  readonly mask?: ImageRef;
  readonly cfg: number;
  readonly count: number;
  /** Defaults to 0.8 for i2i and edit; only present for t2i when sent. */
  readonly strength?: number;
  readonly guidance?: number;
  readonly noise_type?: NoiseType;
  readonly eta?: number;
  readonly clip_skip?: number;
  readonly detail_amount?: number;
  readonly detail_start?: number;
  readonly detail_end?: number;
}

/** A validated video generation request with defaults applied. */
export interface VideoGenerationRequest extends GenerationCommon {
  readonly modality: "video";
  readonly task: "t2v" | "i2v";
  /** Absent means the model's default (the original video schema has no cfg default). */
  readonly cfg?: number;
  readonly duration: number;
  readonly lightning: boolean;
  readonly shift?: number;
  readonly motion_strength?: number;
}

/** A validated generation request (sync route, WebSocket `request`, or the generation part of `/queue`). */
export type GenerationRequest = ImageGenerationRequest | VideoGenerationRequest;

/** Queue options of `POST /queue`. */
export interface QueueOptions {
  readonly priority: Priority;
  /** Engine name or backend id asked for; checked against the backend registry later. */
  readonly backend?: string;
  /** Seconds the job may wait to start. */
  readonly ttl?: number;
  /** https URL; private-range checks happen in the API. */
  readonly webhook?: string;
  /** Present exactly when `webhook` is; defaults to the terminal events. */
  readonly webhook_events?: readonly WebhookEvent[];
  readonly idempotency_key?: string;
}

/** A validated `POST /queue` body. */
export type QueueRequest = GenerationRequest & QueueOptions;

/** Context of {@link parseSyncRequest}: the route already resolved by {@link resolveRoute}. */
export interface SyncContext {
  readonly entry: ModelEntry;
  readonly task: Task;
  /** The `?format=` query value, if any. */
  readonly format?: string;
  readonly catalog: Catalog;
}

/** Context of {@link parseQueueRequest}. */
export interface QueueContext {
  readonly catalog: Catalog;
  /** Lowest accepted `ttl` (60 in production; tests lower it). */
  readonly minTtlS: number;
  /** Highest accepted `ttl` (86400). */
  readonly maxTtlS: number;
}

// ---------------------------------------------------------------------------------------------------
// Field tables

export { MAX_DATA_IMAGE_BYTES };
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
const ROUTING_FIELDS = ["modality", "family", "model", "task"] as const;
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
const SYNC_BODY_FIELDS: Readonly<Record<Modality, ReadonlySet<string>>> = {
  image: new Set(GENERATION_FIELDS.image),
  video: new Set(GENERATION_FIELDS.video),
};
const QUEUE_BODY_FIELDS: Readonly<Record<Modality, ReadonlySet<string>>> = {
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

// ---------------------------------------------------------------------------------------------------
// Image references

/** An engine name or a backend id (`?backend=` and the `backend` body field). */
const BACKEND_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const DIGEST_BODY = "(?:sha256|blake3)-[0-9a-f]{64}";
const DIGEST_RE = new RegExp(`^${DIGEST_BODY}$`);
const OBJECT_PATH_RE = new RegExp(`/objects/(${DIGEST_BODY})$`);
const ASSET_PATH_RE = /\/assets\/(a_[A-Za-z0-9]{16,64})$/;
const DATA_PREFIX_RE = /^data:image\/(png|jpeg|jpg|webp);base64,/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_BASE64_CHARS = Math.ceil(MAX_DATA_IMAGE_BYTES / 3) * 4;
const REF_FORMS =
  "an https URL, a data:image/(png|jpeg|webp);base64 URI, a sha256 digest, or a gateway /objects/ or /assets/ URL";

type RefResult = { ok: true; ref: ImageRef } | { ok: false; constraint: string; message: string };

function classifyImageRef(value: string, field: string): RefResult {
  const bad = (constraint: string, message: string): RefResult => ({ ok: false, constraint, message });
  const data = DATA_PREFIX_RE.exec(value);
  if (data !== null) {
    const payload = value.slice(data[0].length);
    if (payload.length > MAX_BASE64_CHARS + 2) {
      return bad("max_bytes", `${field} data exceeds 1 MiB; upload it with POST /uploads instead`);
    }
    // The padding is counted, not matched with /=+$/: that regex retries from every `=` of a long run
    // (quadratic: 30,000 `=` and an `x` took 0.7 s).
    if (payload.length === 0 || !BASE64_RE.test(payload)) {
      return bad("format", `${field} data is not valid base64`);
    }
    const bare = payload.length - (payload.endsWith("==") ? 2 : payload.endsWith("=") ? 1 : 0);
    if (bare % 4 === 1) return bad("format", `${field} data is not valid base64`);
    const size = Math.floor((bare * 3) / 4);
    if (size === 0) return bad("format", `${field} data is empty`);
    if (size > MAX_DATA_IMAGE_BYTES) {
      return bad("max_bytes", `${field} data exceeds 1 MiB; upload it with POST /uploads instead`);
    }
    const sub = data[1] === "jpg" ? "jpeg" : data[1];
    return {
      ok: true,
      ref: { kind: "data", media_type: `image/${sub}` as DataMediaType, base64: payload, size },
    };
  }
  if (value.length > IMAGE_URL_MAX_CHARS)
    return bad("max_length", `${field} URL is longer than ${IMAGE_URL_MAX_CHARS}`);
  if (DIGEST_RE.test(value)) return { ok: true, ref: { kind: "digest", digest: value } };
  let path: string | undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
    path = url.pathname;
  } catch {
    // A bare gateway path (`/objects/...`, `/assets/...`) has no scheme; anything else is malformed.
    if (value.startsWith("/") && !value.startsWith("//")) path = value.split(/[?#]/, 1)[0];
  }
  if (path !== undefined) {
    const object = OBJECT_PATH_RE.exec(path);
    if (object?.[1] !== undefined)
      return { ok: true, ref: { kind: "digest", digest: object[1], url: value } };
    const asset = ASSET_PATH_RE.exec(path);
    if (asset?.[1] !== undefined) return { ok: true, ref: { kind: "asset", asset_id: asset[1], url: value } };
  }
  if (url !== undefined && url.protocol === "https:" && url.hostname !== "") {
    return { ok: true, ref: { kind: "url", url: value } };
  }
  return bad("format", `${field} must be ${REF_FORMS}`);
}

/**
 * Classifies an `image`/`mask` value: an https URL, a `data:image/(png|jpeg|jpg|webp);base64,` URI of at
 * most 1 MiB decoded, a digest `sha256-<64 hex>` (or `blake3-`), or a gateway object/asset URL of any
 * scheme (or a bare path) whose path ends in `/objects/<digest>` or `/assets/a_<16+ alnum>`.
 * @throws AppError 400 `validation_error` with `details.field` = `field`.
 */
export function parseImageRef(value: string, field = "image"): ImageRef {
  const r = classifyImageRef(value, field);
  if (!r.ok) throw validationError(field, r.constraint, r.message);
  return r.ref;
}

/** The decoded bytes of a `data` ref. */
export function dataRefBytes(ref: Extract<ImageRef, { kind: "data" }>): Uint8Array {
  return new Uint8Array(Buffer.from(ref.base64, "base64"));
}

// ---------------------------------------------------------------------------------------------------
// Zod schemas

function codePoints(s: string, stopAfter: number): number {
  let n = 0;
  for (const _ of s) if (++n > stopAfter) break;
  return n;
}

function text(field: string, min: number, max: number) {
  const bounds = min > 0 ? `${min}–${max} characters` : `at most ${max} characters`;
  return z
    .string({
      error: (iss) => (iss.input === undefined ? `${field} is required` : `${field} must be a string`),
    })
    .superRefine((s, ctx) => {
      // Lengths count Unicode code points, as JSON Schema's minLength/maxLength do.
      const n = s.length > 2 * max ? max + 1 : codePoints(s, max);
      if (n < min || n > max) {
        const constraint = n < min ? "min_length" : "max_length";
        ctx.addIssue({ code: "custom", message: `${field} must be ${bounds}`, params: { constraint } });
      }
    });
}

function numberField(field: string, range: ParamRange, where: string) {
  const kind = range.integer ? "an integer" : "a number";
  const base = range.integer
    ? z.int({ error: () => `${field} must be ${kind}` })
    : z.number({ error: () => `${field} must be ${kind}` });
  const msg = `${field} must be ${kind} in ${describeRange(range)}${where}`;
  let s = base;
  if (range.min !== undefined) s = s.min(range.min, msg);
  if (range.max !== undefined) s = s.max(range.max, msg);
  return s;
}

function enumField<T extends string>(field: string, values: readonly T[]) {
  return z.enum(values as [T, ...T[]], { error: () => `${field} must be one of ${values.join(", ")}` });
}

function refField(field: string) {
  return z.string({ error: () => `${field} must be a string (${REF_FORMS})` }).transform((v, ctx) => {
    const r = classifyImageRef(v, field);
    if (r.ok) return r.ref;
    ctx.addIssue({ code: "custom", message: r.message, params: { constraint: r.constraint } });
    return z.NEVER;
  });
}

const loraItemSchema = z.strictObject(
  {
    id: z
      .string({
        error: (iss) => (iss.input === undefined ? "lora id is required" : "lora id must be a string"),
      })
      .min(1, "lora id must not be empty")
      .max(LORA_ID_MAX_CHARS, `lora id must be at most ${LORA_ID_MAX_CHARS} characters`),
    // The original gives weight no range (negative values invert the effect); any finite number passes.
    weight: z.number({ error: () => "lora weight must be a number" }).default(DEFAULTS.lora_weight),
  },
  { error: () => "each lora entry must be an object {id, weight}" },
);

type RangeOf = (param: string) => ParamRange;

/**
 * Zod schema of a modality's generation fields with the given ranges (strict: unknown keys fail). Only
 * types, ranges and formats are checked here; {@link parseSyncRequest} adds the checks that need the
 * model, the task or the catalogue (required image/mask, LoRA ids, formats).
 */
export function generationFieldsSchema(modality: Modality, rangeOf: RangeOf, where = "") {
  const num = (param: string) => numberField(param, rangeOf(param), where).optional();
  const common = {
    prompt: text("prompt", 1, PROMPT_MAX_CHARS),
    negative_prompt: text("negative_prompt", 0, NEGATIVE_PROMPT_MAX_CHARS).optional(),
    image: refField("image").optional(),
    seed: numberField("seed", { min: 0, max: SEED_MAX, integer: true }, "").optional(),
    steps: num("steps"),
    cfg: num("cfg"),
    sampler: enumField("sampler", SAMPLERS).optional(),
    scheduler: enumField("scheduler", SCHEDULERS).optional(),
    // The item count is checked before any item (checkSizes); max() here only documents it, since
    // zod checks it after validating every item.
    lora: z
      .array(loraItemSchema, { error: () => "lora must be an array of {id, weight}" })
      .max(MAX_LORAS, `lora must have at most ${MAX_LORAS} items`)
      .optional(),
  };
  if (modality === "image") {
    return z.strictObject({
      ...common,
      mask: refField("mask").optional(),
      strength: num("strength"),
      guidance: num("guidance"),
      count: num("count"),
      noise_type: enumField("noise_type", NOISE_TYPES).optional(),
      eta: num("eta"),
      clip_skip: num("clip_skip"),
      detail_amount: num("detail_amount"),
      detail_start: num("detail_start"),
      detail_end: num("detail_end"),
    });
  }
  return z.strictObject({
    ...common,
    duration: num("duration"),
    shift: num("shift"),
    motion_strength: num("motion_strength"),
    lightning: z.boolean({ error: () => "lightning must be a boolean" }).optional(),
  });
}

const globalRange =
  (modality: Modality): RangeOf =>
  (param) =>
    PARAM_RANGES[modality][param] ?? { integer: false };

/** Image generation fields with the global ranges (documentation, clients); see {@link parseSyncRequest}. */
export const imageGenerationSchema = generationFieldsSchema("image", globalRange("image"));
/** Video generation fields with the global ranges (documentation, clients); see {@link parseSyncRequest}. */
export const videoGenerationSchema = generationFieldsSchema("video", globalRange("video"));

/**
 * Zod schema of the queue options of `POST /queue` (besides routing and generation fields).
 * @param minTtlS lowest accepted `ttl` (60 in production).
 * @param maxTtlS highest accepted `ttl` (86400).
 */
export function queueOptionsSchema(minTtlS: number, maxTtlS: number) {
  return z.strictObject({
    format: z
      .string({ error: () => "format must be a string" })
      .max(FORMAT_MAX_CHARS, `format must be at most ${FORMAT_MAX_CHARS} characters`)
      .optional(),
    backend: z
      .string({ error: () => "backend must be a string" })
      .max(BACKEND_MAX_CHARS, {
        error: `backend must be at most ${BACKEND_MAX_CHARS} characters`,
        abort: true,
      })
      .regex(BACKEND_RE, "backend must be an engine name or a backend id")
      .optional(),
    priority: enumField("priority", PRIORITIES).default("normal"),
    webhook: z
      .string({ error: () => "webhook must be a string" })
      .max(WEBHOOK_URL_MAX_CHARS, {
        error: `webhook must be at most ${WEBHOOK_URL_MAX_CHARS} characters`,
        abort: true,
      })
      .refine(isHttpsUrl, { message: "webhook must be an https URL", params: { constraint: "format" } })
      .optional(),
    webhook_events: z
      .array(enumField("webhook_events", WEBHOOK_EVENTS), {
        error: () => `webhook_events must be an array of ${WEBHOOK_EVENTS.join(", ")}`,
      })
      .max(WEBHOOK_EVENTS.length, `webhook_events must have at most ${WEBHOOK_EVENTS.length} items`)
      .refine((events) => new Set(events).size === events.length, {
        message: "webhook_events must not list an event twice",
        params: { constraint: "unique" },
      })
      .optional(),
    ttl: numberField("ttl", { min: minTtlS, max: maxTtlS, integer: true }, " seconds").optional(),
    idempotency_key: z
      .string({ error: () => "idempotency_key must be a string" })
      .min(1, "idempotency_key must not be empty")
      .max(IDEMPOTENCY_KEY_MAX_CHARS, {
        error: `idempotency_key must be at most ${IDEMPOTENCY_KEY_MAX_CHARS} characters`,
        abort: true,
      })
      // Control characters cannot travel in the Idempotency-Key header, which shares the key space.
      .regex(/^[^\p{Cc}]*$/u, "idempotency_key must not contain control characters")
      // The key is stored in the job record, whose fields Redis's cjson decodes: it refuses a lone
      // surrogate (`"\ud800"`), which is no Unicode text anyway.
      .refine(isWellFormed, {
        message: "idempotency_key must be Unicode text (no lone surrogate)",
        params: { constraint: "format" },
      })
      .optional(),
  });
}

/** True when `value` has the form of an engine name or a backend id (at most 64 characters). */
export function isBackendName(value: string): boolean {
  return value.length <= BACKEND_MAX_CHARS && BACKEND_RE.test(value);
}

/**
 * True when `value` is Unicode text: no lone surrogate (JSON lets one be written as `"\ud800"`).
 * In a `u` regex a well-formed pair is one code point, so only a lone half matches `\p{Cs}`.
 */
function isWellFormed(value: string): boolean {
  return !/\p{Cs}/u.test(value);
}

/** An https URL with a host, in Unicode text (it is stored in the job record, see isWellFormed). */
function isHttpsUrl(value: string): boolean {
  if (!isWellFormed(value)) return false;
  try {
    const u = new URL(value);
    return u.protocol === "https:" && u.hostname !== "";
  } catch {
    return false;
  }
}

// Schemas depend on the model's limits (and ttl bounds), so they are built once per model and cached.
const schemaCache = new WeakMap<ModelEntry, Map<string, z.ZodType>>();

function cached(entry: ModelEntry, key: string, build: () => z.ZodType): z.ZodType {
  let perEntry = schemaCache.get(entry);
  if (perEntry === undefined) {
    perEntry = new Map();
    schemaCache.set(entry, perEntry);
  }
  let schema = perEntry.get(key);
  if (schema === undefined) {
    schema = build();
    perEntry.set(key, schema);
  }
  return schema;
}

function entrySchema(entry: ModelEntry): z.ZodObject {
  return cached(entry, "sync", () => {
    const narrowed = entry.limits !== undefined && Object.keys(entry.limits).length > 0;
    const where = narrowed ? ` for ${entry.family}/${entry.model}` : "";
    return generationFieldsSchema(entry.modality, (p) => paramRange(entry, p) ?? { integer: false }, where);
  }) as z.ZodObject;
}

function entryQueueSchema(entry: ModelEntry, minTtlS: number, maxTtlS: number): z.ZodType {
  return cached(entry, `queue:${minTtlS}:${maxTtlS}`, () =>
    entrySchema(entry).extend({
      ...queueOptionsSchema(minTtlS, maxTtlS).shape,
      modality: z.string(),
      family: z.string(),
      model: z.string(),
      task: z.string(),
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// Parsing

type Body = Record<string, unknown>;

function asObject(body: unknown): Body {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw validationError("body", "type", "request body must be a JSON object");
  }
  // The member count is bounded before anything walks the members (a body that came through the
  // HTTP reader is bounded already; other callers may pass anything).
  let members = 0;
  for (const _ in body) {
    if (++members > JSON_BODY_LIMITS.maxMembers) {
      throw validationError(
        "body",
        "max_members",
        `request body has more than ${JSON_BODY_LIMITS.maxMembers} members`,
      );
    }
  }
  // `null` means "not given" (generated clients send it for unset optional members); fromEntries keeps
  // a `__proto__` key as an own property, so it is reported as an unknown field, not applied.
  const values = Object.values(body);
  if (!values.includes(null) && !Object.prototype.hasOwnProperty.call(body, "__proto__")) return body as Body;
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null));
}

/**
 * The arrays and maps below the top level, bounded before any per-item work (zod checks `max()`
 * only after validating every item).
 * @throws AppError 400 `validation_error` with `max_items` or `max_members`.
 */
function checkSizes(body: Body): void {
  const lora = body["lora"];
  if (Array.isArray(lora)) {
    if (lora.length > MAX_LORAS) {
      throw validationError("lora", "max_items", `lora must have at most ${MAX_LORAS} items`);
    }
    lora.forEach((item: unknown, i) => {
      if (item === null || typeof item !== "object") return;
      let members = 0;
      for (const _ in item) {
        if (++members > LORA_ITEM_MAX_MEMBERS) {
          throw validationError(`lora.${i}`, "max_members", "each lora entry must be an object {id, weight}");
        }
      }
    });
  }
  const events = body["webhook_events"];
  if (Array.isArray(events) && events.length > WEBHOOK_EVENTS.length) {
    throw validationError(
      "webhook_events",
      "max_items",
      `webhook_events must have at most ${WEBHOOK_EVENTS.length} items`,
    );
  }
}

function withoutNullLoraMembers(body: Body): Body {
  checkSizes(body);
  const lora = body["lora"];
  if (!Array.isArray(lora)) return body;
  const items: unknown[] = lora.map((item: unknown) =>
    item !== null && typeof item === "object" && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).filter(([, v]) => v !== null))
      : item,
  );
  return { ...body, lora: items };
}

function checkServerOwned(body: Body): void {
  for (const key of Object.keys(body)) {
    if (SERVER_OWNED_FIELDS.has(key)) {
      throw validationError(key, "server_owned", `${key} is set by the server and cannot be sent`);
    }
  }
}

function checkKnownFields(body: Body, allowed: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(body)) {
    if (allowed.has(key)) continue;
    const guess = closest(key, [...allowed]);
    const hint = guess === undefined ? "" : ` (did you mean ${guess}?)`;
    const shown = shownKey(key);
    throw validationError(shown, "unknown", `unknown field ${shown} in ${what}${hint}`);
  }
}

/** A key as error messages show it: cut at {@link SHOWN_KEY_MAX_CHARS} characters. */
function shownKey(key: string): string {
  return key.length > SHOWN_KEY_MAX_CHARS ? `${key.slice(0, SHOWN_KEY_MAX_CHARS)}…` : key;
}

/**
 * The allowed name within edit distance 2 of `key`, if any: a hint for typos. Cheap whatever the
 * key: names whose length differs by 3 or more are skipped before any work, so a key is compared
 * only with names of about its length (the longest is 15 characters).
 */
function closest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const name of allowed) {
    const d = editDistance(key, name, bestD);
    if (d < bestD) {
      best = name;
      bestD = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, (prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? cap;
}

function valueAt(body: Body, path: readonly PropertyKey[]): unknown {
  let v: unknown = body;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** Turns the first zod issue into the API's 400 with a dotted `details.field` (`lora.0.weight`). */
function issueError(issue: z.core.$ZodIssue, body: Body): AppError {
  const field = issue.path.map(String).join(".");
  switch (issue.code) {
    case "unrecognized_keys": {
      const key = shownKey(issue.keys[0] ?? "");
      const f = field === "" ? key : `${field}.${key}`;
      return validationError(f, "unknown", `unknown field ${f}`);
    }
    case "custom": {
      const constraint =
        typeof issue.params?.["constraint"] === "string" ? issue.params["constraint"] : "invalid";
      return validationError(field, constraint, issue.message);
    }
    case "too_small":
    case "too_big": {
      const low = issue.code === "too_small";
      const constraint =
        issue.origin === "string"
          ? low
            ? "min_length"
            : "max_length"
          : issue.origin === "array"
            ? low
              ? "min_items"
              : "max_items"
            : low
              ? "minimum"
              : "maximum";
      return validationError(field, constraint, issue.message);
    }
    case "invalid_type": {
      const value = valueAt(body, issue.path);
      const constraint =
        value === undefined
          ? "required"
          : issue.expected === "int" && typeof value === "number"
            ? "integer"
            : "type";
      return validationError(field, constraint, issue.message);
    }
    case "invalid_value":
      return validationError(field, "enum", issue.message);
    case "invalid_format":
      return validationError(field, "format", issue.message);
    default:
      return validationError(field, "invalid", issue.message);
  }
}

function parseWith<T>(schema: z.ZodType, body: Body): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const first = result.error.issues[0];
    throw first === undefined
      ? validationError("body", "invalid", "invalid request")
      : issueError(first, body);
  }
  return result.data as T;
}

/** What the generation schemas produce (the union of both modalities' members). */
interface ParsedGeneration {
  prompt: string;
  negative_prompt?: string;
  image?: ImageRef;
  mask?: ImageRef;
  seed?: number;
  steps?: number;
  cfg?: number;
  sampler?: Sampler;
  scheduler?: Scheduler;
  lora?: LoraApplication[];
  strength?: number;
  guidance?: number;
  count?: number;
  noise_type?: NoiseType;
  eta?: number;
  clip_skip?: number;
  detail_amount?: number;
  detail_start?: number;
  detail_end?: number;
  duration?: number;
  shift?: number;
  motion_strength?: number;
  lightning?: boolean;
}

/** What the queue options schema produces. */
interface ParsedQueueOptions {
  format?: string;
  backend?: string;
  priority: Priority;
  webhook?: string;
  webhook_events?: WebhookEvent[];
  ttl?: number;
  idempotency_key?: string;
}

function resolveFormat(
  entry: ModelEntry,
  format: string | undefined,
): { format: string; width: number; height: number } {
  let id = format;
  if (id === undefined || id === "") {
    const preferred = defaultFormat(entry.modality);
    id = entry.formats.includes(preferred) ? preferred : (entry.formats[0] ?? preferred);
  } else if (!entry.formats.includes(id)) {
    throw validationError(
      "format",
      "enum",
      `format ${id} is not offered by ${entry.family}/${entry.model} (formats: ${entry.formats.join(", ")})`,
    );
  }
  const size = formatSize(entry.modality, id);
  if (size === undefined) throw validationError("format", "enum", `unknown ${entry.modality} format ${id}`);
  return { format: id, ...size };
}

function checkLoras(lora: readonly LoraApplication[], entry: ModelEntry, catalog: Catalog): void {
  const seen = new Set<string>();
  for (const item of lora) {
    const known = catalog.lora(item.id);
    if (known === undefined) {
      throw validationError(
        "lora",
        "unknown",
        `unknown LoRA ${item.id} (GET /models/loras lists the available ones)`,
      );
    }
    if (!known.families.includes(entry.family)) {
      throw validationError(
        "lora",
        "family",
        `LoRA ${item.id} is made for ${known.families.join(", ")}, not ${entry.family}`,
      );
    }
    if (seen.has(item.id)) throw validationError("lora", "unique", `LoRA ${item.id} is listed twice`);
    seen.add(item.id);
  }
}

function presetSteps(entry: ModelEntry, lightning: boolean): number | undefined {
  const presets = entry.presets;
  if (presets === undefined) return undefined;
  if (lightning && presets["fast"]?.steps !== undefined) return presets["fast"].steps;
  if (presets["standard"]?.steps !== undefined) return presets["standard"].steps;
  return Object.values(presets).find((p) => p.steps !== undefined)?.steps;
}

function clamp(value: number, range: ParamRange | undefined): number {
  let v = value;
  if (range?.min !== undefined) v = Math.max(v, range.min);
  if (range?.max !== undefined) v = Math.min(v, range.max);
  return v;
}

/** Validates the generation fields against the model and normalises them (defaults, format, refs). */
function normalise(
  p: ParsedGeneration,
  entry: ModelEntry,
  task: Task,
  format: string | undefined,
  catalog: Catalog,
): GenerationRequest {
  if ((task === "i2i" || task === "i2v" || task === "edit") && p.image === undefined) {
    throw validationError("image", "required", `image required for ${task} task`);
  }
  if (task === "edit" && p.mask === undefined)
    throw validationError("mask", "required", "mask required for edit task");
  const lora = p.lora ?? [];
  checkLoras(lora, entry, catalog);
  if (p.detail_start !== undefined && p.detail_end !== undefined && p.detail_start > p.detail_end) {
    throw validationError("detail_end", "order", "detail_end must not be below detail_start");
  }
  const fmt = resolveFormat(entry, format);
  const lightning = p.lightning ?? DEFAULTS.video.lightning;
  const fallbackSteps = entry.modality === "image" ? DEFAULTS.image.steps : DEFAULTS.video.steps;
  const steps = p.steps ?? clamp(presetSteps(entry, lightning) ?? fallbackSteps, paramRange(entry, "steps"));
  const common = {
    family: entry.family,
    model: entry.model,
    ...fmt,
    prompt: p.prompt,
    ...(p.negative_prompt !== undefined && { negative_prompt: p.negative_prompt }),
    ...(p.image !== undefined && { image: p.image }),
    ...(p.seed !== undefined && { seed: p.seed }),
    steps,
    ...(p.sampler !== undefined && { sampler: p.sampler }),
    ...(p.scheduler !== undefined && { scheduler: p.scheduler }),
    lora: lora.map((l) => ({ id: l.id, weight: l.weight })),
  };
  if (entry.modality === "image") {
    const withImage = task === "i2i" || task === "edit";
    const strength = p.strength ?? (withImage ? DEFAULTS.image.strength : undefined);
    return {
      modality: "image",
      task: task as ImageGenerationRequest["task"],
      ...common,
      ...(p.mask !== undefined && { mask: p.mask }),
      cfg: p.cfg ?? DEFAULTS.image.cfg,
      count: p.count ?? DEFAULTS.image.count,
      ...(strength !== undefined && { strength }),
      ...(p.guidance !== undefined && { guidance: p.guidance }),
      ...(p.noise_type !== undefined && { noise_type: p.noise_type }),
      ...(p.eta !== undefined && { eta: p.eta }),
      ...(p.clip_skip !== undefined && { clip_skip: p.clip_skip }),
      ...(p.detail_amount !== undefined && { detail_amount: p.detail_amount }),
      ...(p.detail_start !== undefined && { detail_start: p.detail_start }),
      ...(p.detail_end !== undefined && { detail_end: p.detail_end }),
    };
  }
  return {
    modality: "video",
    task: task as VideoGenerationRequest["task"],
    ...common,
    ...(p.cfg !== undefined && { cfg: p.cfg }),
    duration: p.duration ?? DEFAULTS.video.duration,
    lightning,
    ...(p.shift !== undefined && { shift: p.shift }),
    ...(p.motion_strength !== undefined && { motion_strength: p.motion_strength }),
  };
}

function assertRoutable(entry: ModelEntry, task: Task): void {
  if (!entry.tasks.includes(task)) {
    throw new AppError("not_found", `model ${entry.family}/${entry.model} does not offer task ${task}`, {
      details: { field: "task" },
    });
  }
}

/**
 * Validates the body of `POST /{modality}/{family}/{model}/{task}` (and a WebSocket `request`) for a
 * route already resolved by {@link resolveRoute}, and returns it normalised: canonical family/model,
 * format (`ctx.format` or the modality default) with its pixel size, defaults applied (`seed` stays
 * absent when not sent), image/mask classified.
 * @throws AppError 400 `validation_error` with `details.field` (dotted path) for the first problem:
 *   a body that is not an object (`body`), a server-owned field (`server_owned`), a field outside the
 *   modality's schema (`unknown`), a bad type or range, a missing image/mask (`required`), an unknown
 *   LoRA or one of another family (`lora`), a format the model lacks (`format`).
 */
export function parseSyncRequest(body: unknown, ctx: SyncContext): GenerationRequest {
  const obj = withoutNullLoraMembers(asObject(body));
  assertRoutable(ctx.entry, ctx.task);
  checkServerOwned(obj);
  checkKnownFields(obj, SYNC_BODY_FIELDS[ctx.entry.modality], `a ${ctx.entry.modality} request`);
  const parsed = parseWith<ParsedGeneration>(entrySchema(ctx.entry), obj);
  return normalise(parsed, ctx.entry, ctx.task, ctx.format, ctx.catalog);
}

function routingField(obj: Body, field: (typeof ROUTING_FIELDS)[number]): string {
  const v = obj[field];
  if (v === undefined) throw validationError(field, "required", `${field} is required`);
  if (typeof v !== "string") throw validationError(field, "type", `${field} must be a string`);
  return v;
}

/**
 * Validates a `POST /queue` body: routing (`modality family model task`, resolved with
 * {@link resolveRoute}, Hugging Face aliases accepted), generation fields as for the sync route,
 * `format` (one of the model's), `backend`, and the queue options (`priority` default normal,
 * `webhook` https, `webhook_events` default terminal events, `ttl` in [minTtlS, maxTtlS],
 * `idempotency_key` ≤ 64 chars).
 * @throws AppError 400 `validation_error` as {@link parseSyncRequest} (plus missing routing fields,
 *   a bad modality or task); 404 `not_found` for an unknown or unavailable model or a task it lacks.
 */
export function parseQueueRequest(body: unknown, ctx: QueueContext): QueueRequest {
  const obj = withoutNullLoraMembers(asObject(body));
  checkServerOwned(obj);
  const route = resolveRoute(ctx.catalog, {
    modality: routingField(obj, "modality"),
    family: routingField(obj, "family"),
    model: routingField(obj, "model"),
    task: routingField(obj, "task"),
  });
  const { entry, task } = route;
  checkKnownFields(obj, QUEUE_BODY_FIELDS[entry.modality], `a ${entry.modality} job`);
  const parsed = parseWith<ParsedGeneration & ParsedQueueOptions>(
    entryQueueSchema(entry, ctx.minTtlS, ctx.maxTtlS),
    obj,
  );
  if (parsed.webhook_events !== undefined && parsed.webhook === undefined) {
    throw validationError("webhook_events", "requires_webhook", "webhook_events needs a webhook");
  }
  const generation = normalise(parsed, entry, task, parsed.format, ctx.catalog);
  const events =
    parsed.webhook === undefined
      ? undefined
      : WEBHOOK_EVENTS.filter((e) => (parsed.webhook_events ?? DEFAULT_WEBHOOK_EVENTS).includes(e));
  // `generation` is this call's own fresh object: the queue options are added to it in place.
  const out: Record<string, unknown> = generation as unknown as Record<string, unknown>;
  out.priority = parsed.priority;
  if (parsed.backend !== undefined) out.backend = parsed.backend;
  if (parsed.ttl !== undefined) out.ttl = parsed.ttl;
  if (parsed.webhook !== undefined) out.webhook = parsed.webhook;
  if (events !== undefined) out.webhook_events = events;
  if (parsed.idempotency_key !== undefined) out.idempotency_key = parsed.idempotency_key;
  return out as unknown as QueueRequest;
}

/** Number of outputs a request produces (`count` for images, 1 for video). */
export function outputCount(req: GenerationRequest): number {
  return req.modality === "image" ? req.count : 1;
}
