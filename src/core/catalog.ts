// The model catalogue (API.md §3 Model addressing, §7 Catalogue): the public face of catalog/ — the
// tables (tables.ts), a model and its ranges (entry.ts), the CATALOG_FILE schema (file-schema.ts), the
// lookups (build.ts) and route resolution (resolve-route.ts).
export type {
  Engine,
  Modality,
  ModelStatus,
  NumericRange,
  ParamRange,
  Sampler,
  Scheduler,
  Task,
} from "./catalog/tables.js";
export {
  ENGINES,
  FAMILY_DEFAULT_ENGINE,
  MODEL_STATUSES,
  PARAM_RANGES,
  ROUTABLE_STATUSES,
  SAMPLERS,
  SCHEDULERS,
  TASKS,
  TASKS_OF,
} from "./catalog/tables.js";
export type { Lora, ModelEntry, ModelLimits, ModelPreset, ModelRef } from "./catalog/entry.js";
export { defaultEngine, describeRange, paramRange } from "./catalog/entry.js";
export type { CatalogDocument } from "./catalog/file-schema.js";
export {
  CatalogError,
  catalogSchema,
  loraSchema as catalogLoraSchema,
  modelSchema as catalogModelSchema,
  parseCatalog,
} from "./catalog/file-schema.js";
export type { Catalog, ModelCapability, ModelsResponse } from "./catalog/build.js";
export { buildCatalog } from "./catalog/build.js";
export type { RouteMatch, RouteParams } from "./catalog/resolve-route.js";
export { isModality, isTask, resolveRoute } from "./catalog/resolve-route.js";
