// Model identities: `family/model` (a catalogue model), the scheduler's route `family/model[@backend]`
// and the model's name on a KServe server; the one place each is joined and split.

/** A catalogue model by its two names. */
export interface ModelName {
  readonly family: string;
  readonly model: string;
}

/** Where a job may run: a model, and optionally a backend constraint (an engine or a backend id). */
export interface Route extends ModelName {
  /** `family/model`, as backends list the models they serve. */
  readonly familyModel: string;
  /** The `?backend=` value the job was sent with; undefined when any backend serving the model will do. */
  readonly constraint?: string;
}

/** `family/model`: the model's name in the catalogue, in backend configs, prices and timeouts. */
export function formatFamilyModel(family: string, model: string): string {
  return `${family}/${model}`;
}

/**
 * The two names of `family/model` (split at the first `/`); undefined when there is no `/`.
 * Families have no `/` (catalogue and BACKENDS_FILE validate both names).
 */
export function parseFamilyModel(name: string): ModelName | undefined {
  const slash = name.indexOf("/");
  if (slash < 0) return undefined;
  return { family: name.slice(0, slash), model: name.slice(slash + 1) };
}

/**
 * The route a job is queued under (the scheduler's dispatch sets, service times): `family/model`, or
 * `family/model@<constraint>` when the job names a backend. lib.lua splits it the same way (`route_parts`).
 */
export function formatRoute(modelName: string, constraint?: string): string {
  return constraint ? `${modelName}@${constraint}` : modelName;
}

/** The parts of a route (see {@link formatRoute}): split at the first `@`, then at the first `/`. */
export function parseRoute(route: string): Route {
  const at = route.indexOf("@");
  const name = at < 0 ? route : route.slice(0, at);
  const constraint = at < 0 ? "" : route.slice(at + 1);
  const { family, model } = parseFamilyModel(name) ?? { family: name, model: "" };
  return { family, model, familyModel: name, ...(constraint === "" ? {} : { constraint }) };
}

/** The model's name on a KServe v2 server (`/v2/models/{name}`): `family-model`. */
export function kserveModelName(family: string, model: string): string {
  return `${family}-${model}`;
}
