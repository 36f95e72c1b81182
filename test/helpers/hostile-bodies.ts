// fast-check arbitraries of request bodies for the fuzz tests of the request schema: valid requests,
// the same mutated (fields set to any JSON, removed, hostile keys added), random JSON values, and
// oversized shapes (huge arrays and strings, deep nesting, many members, hostile keys).
import fc from "fast-check";

/** A valid `POST /queue` body of flux/schnell text-to-image, in a few variants. */
export const validQueueBody: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    modality: fc.constant("image"),
    family: fc.constantFrom("flux", "black-forest-labs"),
    model: fc.constantFrom("schnell", "FLUX.1-schnell"),
    task: fc.constant("t2i"),
    prompt: fc.string({ minLength: 1, maxLength: 200 }),
    format: fc.constantFrom("512", "1024", "portrait"),
    seed: fc.integer({ min: 0, max: 4_294_967_295 }),
    steps: fc.integer({ min: 1, max: 8 }),
    priority: fc.constantFrom("high", "normal", "low"),
    lora: fc.constantFrom(
      [],
      [{ id: "anti_blur", weight: 0.8 }],
      [{ id: "hands_v2" }, { id: "anti_blur", weight: -1 }],
    ),
    webhook: fc.constant("https://hooks.example.com/render"),
    webhook_events: fc.subarray(["started", "progress", "complete", "error", "cancelled"]),
    ttl: fc.integer({ min: 60, max: 86_400 }),
  },
  { requiredKeys: ["modality", "family", "model", "task", "prompt"] },
);

/** A valid sync body (generation fields only). */
export const validSyncBody: fc.Arbitrary<Record<string, unknown>> = validQueueBody.map((b) => {
  const {
    modality: _m,
    family: _f,
    model: _o,
    task: _t,
    format: _x,
    priority: _p,
    webhook: _w,
    webhook_events: _e,
    ttl: _l,
    ...rest
  } = b;
  return rest;
});

/**
 * Reads of the items of the oversized arrays and of the members of the oversized objects that
 * {@link hostileValue} makes, since the last reset: the work a parser did on them, one by one.
 */
export const itemReads = { count: 0 };

/** An array of `n` zeros that counts the reads of its items in {@link itemReads}. */
export function countedArray(n: number): unknown[] {
  return new Proxy(new Array<number>(n).fill(0), {
    get(target, key, receiver) {
      if (typeof key === "string" && key.length > 0 && key.charCodeAt(0) <= 0x39) itemReads.count++;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}

/** An object of `n` members `k0…` whose reads count in {@link itemReads}. */
export function countedObject(n: number): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    Object.defineProperty(obj, `k${i}`, {
      enumerable: true,
      get: () => {
        itemReads.count++;
        return i;
      },
    });
  }
  return obj;
}

/** `[[[…0…]]]` nested `depth` deep, built without recursion. */
export function nested(depth: number, leaf: unknown = 0): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** Keys a careless parser or schema trips on. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "hasOwnProperty",
    "valueOf",
    "__defineGetter__",
    "",
    " prompt",
    "prompt\u0000",
    "promtp",
    "lora.0.id",
    "customer_id",
  ),
  fc.string({ maxLength: 40 }),
  fc.integer({ min: 1000, max: 200_000 }).map((n) => "k".repeat(n)),
);

/** Any JSON-shaped value, oversized ones included (weights keep the huge ones rare). */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 2, arbitrary: fc.constantFrom(null, 0, -1, 1e308, -0, 4_294_967_296, 0.5, "", true, [], {}) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 100_000 }).map(countedArray) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 100_000 }).map((n) => nested(n)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 3_000_000 }), fc.constantFrom("x", "\n", "中", "😀", "="))
      .map(([n, unit]) => unit.repeat(Math.ceil(n / unit.length))),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 5_000 }).map(countedObject) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      `data:image/png;base64,${"=".repeat(100_000)}x`,
      `data:image/png;base64,${"A".repeat(1_500_000)}`,
      "data:image/png;base64,",
      `https://example.com/${"a".repeat(5000)}`,
      "https://127.0.0.1/x",
      "http://[::1]/x",
      "/objects/sha256-" + "0".repeat(64),
      "/assets/a_0123456789abcdef",
    ),
  },
);

/** `obj` with an own data member `key` (as JSON.parse makes it, `__proto__` included). */
export function withMember(
  obj: Record<string, unknown>,
  key: string,
  value: unknown,
): Record<string, unknown> {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  return obj;
}

/** One change to a body. */
type Mutation =
  | { readonly kind: "set"; readonly field: string; readonly value: unknown }
  | { readonly kind: "delete"; readonly field: string }
  | { readonly kind: "lora-item"; readonly value: unknown };

const FIELDS = [
  "modality",
  "family",
  "model",
  "task",
  "prompt",
  "negative_prompt",
  "image",
  "mask",
  "seed",
  "steps",
  "cfg",
  "format",
  "backend",
  "priority",
  "lora",
  "webhook",
  "webhook_events",
  "ttl",
  "idempotency_key",
  "count",
  "sampler",
];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("set" as const),
    field: fc.oneof(fc.constantFrom(...FIELDS), hostileKey),
    value: hostileValue,
  }),
  fc.record({ kind: fc.constant("delete" as const), field: fc.constantFrom(...FIELDS) }),
  fc.record({ kind: fc.constant("lora-item" as const), value: hostileValue }),
);

function apply(base: Record<string, unknown>, mutations: readonly Mutation[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const m of mutations) {
    if (m.kind === "delete") delete out[m.field];
    else if (m.kind === "set") withMember(out, m.field, m.value);
    else out["lora"] = [...(Array.isArray(out["lora"]) ? (out["lora"] as unknown[]) : []), m.value];
  }
  return out;
}

/** Bodies for a route: valid ones, mutated ones, and arbitrary values. */
export function bodiesFrom(valid: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 1, arbitrary: valid },
    {
      weight: 6,
      arbitrary: fc
        .tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }))
        .map(([b, ms]) => apply(b, ms)),
    },
    { weight: 2, arbitrary: hostileValue },
  );
}
