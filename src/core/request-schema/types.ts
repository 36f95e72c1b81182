// What a validated generation request is: the types the parsers return, and what follows from them.
import type { Catalog, ModelEntry, Sampler, Scheduler, Task } from "../catalog.js";
import type { Priority } from "../job.js";

/**
 * A validated `image`/`mask` value. `data` refs still hold the inline bytes (base64): the API moves them
 * into the CAS at submit. `asset` refs (uploads) become the digest their PUT stored, and `url` refs are
 * fetched into the CAS at admission, so queued jobs only ever hold `digest` refs.
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

/** Number of outputs a request produces (`count` for images, 1 for video). */
export function outputCount(req: GenerationRequest): number {
  return req.modality === "image" ? req.count : 1;
}
