// What each request field means, for the reference page: the words only. Types, ranges, formats and
// defaults come from the zod schemas and core tables (request-schemas.ts adds these notes to them).

/** One line per field of the generation and queue bodies (API.md §3, §7; the original spec's wording). */
export const FIELD_NOTES: Readonly<Record<string, string>> = Object.freeze({
  prompt: "What to generate.",
  negative_prompt: "What to avoid.",
  image: "Source image: required for i2i, edit and i2v.",
  mask: "Inpainting mask, required for edit: white = change, black = keep.",
  seed: "Random seed; when absent the server picks one and reports it (`seed`, `X-Seed`).",
  steps: "Inference steps; the model's default when absent (see the presets of GET /models).",
  cfg: "Classifier-free guidance scale.",
  guidance: "Prompt adherence (FLUX guidance).",
  strength: "Transformation strength (i2i).",
  count: "Images to generate; more than one makes the sync route answer JSON `outputs`.",
  sampler: "Sampling algorithm.",
  scheduler: "Noise schedule.",
  lora: "LoRA adapters from GET /models/loras, each made for the model's family; at most once each.",
  noise_type: "Noise distribution for SDE samplers.",
  eta: "Noise injection strength (SDE samplers): 0.3 subtle, 0.5 balanced, 0.7 high detail, 1.0 maximum.",
  clip_skip: "CLIP layers to skip (SDXL).",
  detail_amount: "Detail enhancement (0.1–1.0 recommended).",
  detail_start: "Where in denoising the detail enhancement starts.",
  detail_end: "Where in denoising the detail enhancement ends.",
  duration: "Clip length in seconds.",
  shift: "Timestep shift.",
  motion_strength: "Amount of motion (model-dependent).",
  lightning: "Distilled LightX2V weights (wan): fewer steps.",
  modality: "Output kind; with family, model and task it names the model route.",
  family: "Model family, or the organisation part of a Hugging Face id (GET /models/aliases).",
  model: "Model within the family, or the name part of a Hugging Face id.",
  task: "Operation: t2i, i2i, edit (image); t2v, i2v (video). The model must offer it.",
  format: "Output size: one of the model's formats (GET /models); the modality's default when absent.",
  backend: "An engine (nunchaku, torch, tensorrt) or a backend id that serves the model.",
  priority: "Queue priority; `high` needs a tier that allows it (403 otherwise).",
  webhook: "Where deliveries of the job's events go (Standard Webhooks; README Webhooks).",
  webhook_events: "Events to deliver; the terminal ones (complete, error, cancelled) when absent.",
  ttl: "Seconds the job may wait to start; then it is cancelled with error code ttl_expired, never billed.",
  idempotency_key:
    "Same customer, key and body within 24 h → the first answer again (Idempotent-Replayed: true); " +
    "another body → 422. Also accepted as the Idempotency-Key header.",
});
