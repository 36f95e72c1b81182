// RFC 8785 (JSON Canonicalization Scheme) bytes: what audit records, checkpoints and the idempotency
// fingerprint hash and sign. The serialization itself is the maintained `canonicalize` package; this
// module only refuses, up front and by path, values that JSON cannot carry (instead of the package's
// silent `null`, `{}` or `undefined` for them).
import canonicalize from "canonicalize";

/** Thrown for a value RFC 8785 cannot serialize; `path` names where (`$.a[2].b`), `what` what. */
export class CanonicalJsonError extends TypeError {
  readonly path: string;
  readonly what: string;
  constructor(path: string, what: string) {
    super(`canonical JSON cannot carry ${what} at ${path}`);
    this.name = "CanonicalJsonError";
    this.path = path;
    this.what = what;
  }
}

/** Deeper nesting than this is refused (a stack overflow is not a clear error). */
const MAX_DEPTH = 256;

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** With the `u` flag a surrogate pair is one code point, so only a lone surrogate matches. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s);
}

/** Walks `value` and throws at the first thing JSON cannot carry. */
function check(value: unknown, path: string, depth: number, seen: Set<object>): void {
  switch (typeof value) {
    case "string":
      if (hasLoneSurrogate(value)) throw new CanonicalJsonError(path, "a string with a lone surrogate");
      return;
    case "number":
      if (!Number.isFinite(value)) throw new CanonicalJsonError(path, `the number ${value}`);
      return;
    case "boolean":
      return;
    case "object":
      break;
    default:
      throw new CanonicalJsonError(path, `a ${typeof value}`);
  }
  if (value === null) return;
  if (depth >= MAX_DEPTH) throw new CanonicalJsonError(path, `nesting deeper than ${MAX_DEPTH}`);
  if (seen.has(value)) throw new CanonicalJsonError(path, "a circular reference");
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw new CanonicalJsonError(`${path}[${i}]`, "an array hole");
      check(value[i], `${path}[${i}]`, depth + 1, seen);
    }
  } else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (hasLoneSurrogate(k)) throw new CanonicalJsonError(path, "a key with a lone surrogate");
      // An undefined member is absent, as JSON.stringify has it (optional fields left out).
      if (v !== undefined) check(v, `${path}.${k}`, depth + 1, seen);
    }
  } else {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? "object";
    throw new CanonicalJsonError(path, `a ${name} (only plain objects and arrays)`);
  }
  seen.delete(value);
}

/**
 * The RFC 8785 canonical JSON text of `value`: members sorted by UTF-16 code units, no whitespace,
 * ECMAScript number and string serialization. Object members whose value is `undefined` are left out.
 * @throws CanonicalJsonError for undefined (outside an object member), functions, symbols, bigints,
 *   non-finite numbers, lone surrogates, class instances (Date, Map, Buffer…), array holes, cycles,
 *   or nesting deeper than 256.
 */
export function canonicalJson(value: unknown): string {
  check(value, "$", 0, new Set());
  const text = canonicalize(value);
  // check() let through only what the package serializes; this guards the package's own contract.
  if (text === undefined) throw new CanonicalJsonError("$", "a value with no JSON form");
  return text;
}

const encoder = new TextEncoder();

/** The UTF-8 bytes of {@link canonicalJson}(value). */
export function canonicalBytes(value: unknown): Uint8Array {
  return encoder.encode(canonicalJson(value));
}
