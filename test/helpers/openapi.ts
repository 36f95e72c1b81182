// The OpenAPI document in tests: a strict JSON Schema 2020-12 validator over its schemas (Ajv, the
// engine of @seriousme/openapi-schema-validator), the operation a request path falls under, and
// the comparison of the app's routes with the document's paths.
import Ajv2020Module from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { ErrorObject, ValidateFunction } from "ajv";

// Both are CommonJS modules whose `default` member is the export (under NodeNext a default import
// is the whole module), as the validator package itself takes them.
const Ajv2020 = Ajv2020Module.default;
const addFormats = addFormatsModule.default;

/** Where the document is registered in the validator. */
const DOC_ID = "https://render-gateway.test/openapi.json";

/** A JSON pointer fragment of the document (`/paths/~1queue/post`). */
export function pointer(...segments: string[]): string {
  return segments.map((s) => `/${s.replace(/~/g, "~0").replace(/\//g, "~1")}`).join("");
}

export interface DocumentValidator {
  /** Validates `data` against the schema at `fragment` (a pointer into the document). */
  validate(fragment: string, data: unknown): { valid: boolean; errors: ErrorObject[] };
  /** Compiles the schema at `fragment` (throws when it is not strict JSON Schema 2020-12). */
  compile(fragment: string): ValidateFunction;
}

/**
 * A validator of the document's schemas: Ajv 2020 in strict mode with the standard formats. The
 * OpenAPI-only keywords of Schema Objects (`discriminator`, `example`) are known but not checked;
 * the document's own sections are keywords Ajv skips, so only the schemas a test names compile.
 */
export function documentValidator(doc: unknown): DocumentValidator {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  ajv.addVocabulary(["discriminator", "example", "components", "paths"]);
  const { components, paths } = doc as Record<string, unknown>;
  ajv.addSchema({ $id: DOC_ID, components, paths });
  const compile = (fragment: string) => ajv.compile({ $ref: `${DOC_ID}#${fragment}` });
  return {
    compile,
    validate(fragment, data) {
      const check = compile(fragment);
      const valid = check(data);
      return { valid, errors: check.errors ?? [] };
    },
  };
}

/** `:param` of a Hono path as OpenAPI's `{param}`. */
export function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

/** `METHOD /path` of every operation of the document (paths as templates). */
export function documentedOperations(doc: { paths: Record<string, Record<string, unknown>> }): Set<string> {
  const methods = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);
  const out = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item))
      if (methods.has(method)) out.add(`${method.toUpperCase()} ${path}`);
  }
  return out;
}

/** `METHOD /path` of the app's routes: middleware (`app.use`, method ALL) left out, `:p` as `{p}`. */
export function routeOperations(routes: readonly { method: string; path: string }[]): Set<string> {
  return new Set(routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${openApiPath(r.path)}`));
}

/** What differs between the app's routes and the document. */
export function compareRoutes(
  routes: readonly { method: string; path: string }[],
  doc: { paths: Record<string, Record<string, unknown>> },
): { undocumented: string[]; unserved: string[] } {
  const served = routeOperations(routes);
  const documented = documentedOperations(doc);
  return {
    undocumented: [...served].filter((op) => !documented.has(op)).sort(),
    unserved: [...documented].filter((op) => !served.has(op)).sort(),
  };
}

/** The document path template a concrete path falls under (`/jobs/j_1` → `/jobs/{id}`), if any. */
export function templateOf(doc: { paths: Record<string, unknown> }, path: string): string | undefined {
  const segments = path.split("/");
  return Object.keys(doc.paths).find((template) => {
    const parts = template.split("/");
    return (
      parts.length === segments.length &&
      parts.every((p, i) => (p.startsWith("{") && p.endsWith("}") ? segments[i] !== "" : p === segments[i]))
    );
  });
}
