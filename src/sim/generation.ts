// One simulated generation: timed diffusion steps, injected faults, previews and the rendered outputs.
import { createHash } from "node:crypto";
import type { SimConfig } from "./config.js";
import { CONTENT_TYPE, renderImage, renderPreview, renderVideo } from "./media.js";
import type { MediaCache } from "./media-cache.js";
import type { SimJob } from "./request.js";

/** The body of a successful infer answer (and, with `parameters.final`, the last stream event). */
export interface InferAnswer {
  id: string;
  model_name: string;
  outputs: {
    name: "output";
    datatype: "BYTES";
    shape: number[];
    data: string[];
    parameters: { content_type: string };
  }[];
  parameters: { gpu_ms: number; seed: number; content_type: string; final?: true };
}

/** How a generation ended. `failed` is answered 500; `aborted` is not answered at all. */
export type GenerationOutcome =
  | { readonly kind: "ok"; readonly answer: InferAnswer }
  | { readonly kind: "failed"; readonly error: string; readonly injected: boolean }
  | { readonly kind: "aborted" };

/** What a generation needs; all of it comes from the server that admitted the call. */
export interface GenerationDeps {
  /** The config at admission (a generation keeps its latency model even if the config changes). */
  readonly config: SimConfig;
  /** Uniform [0, 1) source for fault injection. */
  readonly random: () => number;
  readonly cache: MediaCache;
  /** Aborted when the client goes away or the server closes. */
  readonly signal: AbortSignal;
  /** Called once when the generation starts hanging. */
  readonly onHang?: () => void;
  /** Receives work that outlives an aborted generation (a render finishing), so close() can await it. */
  readonly background?: (work: Promise<unknown>) => void;
  /** After every step, in order. */
  readonly onStep?: (step: number, steps: number) => void;
  /** About every quarter of the steps when the job asked for previews. */
  readonly onPreview?: (step: number, steps: number, dataUri: string) => void;
}

/** Resolves true at `deadline` (performance.now() time), or false as soon as the signal aborts. */
function sleepUntil(deadline: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  const ms = Math.ceil(deadline - performance.now());
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** The steps (1-based, before the last) after which a preview is sent: about each quarter. */
export function previewSteps(steps: number): Set<number> {
  const out = new Set<number>();
  for (let k = 1; k <= 3; k++) {
    const s = Math.ceil((k * steps) / 4);
    if (s >= 1 && s < steps) out.add(s);
  }
  return out;
}

function mediaKey(job: SimJob, variant: number): string {
  const promptHash = createHash("sha256").update(job.prompt, "utf8").digest("base64url");
  const shape =
    job.modality === "video"
      ? `video|${job.durationS}|${job.fps}`
      : `image|${job.format ?? "png"}|${variant}`;
  return `${shape}|${job.width}x${job.height}|${job.seed}|${promptHash}`;
}

/** The media of a job, from the cache when possible. */
async function renderOutputs(job: SimJob, cache: MediaCache, signal: AbortSignal): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let variant = 0; variant < job.count; variant++) {
    signal.throwIfAborted();
    const key = mediaKey(job, variant);
    let bytes = cache.get(key);
    if (bytes === undefined) {
      bytes =
        job.modality === "video"
          ? await renderVideo({
              prompt: job.prompt,
              seed: job.seed,
              width: job.width,
              height: job.height,
              durationS: job.durationS,
              fps: job.fps,
              signal,
            })
          : await renderImage({
              prompt: job.prompt,
              seed: job.seed,
              width: job.width,
              height: job.height,
              format: job.format ?? "png",
              variant,
            });
      cache.set(key, bytes);
    }
    out.push(bytes);
  }
  return out;
}

/** The content type of a job's outputs. */
function contentTypeOf(job: SimJob): string {
  return job.modality === "video" ? CONTENT_TYPE.mp4 : CONTENT_TYPE[job.format ?? "png"];
}

/**
 * Runs an admitted job: `steps` timed steps of `stepMs` (plus `[sim:slow]`), scheduled against
 * deadlines so the total is accurate; failure after the first step with probability `failRate` (or
 * `[sim:500]`); hanging after the first step with probability `hangRate` (or `[sim:hang]`) until the
 * signal aborts. The media is rendered while the steps run. Never rejects.
 */
export async function runGeneration(job: SimJob, deps: GenerationDeps): Promise<GenerationOutcome> {
  const { config, signal } = deps;
  const t0 = performance.now();
  const fail = job.triggers.fail || (config.failRate > 0 && deps.random() < config.failRate);
  const hang = !fail && (job.triggers.hang || (config.hangRate > 0 && deps.random() < config.hangRate));

  let media: Promise<Uint8Array[] | Error> | undefined;
  if (!fail && !hang) {
    media = renderOutputs(job, deps.cache, signal).catch((e: unknown) =>
      e instanceof Error ? e : new Error(String(e)),
    );
  }

  const total = job.steps * config.stepMs + job.triggers.slowMs;
  const previews = job.previews ? previewSteps(job.steps) : new Set<number>();
  for (let step = 1; step <= job.steps; step++) {
    if (!(await sleepUntil(t0 + (total * step) / job.steps, signal))) break;
    deps.onStep?.(step, job.steps);
    if (step === 1 && fail) return { kind: "failed", error: "simulated GPU failure", injected: true };
    if (step === 1 && hang) {
      deps.onHang?.();
      await untilAborted(signal);
      return { kind: "aborted" };
    }
    if (previews.has(step)) {
      const uri = await renderPreview({
        prompt: job.prompt,
        seed: job.seed,
        width: job.width,
        height: job.height,
        progress: step / job.steps,
        ...(job.triggers.previewWidth === undefined ? {} : { previewWidth: job.triggers.previewWidth }),
      });
      if (signal.aborted) break;
      deps.onPreview?.(step, job.steps, uri);
    }
  }
  if (signal.aborted || media === undefined) {
    // The slot is freed now; a render still running (ffmpeg is killed by the signal) is handed over.
    if (media !== undefined) deps.background?.(media);
    return { kind: "aborted" };
  }

  const rendered = await media;
  if (signal.aborted) return { kind: "aborted" };
  if (rendered instanceof Error)
    return { kind: "failed", error: `render failed: ${rendered.message}`, injected: false };
  const contentType = contentTypeOf(job);
  return {
    kind: "ok",
    answer: {
      id: job.id,
      model_name: job.model,
      outputs: [
        {
          name: "output",
          datatype: "BYTES",
          shape: [rendered.length],
          data: rendered.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64")),
          parameters: { content_type: contentType },
        },
      ],
      parameters: { gpu_ms: Math.round(performance.now() - t0), seed: job.seed, content_type: contentType },
    },
  };
}
