// Generation request validation (API.md §3, §7): the public face of request-schema/ — types in
// types.ts, field tables in fields.ts, image refs, zod schemas, issue wording, normalisation, parses.
export { MAX_DATA_IMAGE_BYTES } from "./request-limits.js";
export type {
  DataMediaType,
  GenerationRequest,
  ImageGenerationRequest,
  ImageRef,
  LoraApplication,
  NoiseType,
  QueueContext,
  QueueOptions,
  QueueRequest,
  SyncContext,
  VideoGenerationRequest,
  WebhookEvent,
} from "./request-schema/types.js";
export { outputCount } from "./request-schema/types.js";
export {
  DEFAULTS,
  DEFAULT_WEBHOOK_EVENTS,
  GENERATION_FIELDS,
  NEGATIVE_PROMPT_MAX_CHARS,
  NOISE_TYPES,
  PROMPT_MAX_CHARS,
  QUEUE_ONLY_FIELDS,
  SEED_MAX,
  SERVER_OWNED_FIELDS,
  WEBHOOK_EVENTS,
} from "./request-schema/fields.js";
export { dataRefBytes, parseImageRef } from "./request-schema/image-ref.js";
export {
  generationFieldsSchema,
  imageGenerationSchema,
  isBackendName,
  queueOptionsSchema,
  videoGenerationSchema,
} from "./request-schema/schema.js";
export { parseQueueRequest, parseSyncRequest } from "./request-schema/parse.js";
export { defaultSteps } from "./request-schema/normalise.js";
