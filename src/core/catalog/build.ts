// The validated catalogue and its lookups (`find`, aliases, LoRAs, the `GET /models` body), built
// once from a CATALOG_FILE document.
import { formatFamilyModel } from "../model-route.js";
import { deepFreeze } from "../deep-freeze.js";
import type { Modality } from "../formats.js";
import type { Lora, ModelEntry, ModelLimits, ModelPreset, ModelRef } from "./entry.js";
import { parseCatalog, type ModelDoc } from "./file-schema.js";
import type { Engine, ModelStatus, Task } from "./tables.js";

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
  const byName = new Map(entries.map((e) => [formatFamilyModel(e.family, e.model), e]));
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
      const name = formatFamilyModel(family, model);
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
