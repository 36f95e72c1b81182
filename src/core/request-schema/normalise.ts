// Normalisation of parsed generation fields against the model: required images, LoRAs, format and
// size, and the defaults (model presets, then the original schemas' defaults).
import { formatFamilyModel } from "../model-route.js";
import type { Catalog, ModelEntry, ParamRange, Task } from "../catalog.js";
import { paramRange } from "../catalog.js";
import { validationError } from "../errors.js";
import { defaultFormat, formatSize } from "../formats.js";
import { DEFAULTS } from "./fields.js";
import type { ParsedGeneration } from "./schema.js";
import type {
  GenerationRequest,
  ImageGenerationRequest,
  LoraApplication,
  VideoGenerationRequest,
} from "./types.js";

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
      `format ${id} is not offered by ${formatFamilyModel(entry.family, entry.model)} (formats: ${entry.formats.join(", ")})`,
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

/**
 * The steps of a request of `entry` that names none: the model preset's (`fast` with video
 * `lightning`, else `standard`), else the original schema's default, within the model's range.
 */
export function defaultSteps(entry: ModelEntry, lightning: boolean): number {
  const fallback = entry.modality === "image" ? DEFAULTS.image.steps : DEFAULTS.video.steps;
  return clamp(presetSteps(entry, lightning) ?? fallback, paramRange(entry, "steps"));
}

/** Validates the generation fields against the model and normalises them (defaults, format, refs). */
export function normalise(
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
  const steps = p.steps ?? defaultSteps(entry, lightning);
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
