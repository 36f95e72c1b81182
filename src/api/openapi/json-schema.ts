// zod schemas → JSON Schema 2020-12 (the dialect of OpenAPI 3.1) with zod 4's own converter: the one
// place that says how (input or output side, what happens to refinements), used by every part of
// the document.
import { z } from "zod";

/** A JSON Schema as the document holds it (plain JSON). */
export type JsonSchema = { [key: string]: unknown };

/** Where component schemas live in the document; `$ref`s between registered schemas point there. */
export const SCHEMA_REF = "#/components/schemas/";

/** A `$ref` to the component schema `id`. */
export function ref(id: string): JsonSchema {
  return { $ref: `${SCHEMA_REF}${id}` };
}

/**
 * Which side of the schemas is described: `input` for requests (what a client may send: before
 * transforms, defaults optional), `output` for responses (what the gateway sends).
 */
export type Side = "input" | "output";

/**
 * Conversion settings. Refinements and transforms have no JSON Schema form: a transform's input
 * type is described (`io: "input"`), a refinement is left out (the schemas state what matters of
 * one with `meta`, e.g. the prompt's length in code points), and anything else unrepresentable
 * becomes `{}` instead of failing the start.
 */
function params(side: Side) {
  return {
    target: "draft-2020-12" as const,
    io: side,
    unrepresentable: "any" as const,
    override: ({ jsonSchema }: { jsonSchema: Record<string, unknown> }) => {
      // z.int() bounds itself to the safe integers: true, but noise in a document.
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
    },
  };
}

/** Plain JSON without the converter's document-level members (`$schema`, `$id`). */
function plain(schema: unknown): JsonSchema {
  const { $schema: _dialect, $id: _id, ...rest } = JSON.parse(JSON.stringify(schema)) as JsonSchema;
  return rest;
}

/**
 * Every schema of `registry` as a component schema, keyed by its `id`; a registered schema used
 * inside another becomes a `$ref` to its component.
 */
export function componentSchemas(
  registry: z.core.$ZodRegistry<{ id: string }>,
  side: Side,
): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(registry, {
    ...params(side),
    uri: (id: string) => `${SCHEMA_REF}${id}`,
  });
  return Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, plain(s)]));
}

/** One schema, inline (no component). */
export function inlineSchema(schema: z.ZodType, side: Side): JsonSchema {
  return plain(z.toJSONSchema(schema, params(side)));
}

/** A component registry: schemas registered in it become components named by their `id`. */
export function createComponentRegistry(): z.core.$ZodRegistry<{ id: string }> {
  return z.registry<{ id: string }>();
}
