// Every bound on what a request may carry, in one place: the JSON body's structure, the fields whose
// size the schema does not already fix, and the query values, path segments and headers routes read.

/** Largest request body: 10 MiB (API.md §2, 413 `request_too_large` above it). */
export const BODY_LIMIT_BYTES = 10 * 1024 * 1024;

/**
 * The first bytes of every body that the budget of bodies in flight does not count: a job without
 * inline images is far smaller, so ordinary submits are never refused for the budget, and bodies
 * that have sent little hold nothing.
 */
export const BODY_UNCOUNTED_BYTES = 16 * 1024;

/** Largest decoded size of an inline `data:` image: 1 MiB (API.md §3). */
export const MAX_DATA_IMAGE_BYTES = 1024 * 1024;

/** Bounds of a JSON body's structure, checked by `core/json-scan.ts` before anything parses it. */
export interface JsonLimits {
  /** Containers open at once (`[[[` is 3). */
  readonly maxDepth: number;
  /** Members of one object. */
  readonly maxMembers: number;
  /** Items of one array. */
  readonly maxItems: number;
  /** Values in the whole body (strings, numbers, literals, objects, arrays; keys not counted). */
  readonly maxValues: number;
  /** Raw bytes of one key, quotes and escapes included. */
  readonly maxKeyBytes: number;
  /** Raw bytes of one string value, quotes and escapes included. */
  readonly maxStringBytes: number;
  /** Raw bytes of all strings of the body together, keys included. */
  readonly maxStringBytesTotal: number;
  /** Characters of one number (or `true`/`false`/`null`). */
  readonly maxNumberChars: number;
}

/**
 * The bounds of every JSON body. A legitimate request is about 3 levels deep (body → `lora` → item),
 * has a few dozen members, at most {@link MAX_LORAS} LoRAs and 5 webhook events, and two strings that
 * can be long: inline `image` and `mask` of ≤ 1 MiB each, ~1.4 M base64 characters (up to 1.5 M if an
 * encoder escapes `/` as `\/`); prompts add at most ~72 KB (6,000 code points as 12-byte escaped
 * surrogate pairs). Each bound is well above what such a request needs. The total of the strings
 * also bounds what JSON.parse has to decode (escapes cost it ~3× plain bytes): with it, the worst
 * body that passes parses in ~20 ms (docs/decisions.md "Request bounds").
 */
export const JSON_BODY_LIMITS: JsonLimits = Object.freeze({
  maxDepth: 32,
  maxMembers: 256,
  maxItems: 256,
  maxValues: 4096,
  maxKeyBytes: 256,
  maxStringBytes: 2 * 1024 * 1024,
  maxStringBytesTotal: 4 * 1024 * 1024,
  // A double needs at most 24 characters (`-1.2345678901234567e-308`).
  maxNumberChars: 64,
});

/** Most LoRAs one request may apply (the original catalogue lists nine; each id at most once). */
export const MAX_LORAS = 16;
/** Most members of one `lora` item (`id`, `weight`, and nulls for unset members). */
export const LORA_ITEM_MAX_MEMBERS = 8;
/** Longest LoRA id. */
export const LORA_ID_MAX_CHARS = 128;
/** Longest `modality`/`family`/`model`/`task` value (body fields and path segments); HF aliases fit. */
export const ROUTE_PART_MAX_CHARS = 128;
/** Longest `format` value (body field or query). */
export const FORMAT_MAX_CHARS = 32;
/** Longest `backend` value (an engine name or a backend id; body field or query). */
export const BACKEND_MAX_CHARS = 64;
/** Longest `idempotency_key` (body field or `Idempotency-Key` header, API.md §3). */
export const IDEMPOTENCY_KEY_MAX_CHARS = 64;
/** Longest `webhook` URL. */
export const WEBHOOK_URL_MAX_CHARS = 2048;
/** Longest image reference given as a URL (a `data:` URI is bounded by its decoded size instead). */
export const IMAGE_URL_MAX_CHARS = 4096;
/** Longest value of a header a route reads (`Prefer`, `Accept`). */
export const HEADER_MAX_CHARS = 1024;
/** Longest job id in a path (`j_` + 20–64 alphanumerics). */
export const JOB_ID_MAX_CHARS = 66;
/** Longest body key named in an error message; longer ones are cut (they are unknown anyway). */
export const SHOWN_KEY_MAX_CHARS = 64;
/** Longest path, content type or object name an error message repeats; longer ones are cut. */
export const SHOWN_VALUE_MAX_CHARS = 128;
