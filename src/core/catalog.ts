// The model catalogue (API.md §3 Model addressing, §7 Catalogue): CATALOG_FILE schema, lookups, routing.
import { z } from "zod";
import { AppError, validationError } from "./errors.js";
import { deepFreeze } from "./deep-freeze.js";
import { FORMATS, MODALITIES, type Modality } from "./formats.js";
import { ROUTE_PART_MAX_CHARS } from "./request-limits.js";

export type { Modality } from "./formats.js";

/** Generation tasks of the original API. */
export type Task = "t2i" | "i2i" | "edit" | "t2v" | "i2v";
/** Every inference engine (the original API's `BackendId`), in the order the original spec lists them. */
export const ENGINES = ["nunchaku", "torch", "tensorrt"] as const;
/** An inference engine. */
export type Engine = (typeof ENGINES)[number];
/** Lifecycle of a catalogue model; only `active` and `preview` models accept jobs. */
export type ModelStatus = "active" | "preview" | "coming_soon" | "deprecated";

/** Every task, in the order the original spec lists them. */
export const TASKS: readonly Task[] = ["t2v", "i2v", "t2i", "i2i", "edit"];
/** Tasks per modality. */
export const TASKS_OF: Readonly<Record<Modality, readonly Task[]>> = {
  image: ["t2i", "i2i", "edit"],
  video: ["t2v", "i2v"],
};
/** Every model status. */
export const MODEL_STATUSES: readonly ModelStatus[] = ["active", "preview", "coming_soon", "deprecated"];
/** Statuses whose models accept generation requests. */
export const ROUTABLE_STATUSES: readonly ModelStatus[] = ["active", "preview"];

/** Sampler names the API accepts (§7). */
export const SAMPLERS = ["euler", "heun", "res_2m", "res_3s", "res_2m_sde", "res_3s_sde", "uni_pc"] as const;
/** Scheduler names the API accepts (§7). */
export const SCHEDULERS = ["simple", "beta", "beta57", "exponential", "karras", "bong_tangent"] as const;
export type Sampler = (typeof SAMPLERS)[number];
export type Scheduler = (typeof SCHEDULERS)[number];

/**
 * Engine a family runs on when nothing else is said (the original spec's `Backend` parameter: flux, qwen,
 * sana, zimage → nunchaku; sdxl, sd3, sd35 → tensorrt; wan, ltx → torch).
 */
export const FAMILY_DEFAULT_ENGINE: Readonly<Record<string, Engine>> = Object.freeze({
  flux: "nunchaku",
  qwen: "nunchaku",
  sana: "nunchaku",
  zimage: "nunchaku",
  sdxl: "tensorrt",
  sd3: "tensorrt",
  sd35: "tensorrt",
  wan: "torch",
  ltx: "torch",
});

/** An inclusive numeric range; a missing bound is open. */
export interface NumericRange {
  readonly min?: number;
  readonly max?: number;
}

/** A generation parameter's global range and whether it must be an integer. */
export interface ParamRange extends NumericRange {
  readonly integer: boolean;
}

/**
 * The numeric generation parameters of each modality with their global ranges (API.md §3, the original
 * request schemas). A model's `limits` may only narrow these.
 */
export const PARAM_RANGES: Readonly<Record<Modality, Readonly<Record<string, ParamRange>>>> = Object.freeze({
  image: Object.freeze({
    steps: { min: 1, max: 150, integer: true },
    cfg: { min: 0, max: 20, integer: false },
    guidance: { min: 0, max: 30, integer: false },
    strength: { min: 0, max: 1, integer: false },
    count: { min: 1, max: 4, integer: true },
    eta: { min: 0, max: 2, integer: false },
    clip_skip: { min: 0, max: 12, integer: true },
    detail_amount: { min: -5, max: 5, integer: false },
    detail_start: { min: 0, max: 1, integer: false },
    detail_end: { min: 0, max: 1, integer: false },
  }),
  video: Object.freeze({
    steps: { min: 1, max: 50, integer: true },
    cfg: { min: 0, max: 20, integer: false },
    duration: { min: 0.5, max: 10, integer: false },
    motion_strength: { min: 0, max: 1, integer: false },
    // The original gives shift no range ("-1 = use model default"); any finite number passes.
    shift: { integer: false },
  }),
});

/** A recommended configuration of a model (`ModelPreset`). */
export interface ModelPreset {
  readonly sampler?: Sampler;
  readonly scheduler?: Scheduler;
  readonly steps?: number;
  readonly cfg?: number;
  readonly guidance?: number;
  readonly notes?: string;
}

/** Per-model narrowing of {@link PARAM_RANGES}, keyed by parameter name. */
export type ModelLimits = Readonly<Record<string, NumericRange>>;

/** One catalogue model: the `/models` `ModelCapability` plus parameter limits. */
export interface ModelEntry {
  readonly family: string;
  readonly model: string;
  readonly modality: Modality;
  readonly tasks: readonly Task[];
  readonly formats: readonly string[];
  /** Engines that can run the model, in preference order. */
  readonly backends: readonly Engine[];
  readonly default_backend?: Engine;
  readonly status: ModelStatus;
  /** Hugging Face ids (`org/name`) that resolve to this model. */
  readonly aliases: readonly string[];
  readonly presets?: Readonly<Record<string, ModelPreset>>;
  readonly notes?: string;
  readonly limits?: ModelLimits;
}

/** A curated LoRA (`GET /models/loras`). */
export interface Lora {
  readonly id: string;
  readonly name: string;
  readonly families: readonly string[];
  readonly effect: string;
  readonly recommended_weight: readonly number[];
  readonly source: string;
}

/** A `family/model` pair, as `GET /models/aliases` maps each Hugging Face id. */
export interface ModelRef {
  readonly family: string;
  readonly model: string;
}

/** One element of the `/models` arrays (`ModelCapability`); absent optional members are omitted. */
export interface ModelCapability {
  family: string;
  model: string;
  modality: Modality;
  tasks: Task[];
  formats: string[];
  backends: Engine[];
  default_backend?: Engine;
  status: ModelStatus;
  aliases: string[];
  presets?: Record<string, ModelPreset>;
  notes?: string;
}

/** The `GET /models` body. */
export interface ModelsResponse {
  image: ModelCapability[];
  video: ModelCapability[];
}

/** The validated catalogue with its lookups. Everything it returns is frozen. */
export interface Catalog {
  /**
   * The model `family/model`, or the model whose Hugging Face alias is `family + "/" + model` (the path
   * form `/image/black-forest-labs/FLUX.1-schnell/t2i`; alias matching ignores case). Any status.
   */
  find(family: string, model: string): ModelEntry | undefined;
  /** The canonical pair of a Hugging Face id (case-insensitive), or `undefined`. */
  resolveAlias(hfId: string): ModelRef | undefined;
  /** Every model, image models first, in catalogue order. */
  entries(): readonly ModelEntry[];
  /** The `GET /models/aliases` body: `{ "<HF id>": {family, model} }`. */
  aliases(): Record<string, ModelRef>;
  /** Every curated LoRA, in catalogue order. */
  loras(): readonly Lora[];
  /** The LoRA with this id, or `undefined`. */
  lora(id: string): Lora | undefined;
  /**
   * The `GET /models` body. `providedEngines(entry)` names the engines some configured backend offers
   * for the model: `backends` lists the catalogue's engines that are provided (catalogue order) and
   * `default_backend` appears only when provided. Without it every catalogue engine counts as provided.
   * Models of every status are listed.
   */
  modelsResponse(providedEngines?: (entry: ModelEntry) => readonly Engine[]): ModelsResponse;
}

// ---------------------------------------------------------------------------------------------------
// CATALOG_FILE schema

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

const modelSchema = z.strictObject({
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

const loraSchema = z.strictObject({
  id: z.string().regex(LORA_ID_RE, { message: "expected 1-64 chars of [a-z0-9_.-]" }),
  name: z.string().min(1),
  families: z.array(nameSchema).min(1),
  effect: z.string(),
  recommended_weight: z.array(z.number()).min(1),
  source: z.string().min(1),
});

type ModelDoc = z.infer<typeof modelSchema>;

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
        const name = `${m.family}/${m.model}`;
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
          aliases.set(folded, `${m.family}/${m.model}`);
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

function toEntry(m: ModelDoc): ModelEntry {
  return {
    family: m.family,
    model: m.model,
    modality: m.modality,
    tasks: [...m.tasks],
    formats: [...m.formats],
    backends: [...m.backends],
    ...(m.default_backend !== undefined && { default_backend: m.default_backend }),
    status: m.status,
    aliases: [...m.aliases],
    ...(m.presets !== undefined && { presets: stripUndefined(m.presets) as Record<string, ModelPreset> }),
    ...(m.notes !== undefined && { notes: m.notes }),
    ...(m.limits !== undefined && { limits: stripUndefined(m.limits) as ModelLimits }),
  };
}

/** JSON round trip: a deep copy without `undefined` members (JSON-shaped input only). */
function stripUndefined(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

/**
 * Validates a CATALOG_FILE document (a {@link CatalogDocument} validates again unchanged) and builds the lookups.
 * @throws CatalogError when the document is invalid.
 */
export function buildCatalog(doc: unknown, source = "catalog"): Catalog {
  const parsed = parseCatalog(doc, source);
  const entries = deepFreeze([...parsed.image, ...parsed.video].map(toEntry));
  const loras = deepFreeze(parsed.loras.map((l): Lora => ({ ...l, families: [...l.families] })));
  const byName = new Map(entries.map((e) => [`${e.family}/${e.model}`, e]));
  const byAlias = new Map<string, ModelEntry>();
  const aliasBody: Record<string, ModelRef> = {};
  for (const e of entries) {
    for (const a of e.aliases) {
      byAlias.set(a.toLowerCase(), e);
      aliasBody[a] = { family: e.family, model: e.model };
    }
  }
  const loraById = new Map(loras.map((l) => [l.id, l]));

  return Object.freeze({
    find(family: string, model: string): ModelEntry | undefined {
      const name = `${family}/${model}`;
      return byName.get(name) ?? byAlias.get(name.toLowerCase());
    },
    resolveAlias(hfId: string): ModelRef | undefined {
      const e = byAlias.get(hfId.toLowerCase());
      return e === undefined ? undefined : { family: e.family, model: e.model };
    },
    entries: () => entries,
    aliases: () => structuredClone(aliasBody),
    loras: () => loras,
    lora: (id: string) => loraById.get(id),
    modelsResponse(providedEngines?: (entry: ModelEntry) => readonly Engine[]): ModelsResponse {
      const body: ModelsResponse = { image: [], video: [] };
      for (const e of entries) body[e.modality].push(capabilityOf(e, providedEngines?.(e)));
      return body;
    },
  });
}

function capabilityOf(e: ModelEntry, provided: readonly Engine[] | undefined): ModelCapability {
  const backends = provided === undefined ? [...e.backends] : e.backends.filter((b) => provided.includes(b));
  const cap: ModelCapability = {
    family: e.family,
    model: e.model,
    modality: e.modality,
    tasks: [...e.tasks],
    formats: [...e.formats],
    backends,
    status: e.status,
    aliases: [...e.aliases],
  };
  if (e.default_backend !== undefined && backends.includes(e.default_backend)) {
    cap.default_backend = e.default_backend;
  }
  if (e.presets !== undefined) cap.presets = structuredClone(e.presets);
  if (e.notes !== undefined) cap.notes = e.notes;
  return cap;
}

/**
 * The engine a model runs on when a request names none: the catalogue's `default_backend`, else the
 * family default of the original spec when the model offers it, else the model's first engine.
 */
export function defaultEngine(entry: ModelEntry): Engine {
  if (entry.default_backend !== undefined) return entry.default_backend;
  const familyDefault = FAMILY_DEFAULT_ENGINE[entry.family];
  if (familyDefault !== undefined && entry.backends.includes(familyDefault)) return familyDefault;
  return entry.backends[0] ?? "torch";
}

/** The effective range of a numeric parameter for a model: the global range narrowed by `limits`. */
export function paramRange(entry: ModelEntry, param: string): ParamRange | undefined {
  const global = PARAM_RANGES[entry.modality][param];
  if (global === undefined) return undefined;
  const narrow = entry.limits?.[param];
  const min = maxDefined(global.min, narrow?.min);
  const max = minDefined(global.max, narrow?.max);
  return {
    integer: global.integer,
    ...(min !== undefined && { min }),
    ...(max !== undefined && { max }),
  };
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}
function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/** `1–150`, `≥ 0`, `any number`. */
export function describeRange(r: NumericRange): string {
  if (r.min !== undefined && r.max !== undefined) return `${r.min}–${r.max}`;
  if (r.min !== undefined) return `≥ ${r.min}`;
  if (r.max !== undefined) return `≤ ${r.max}`;
  return "any number";
}

// ---------------------------------------------------------------------------------------------------
// Routing

/** The four parts of a generation address, as received (path segments or `/queue` body fields). */
export interface RouteParams {
  readonly modality: string;
  readonly family: string;
  readonly model: string;
  readonly task: string;
}

/** A routable model and the task asked of it. */
export interface RouteMatch {
  readonly entry: ModelEntry;
  readonly modality: Modality;
  readonly task: Task;
}

/** True when `value` is one of the five tasks. */
export function isTask(value: unknown): value is Task {
  return typeof value === "string" && (TASKS as readonly string[]).includes(value);
}

/** True when `value` is `image` or `video`. */
export function isModality(value: unknown): value is Modality {
  return typeof value === "string" && (MODALITIES as readonly string[]).includes(value);
}

/**
 * Resolves `{modality}/{family}/{model}/{task}` (family/model may be a Hugging Face alias split at its
 * first `/`) to a catalogue model that accepts jobs.
 * @throws AppError 400 `validation_error` (`details.field` `modality` or `task`) for a modality other
 *   than image/video or a task outside `t2i i2i edit t2v i2v`, or for any part longer than
 *   {@link ROUTE_PART_MAX_CHARS} (`max_length`);
 *   404 `not_found` for an unknown family/model, a model of the other modality, a task the model lacks,
 *   or a model whose status is not `active`/`preview`.
 */
export function resolveRoute(catalog: Catalog, params: RouteParams): RouteMatch {
  const { modality, family, model, task } = params;
  for (const field of ["modality", "family", "model", "task"] as const) {
    if (params[field].length > ROUTE_PART_MAX_CHARS) {
      throw validationError(
        field,
        "max_length",
        `${field} must be at most ${ROUTE_PART_MAX_CHARS} characters`,
      );
    }
  }
  if (!isModality(modality)) {
    throw validationError("modality", "enum", `modality must be one of ${MODALITIES.join(", ")}`);
  }
  if (!isTask(task)) throw validationError("task", "enum", `task must be one of ${TASKS.join(", ")}`);
  const entry = catalog.find(family, model);
  const name = `${family}/${model}`;
  if (entry === undefined) throw notFound(`model ${name} not found`, "model");
  const canonical = `${entry.family}/${entry.model}`;
  if (entry.modality !== modality) throw notFound(`${modality} model ${name} not found`, "modality");
  if (!ROUTABLE_STATUSES.includes(entry.status)) {
    throw notFound(`model ${canonical} is not available (status ${entry.status})`, "model");
  }
  if (!entry.tasks.includes(task)) {
    throw notFound(
      `model ${canonical} does not offer task ${task} (it offers ${entry.tasks.join(", ")})`,
      "task",
    );
  }
  return { entry, modality, task };
}

function notFound(message: string, field: string): AppError {
  return new AppError("not_found", message, { details: { field } });
}
