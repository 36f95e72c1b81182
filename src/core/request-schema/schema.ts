// Zod schemas of the request fields: types, ranges and formats (checks that need the model, the task
// or the catalogue are the parser's), built once per model and cached.
import { formatFamilyModel } from "../model-route.js";
import { z } from "zod";
import { PARAM_RANGES, SAMPLERS, SCHEDULERS, describeRange, paramRange } from "../catalog.js";
import type { ModelEntry, ParamRange, Sampler, Scheduler } from "../catalog.js";
import type { Modality } from "../formats.js";
import { PRIORITIES, type Priority } from "../job.js";
import {
  BACKEND_MAX_CHARS,
  FORMAT_MAX_CHARS,
  IDEMPOTENCY_KEY_MAX_CHARS,
  LORA_ID_MAX_CHARS,
  MAX_LORAS,
  WEBHOOK_URL_MAX_CHARS,
} from "../request-limits.js";
import {
  DEFAULTS,
  NEGATIVE_PROMPT_MAX_CHARS,
  NOISE_TYPES,
  PROMPT_MAX_CHARS,
  SEED_MAX,
  WEBHOOK_EVENTS,
} from "./fields.js";
import { REF_FORMS, classifyImageRef } from "./image-ref.js";
import type { ImageRef, LoraApplication, NoiseType, WebhookEvent } from "./types.js";

/** An engine name or a backend id (`?backend=` and the `backend` body field). */
const BACKEND_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function codePoints(s: string, stopAfter: number): number {
  let n = 0;
  for (const _ of s) if (++n > stopAfter) break;
  return n;
}

function text(field: string, min: number, max: number) {
  const bounds = min > 0 ? `${min}–${max} characters` : `at most ${max} characters`;
  // The length check is a refinement, which JSON Schema (GET /openapi.json) cannot see: `meta` states it.
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
    })
    .meta(min > 0 ? { minLength: min, maxLength: max } : { maxLength: max });
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
  return z
    .string({ error: () => `${field} must be a string (${REF_FORMS})` })
    .transform((v, ctx) => {
      const r = classifyImageRef(v, field);
      if (r.ok) return r.ref;
      ctx.addIssue({ code: "custom", message: r.message, params: { constraint: r.constraint } });
      return z.NEVER;
    })
    .meta({ description: `One of: ${REF_FORMS}.` });
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
      .meta({ format: "uri", description: "An https URL on a public host." })
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
      .meta({ uniqueItems: true })
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

export function entrySchema(entry: ModelEntry): z.ZodObject {
  return cached(entry, "sync", () => {
    const narrowed = entry.limits !== undefined && Object.keys(entry.limits).length > 0;
    const where = narrowed ? ` for ${formatFamilyModel(entry.family, entry.model)}` : "";
    return generationFieldsSchema(entry.modality, (p) => paramRange(entry, p) ?? { integer: false }, where);
  }) as z.ZodObject;
}

export function entryQueueSchema(entry: ModelEntry, minTtlS: number, maxTtlS: number): z.ZodType {
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

/** What the generation schemas produce (the union of both modalities' members). */
export interface ParsedGeneration {
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
export interface ParsedQueueOptions {
  format?: string;
  backend?: string;
  priority: Priority;
  webhook?: string;
  webhook_events?: WebhookEvent[];
  ttl?: number;
  idempotency_key?: string;
}
