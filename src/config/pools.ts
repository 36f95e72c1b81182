// POOLS_FILE (issue 15 item 3; docs/decisions.md "Pools"): the named pools, validated with zod; JSON
// or YAML. A model or a backend belongs to at most one pool; what no pool names is the default's.
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { DEFAULT_POOL, MAX_POOLS, POOL_NAME_RE, type PoolDef } from "../core/pools.js";

/** Far above any real pools file (32 pools of a few hundred models each). */
export const MAX_POOLS_FILE_BYTES = 256 * 1024;

const familyModel = z.string().regex(/^[a-z0-9][a-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/, {
  message: 'expected "family/model"',
});

const poolSchema = z
  .object({
    name: z
      .string()
      .regex(POOL_NAME_RE, { message: "names are 1-16 chars of [a-z0-9], starting with a letter" })
      .refine((n) => n !== DEFAULT_POOL, { message: `"${DEFAULT_POOL}" is the unnamed pool's name` }),
    models: z.array(familyModel).min(1).max(1_000),
    backends: z.array(z.string().min(1).max(64)).min(1).max(1_000),
  })
  .strict();

const poolsFileSchema = z
  .object({ pools: z.array(poolSchema).max(MAX_POOLS) })
  .strict()
  .superRefine((doc, ctx) => {
    const names = new Set<string>();
    const models = new Map<string, string>();
    const backends = new Map<string, string>();
    doc.pools.forEach((p, i) => {
      if (names.has(p.name))
        ctx.addIssue({ code: "custom", path: ["pools", i, "name"], message: `duplicate pool ${p.name}` });
      names.add(p.name);
      const claim = (kind: "models" | "backends", seen: Map<string, string>, item: string, j: number) => {
        const owner = seen.get(item);
        if (owner !== undefined && owner !== p.name) {
          ctx.addIssue({
            code: "custom",
            path: ["pools", i, kind, j],
            message: `${item} is already in pool ${owner}: a ${kind.slice(0, -1)} belongs to one pool`,
          });
        }
        seen.set(item, p.name);
      };
      p.models.forEach((m, j) => claim("models", models, m, j));
      p.backends.forEach((b, j) => claim("backends", backends, b, j));
    });
  });

/**
 * Parses a POOLS_FILE's text (YAML is a superset of JSON, so one parser reads both).
 * @throws Error naming the file and every invalid path.
 */
export function parsePoolsFile(text: string, source: string): readonly PoolDef[] {
  if (Buffer.byteLength(text) > MAX_POOLS_FILE_BYTES) {
    throw new Error(`${source}: larger than ${MAX_POOLS_FILE_BYTES} bytes`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON/YAML: ${(err as Error).message}`);
  }
  const result = poolsFileSchema.safeParse(doc);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`${source}: invalid pools file:\n${lines.join("\n")}`);
  }
  return result.data.pools;
}

/**
 * Checks the pools against the backends and the catalogue: every backend a pool lists exists, and
 * every model a pool lists is in the catalogue and served by one of the pool's backends.
 * @returns the problems, one line each (empty: consistent).
 */
export function poolProblems(
  pools: readonly PoolDef[],
  backends: readonly { readonly id: string; readonly models: readonly string[] }[],
  inCatalog: (familyModel: string) => boolean,
): string[] {
  const out: string[] = [];
  const byId = new Map(backends.map((b) => [b.id, b]));
  for (const p of pools) {
    for (const id of p.backends) {
      if (!byId.has(id)) out.push(`pool ${p.name}: backend ${id} is not in the backends`);
    }
    for (const m of p.models) {
      if (!inCatalog(m)) out.push(`pool ${p.name}: model ${m} is not in the catalogue`);
      const served = p.backends.some((id) => {
        const b = byId.get(id);
        return b !== undefined && (b.models.includes("*") || b.models.includes(m));
      });
      if (!served) out.push(`pool ${p.name}: no backend of the pool serves ${m}`);
    }
  }
  return out;
}
