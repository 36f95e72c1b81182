// Route resolution: `{modality}/{family}/{model}/{task}` (path segments or `/queue` body fields) to a
// catalogue model that accepts jobs, with the 400/404 of API.md §3.
import { formatFamilyModel } from "../model-route.js";
import { AppError, validationError } from "../errors.js";
import { MODALITIES, type Modality } from "../formats.js";
import { ROUTE_PART_MAX_CHARS } from "../request-limits.js";
import type { Catalog } from "./build.js";
import type { ModelEntry } from "./entry.js";
import { ROUTABLE_STATUSES, TASKS, type Task } from "./tables.js";

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
  const name = formatFamilyModel(family, model);
  if (entry === undefined) throw notFound(`model ${name} not found`, "model");
  const canonical = formatFamilyModel(entry.family, entry.model);
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
