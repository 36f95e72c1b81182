// BACKENDS_FILE (API.md §6): the GPU backends workers may call, validated with zod; JSON or YAML.
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ENGINES } from "../core/catalog.js";

// The engine names belong to the catalogue (core); re-exported for the code that reads backends.
export { ENGINES };

const modelRef = z.string().regex(/^(\*|[a-z0-9][a-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*)$/, {
  message: 'expected "family/model" or "*"',
});

/** The one backend id a backend may not have (keys.ts: `lease:<id>` beside `lease:backends`). */
const RESERVED_BACKEND_ID = "backends";

export const backendSchema = z
  .object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { message: "ids are 1-64 chars of [A-Za-z0-9_.-]" })
      // keys.ts lease(id) sits beside leaseBackends (`lease:backends`): that one name is taken
      .refine((id) => id !== RESERVED_BACKEND_ID, { message: `"${RESERVED_BACKEND_ID}" is reserved` }),
    url: z.url().refine((u) => /^https?:\/\//.test(u), { message: "http or https URL expected" }),
    protocol: z.literal("kserve-v2").default("kserve-v2"),
    engine: z.enum(ENGINES),
    capacity: z.number().int().min(1).max(10_000),
    models: z.array(modelRef).min(1),
    streaming: z.boolean().default(false),
    timeout_ms: z.number().int().min(100).max(3_600_000).default(120_000),
    /** Per-model execution timeouts (`family/model` → ms) overriding `timeout_ms`. */
    timeouts: z.record(modelRef, z.number().int().min(100).max(3_600_000)).default({}),
  })
  .strict();

export type BackendConfig = Readonly<z.infer<typeof backendSchema>>;

export const backendsFileSchema = z
  .object({ backends: z.array(backendSchema).min(1) })
  .strict()
  .superRefine((doc, ctx) => {
    const seen = new Set<string>();
    doc.backends.forEach((b, i) => {
      if (seen.has(b.id))
        ctx.addIssue({ code: "custom", path: ["backends", i, "id"], message: `duplicate id ${b.id}` });
      seen.add(b.id);
    });
  });

/**
 * Parses a BACKENDS_FILE's text (YAML is a superset of JSON, so one parser reads both).
 * @throws Error naming the file and every invalid path.
 */
export function parseBackendsFile(text: string, source: string): readonly BackendConfig[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON/YAML: ${(err as Error).message}`);
  }
  const result = backendsFileSchema.safeParse(doc);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`${source}: invalid backends file:\n${lines.join("\n")}`);
  }
  return result.data.backends;
}

/**
 * True when the backend serves `family/model` and, when a `constraint` (the `?backend=` value: an
 * engine or a backend id) is given, matches it. The one definition used by workers (what to run
 * where) and by the API (capacity, `/models` engines).
 */
export function servesModel(
  backend: { readonly models: readonly string[]; readonly engine?: string; readonly id?: string },
  familyModel: string,
  constraint?: string,
): boolean {
  if (constraint && constraint !== backend.engine && constraint !== backend.id) return false;
  return backend.models.includes("*") || backend.models.includes(familyModel);
}
