// The CATALOG_FILE document: its zod schema, the cross-checks between models, and the error that
// names every invalid path.
import { formatFamilyModel } from "../model-route.js";
import { z } from "zod";
import { FORMATS, MODALITIES, type Modality } from "../formats.js";
import { describeRange } from "./entry.js";
import { ENGINES, MODEL_STATUSES, PARAM_RANGES, SAMPLERS, SCHEDULERS, TASKS, TASKS_OF } from "./tables.js";
import type { ModelStatus, Task } from "./tables.js";

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ALIAS_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const LORA_ID_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

const nameSchema = z.string().regex(NAME_RE, { message: "expected 1-64 chars of [a-z0-9._-]" });

const rangeSchema = z.strictObject({ min: z.number().optional(), max: z.number().optional() });

const presetSchema = z.strictObject({
  sampler: z.enum(SAMPLERS).optional(),
  scheduler: z.enum(SCHEDULERS).optional(),
  steps: z.int().min(1).max(150).optional(),
  cfg: z.number().min(0).max(20).optional(),
  guidance: z.number().min(0).max(30).optional(),
  notes: z.string().optional(),
});

/** One model of a CATALOG_FILE: the `/models` `ModelCapability` plus `limits` (the document's source for it). */
export const modelSchema = z.strictObject({
  family: nameSchema,
  model: nameSchema,
  modality: z.enum(MODALITIES as [Modality, ...Modality[]]),
  tasks: z.array(z.enum(TASKS as [Task, ...Task[]])).min(1),
  formats: z.array(z.string()).min(1),
  backends: z.array(z.enum(ENGINES)).min(1),
  default_backend: z.enum(ENGINES).optional(),
  status: z.enum(MODEL_STATUSES as [ModelStatus, ...ModelStatus[]]),
  aliases: z
    .array(z.string().regex(ALIAS_RE, { message: "expected a Hugging Face id like org/name" }))
    .default([]),
  presets: z.record(z.string().min(1), presetSchema).optional(),
  notes: z.string().optional(),
  limits: z.record(z.string(), rangeSchema).optional(),
});

/** One curated LoRA, as CATALOG_FILE lists it and `GET /models/loras` shows it. */
export const loraSchema = z.strictObject({
  id: z.string().regex(LORA_ID_RE, { message: "expected 1-64 chars of [a-z0-9_.-]" }),
  name: z.string().min(1),
  families: z.array(nameSchema).min(1),
  effect: z.string(),
  recommended_weight: z.array(z.number()).min(1),
  source: z.string().min(1),
});

/** One model of a CATALOG_FILE document as parsed. */
export type ModelDoc = z.infer<typeof modelSchema>;

function checkModel(key: Modality, m: ModelDoc, i: number, ctx: z.RefinementCtx): void {
  const at = (...path: (string | number)[]): (string | number)[] => [key, i, ...path];
  const issue = (path: (string | number)[], message: string): void =>
    ctx.addIssue({ code: "custom", path, message });
  if (m.modality !== key) issue(at("modality"), `a model listed under "${key}" must have modality "${key}"`);
  const dup = <T>(list: readonly T[], field: string): void =>
    list.forEach((v, j) => {
      if (list.indexOf(v) !== j) issue(at(field, j), `duplicate ${String(v)}`);
    });
  m.tasks.forEach((t, j) => {
    if (!TASKS_OF[m.modality].includes(t)) issue(at("tasks", j), `task ${t} is not a ${m.modality} task`);
  });
  dup(m.tasks, "tasks");
  m.formats.forEach((f, j) => {
    if (!Object.hasOwn(FORMATS[m.modality], f))
      issue(at("formats", j), `unknown ${m.modality} format "${f}"`);
  });
  dup(m.formats, "formats");
  dup(m.backends, "backends");
  if (m.default_backend !== undefined && !m.backends.includes(m.default_backend)) {
    issue(at("default_backend"), `default_backend ${m.default_backend} is not one of the model's backends`);
  }
  for (const [param, range] of Object.entries(m.limits ?? {})) {
    const global = PARAM_RANGES[m.modality][param];
    if (global === undefined) {
      issue(at("limits", param), `"${param}" is not a numeric ${m.modality} parameter`);
      continue;
    }
    for (const bound of ["min", "max"] as const) {
      const v = range[bound];
      if (v === undefined) continue;
      if ((global.min !== undefined && v < global.min) || (global.max !== undefined && v > global.max)) {
        issue(
          at("limits", param, bound),
          `limits may only narrow the range ${describeRange(global)} of ${param}`,
        );
      }
      if (global.integer && !Number.isInteger(v)) issue(at("limits", param, bound), `${param} is an integer`);
    }
    if (range.min !== undefined && range.max !== undefined && range.min > range.max) {
      issue(at("limits", param), `min ${range.min} is above max ${range.max}`);
    }
  }
}

/**
 * Zod schema of a CATALOG_FILE document: `{ image: [ModelEntry], video: [ModelEntry], loras: [Lora] }`.
 * Besides shapes it checks that each model sits under its own modality, that tasks, formats and
 * `default_backend` fit the model, that `limits` only narrow the global ranges, and that model names,
 * aliases (case-insensitively) and LoRA ids are unique.
 */
export const catalogSchema = z
  .strictObject({
    image: z.array(modelSchema).default([]),
    video: z.array(modelSchema).default([]),
    loras: z.array(loraSchema).default([]),
  })
  .superRefine((doc, ctx) => {
    const names = new Set<string>();
    const aliases = new Map<string, string>();
    for (const key of MODALITIES) {
      doc[key].forEach((m, i) => {
        checkModel(key, m, i, ctx);
        const name = formatFamilyModel(m.family, m.model);
        if (names.has(name)) {
          ctx.addIssue({ code: "custom", path: [key, i, "model"], message: `duplicate model ${name}` });
        }
        names.add(name);
      });
    }
    for (const key of MODALITIES) {
      doc[key].forEach((m, i) => {
        m.aliases.forEach((a, j) => {
          const folded = a.toLowerCase();
          const clash = aliases.get(folded) ?? (names.has(a) ? a : undefined);
          if (clash !== undefined) {
            ctx.addIssue({
              code: "custom",
              path: [key, i, "aliases", j],
              message: `alias ${a} is already used by ${clash}`,
            });
          }
          aliases.set(folded, formatFamilyModel(m.family, m.model));
        });
      });
    }
    if (doc.image.length + doc.video.length === 0) {
      ctx.addIssue({ code: "custom", path: [], message: "the catalogue lists no model" });
    }
    const ids = new Set<string>();
    doc.loras.forEach((l, i) => {
      if (ids.has(l.id))
        ctx.addIssue({ code: "custom", path: ["loras", i, "id"], message: `duplicate LoRA ${l.id}` });
      ids.add(l.id);
    });
  });

/** A CATALOG_FILE document as parsed by {@link catalogSchema}. */
export type CatalogDocument = z.output<typeof catalogSchema>;

/** A CATALOG_FILE that does not validate; `issues` holds one `path: message` line per problem. */
export class CatalogError extends Error {
  constructor(
    readonly source: string,
    readonly issues: readonly string[],
  ) {
    super(`${source}: invalid catalogue:\n${issues.map((l) => `  ${l}`).join("\n")}`);
    this.name = "CatalogError";
  }
}

/**
 * Validates a CATALOG_FILE document.
 * @param source names the document in error messages (e.g. the file path or `CATALOG_FILE`).
 * @throws CatalogError naming every invalid path (`image.2.default_backend: ...`).
 */
export function parseCatalog(doc: unknown, source = "catalog"): CatalogDocument {
  const result = catalogSchema.safeParse(doc);
  if (!result.success) {
    throw new CatalogError(
      source,
      result.error.issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`),
    );
  }
  return result.data;
}
