// Validation of KServe v2 infer requests into one normalised job, and the `[sim:...]` prompt triggers.
import { z } from "zod";
import { describeZodError } from "./config.js";

/** Limits of what the simulator accepts; a real server has limits too, and 400s beyond them. */
const SIM_REQUEST_LIMITS = Object.freeze({
  minSide: 64,
  maxSide: 2048,
  sideMultiple: 8,
  maxSteps: 1000,
  maxCount: 4,
  maxPromptChars: 20_000,
  minDurationS: 0.5,
  maxDurationS: 10,
  maxFps: 30,
  maxSlowMs: 600_000,
  minPreviewWidth: 8,
  maxPreviewWidth: 1024,
});

/** Image container formats the simulator encodes. */
export type ImageFormat = "png" | "webp";

/**
 * Behaviours forced from the prompt, for tests (`[sim:400]`, `[sim:hang]`, `[sim:slow=250]`,
 * `[sim:preview=320]` …).
 */
export interface SimTriggers {
  readonly badRequest: boolean;
  readonly fail: boolean;
  readonly busy: boolean;
  readonly hang: boolean;
  /** Extra milliseconds spread over the steps. */
  readonly slowMs: number;
  /** Width of the preview frames in pixels (8–1024; default 64): larger frames, for backpressure tests. */
  readonly previewWidth?: number;
}

/** A validated generation request. */
export interface SimJob {
  readonly id: string;
  readonly model: string;
  readonly modality: "image" | "video";
  readonly task: string;
  readonly seed: number;
  readonly steps: number;
  readonly width: number;
  readonly height: number;
  /** Outputs to produce: 1–4 for images, always 1 for video. */
  readonly count: number;
  /** Image format; `undefined` for video. */
  readonly format: ImageFormat | undefined;
  readonly durationS: number;
  readonly fps: number;
  readonly previews: boolean;
  readonly prompt: string;
  readonly negativePrompt: string | undefined;
  /** The parsed `request` input (structured fields), `{}` when absent. */
  readonly structured: Readonly<Record<string, unknown>>;
  readonly triggers: SimTriggers;
}

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const side = z
  .number()
  .int()
  .min(SIM_REQUEST_LIMITS.minSide)
  .max(SIM_REQUEST_LIMITS.maxSide)
  .refine((v) => v % SIM_REQUEST_LIMITS.sideMultiple === 0, {
    message: `must be a multiple of ${SIM_REQUEST_LIMITS.sideMultiple}`,
  });

const parametersSchema = z
  .object({
    modality: z.enum(["image", "video"]),
    task: z.string().min(1).max(64),
    seed: z.number().int().min(0).max(4_294_967_295),
    steps: z.number().int().min(1).max(SIM_REQUEST_LIMITS.maxSteps),
    width: side,
    height: side,
    count: z.number().int().min(1).max(SIM_REQUEST_LIMITS.maxCount).optional(),
    output_format: z.enum(["png", "webp", "mp4"]).optional(),
    duration: z.number().min(SIM_REQUEST_LIMITS.minDurationS).max(SIM_REQUEST_LIMITS.maxDurationS).optional(),
    fps: z.number().int().min(1).max(SIM_REQUEST_LIMITS.maxFps).optional(),
    previews: z.boolean().optional(),
  })
  .catchall(scalar);

const tensorSchema = z.object({
  name: z.string().min(1),
  datatype: z.string(),
  shape: z.array(z.number().int().min(-1)),
  data: z.array(z.unknown()),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

const inferRequestSchema = z.object({
  id: z.string().min(1).max(256).optional(),
  parameters: parametersSchema,
  inputs: z.array(tensorSchema).min(1).max(16),
  outputs: z.array(z.unknown()).optional(),
});

/** The prompt triggers found in a prompt; unknown `[sim:...]` tokens are ignored. */
export function parseTriggers(prompt: string): SimTriggers {
  let badRequest = false;
  let fail = false;
  let busy = false;
  let hang = false;
  let slowMs = 0;
  let previewWidth: number | undefined;
  for (const m of prompt.matchAll(/\[sim:([a-z0-9]+)(?:=(\d{1,9}))?\]/g)) {
    const [, name, arg] = m;
    if (name === "400") badRequest = true;
    else if (name === "500") fail = true;
    else if (name === "503") busy = true;
    else if (name === "hang") hang = true;
    else if (name === "slow" && arg !== undefined)
      slowMs = Math.min(SIM_REQUEST_LIMITS.maxSlowMs, slowMs + Number(arg));
    else if (name === "preview" && arg !== undefined)
      previewWidth = Math.min(
        SIM_REQUEST_LIMITS.maxPreviewWidth,
        Math.max(SIM_REQUEST_LIMITS.minPreviewWidth, Number(arg)),
      );
  }
  return { badRequest, fail, busy, hang, slowMs, ...(previewWidth === undefined ? {} : { previewWidth }) };
}

/** The request id of a call before validation: the body's `id`, else the `X-Request-Id` header. */
export function requestIdOf(body: unknown, header: string | undefined): string | undefined {
  if (typeof body === "object" && body !== null && "id" in body) {
    const id: unknown = body.id;
    if (typeof id === "string" && id.length > 0 && id.length <= 256) return id;
  }
  return header !== undefined && header.length > 0 && header.length <= 256 ? header : undefined;
}

/** Outcome of {@link parseInferRequest}: a job, or the message of a 400. */
export type ParseResult = { ok: true; job: SimJob } | { ok: false; error: string };

function textInput(
  inputs: readonly z.infer<typeof tensorSchema>[],
  name: string,
): string | undefined | Error {
  const t = inputs.find((i) => i.name === name);
  if (!t) return undefined;
  if (t.datatype !== "BYTES") return new Error(`inputs.${name}: datatype must be BYTES`);
  const v = t.data[0];
  if (typeof v !== "string") return new Error(`inputs.${name}: data[0] must be a string`);
  return v;
}

/**
 * Validates an infer / generate_stream body (already JSON-decoded).
 * @param fallbackId used when the body has no `id` (the `X-Request-Id` header, or a generated id).
 */
export function parseInferRequest(body: unknown, model: string, fallbackId: string): ParseResult {
  const parsed = inferRequestSchema.safeParse(body);
  if (!parsed.success) return { ok: false, error: describeZodError(parsed.error) };
  const { parameters: p, inputs } = parsed.data;

  const prompt = textInput(inputs, "prompt");
  if (prompt instanceof Error) return { ok: false, error: prompt.message };
  if (prompt === undefined || prompt.trim().length === 0)
    return { ok: false, error: "inputs.prompt is required" };
  if (prompt.length > SIM_REQUEST_LIMITS.maxPromptChars)
    return { ok: false, error: "inputs.prompt is too long" };
  const negativePrompt = textInput(inputs, "negative_prompt");
  if (negativePrompt instanceof Error) return { ok: false, error: negativePrompt.message };
  const requestText = textInput(inputs, "request");
  if (requestText instanceof Error) return { ok: false, error: requestText.message };
  let structured: Record<string, unknown> = {};
  if (requestText !== undefined) {
    let decoded: unknown;
    try {
      decoded = JSON.parse(requestText);
    } catch {
      return { ok: false, error: "inputs.request: data[0] is not valid JSON" };
    }
    if (typeof decoded !== "object" || decoded === null || Array.isArray(decoded)) {
      return { ok: false, error: "inputs.request: data[0] must be a JSON object" };
    }
    structured = decoded as Record<string, unknown>;
  }
  const hasText = (k: string): boolean => typeof structured[k] === "string" && structured[k] !== "";
  if ((p.task === "i2i" || p.task === "edit" || p.task === "i2v") && !hasText("image")) {
    return { ok: false, error: `task ${p.task} needs an input image (request.image)` };
  }
  if (p.task === "edit" && !hasText("mask"))
    return { ok: false, error: "task edit needs a mask (request.mask)" };

  let format: ImageFormat | undefined;
  if (p.modality === "image") {
    if (p.output_format === "mp4") return { ok: false, error: "parameters.output_format: mp4 is for video" };
    format = p.output_format ?? "png";
  } else {
    if (p.output_format !== undefined && p.output_format !== "mp4") {
      return { ok: false, error: `parameters.output_format: ${p.output_format} is not a video format` };
    }
    if (p.count !== undefined && p.count !== 1)
      return { ok: false, error: "parameters.count: video makes one output" };
  }

  return {
    ok: true,
    job: {
      id: parsed.data.id ?? fallbackId,
      model,
      modality: p.modality,
      task: p.task,
      seed: p.seed,
      steps: p.steps,
      width: p.width,
      height: p.height,
      count: p.modality === "image" ? (p.count ?? 1) : 1,
      format,
      durationS: p.duration ?? 2,
      fps: p.fps ?? 8,
      previews: p.previews ?? false,
      prompt,
      negativePrompt,
      structured,
      triggers: parseTriggers(prompt),
    },
  };
}
