// Incremental structural scan of JSON bytes: bounds nesting, container sizes, value count and token
// lengths chunk by chunk as a body arrives, so that JSON.parse only ever sees bounded documents.
import { AppError } from "./errors.js";
import type { JsonLimits } from "./request-limits.js";

// Byte values of the structural characters.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const OBJECT = 1;
const ARRAY = 2;

/** How many bytes of a top-level key are kept to name it in `details.field`. */
const TOP_KEY_MAX = 64;

/**
 * A scan of one body, fed its chunks in order. It does not check the grammar (JSON.parse does that
 * afterwards); it counts what JSON.parse would build: every value start (a string, a container, a
 * bare scalar token) counts against `maxValues` and against its array's `maxItems`, every key against
 * its object's `maxMembers`, every open container against `maxDepth`, and every token's length
 * against its bound as its bytes go by. Whatever the bytes, the counts never fall below what
 * JSON.parse builds from them, so a body that passes costs JSON.parse no more than these bounds plus
 * its length. Constant work per byte; nothing is buffered.
 */
export class JsonScan {
  readonly #limits: JsonLimits;
  /** Container kind and member/item count per open level (index 0 = outside any container). */
  readonly #kinds: number[] = [0];
  readonly #counts: number[] = [0];
  #depth = 0;
  #values = 0;
  #bytes = 0;
  #blank = true;
  // Inside a string: its raw length so far (quotes and escapes count as their bytes), whether a
  // backslash is pending, and whether it is an object key.
  #inString = false;
  #escaped = false;
  #stringBytes = 0;
  /** Raw bytes of every string so far, keys included. */
  #stringTotal = 0;
  #isKey = false;
  /** An object expects a key after `{` and `,`. */
  #expectKey = false;
  /** Length of the bare scalar (number, true, false, null, or garbage) being read; 0 between tokens. */
  #scalar = 0;
  /** The first bytes of the top-level key last read, to name the member in `details.field`. */
  readonly #topKey = new Uint8Array(TOP_KEY_MAX);
  /** Bytes of {@link #topKey} in use (an array of their own per key cost ~100 B a key). */
  #topKeyLength = 0;
  #readingTopKey = false;

  constructor(limits: JsonLimits) {
    this.#limits = limits;
  }

  /** Bytes scanned so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True while every byte scanned was JSON whitespace. */
  get blank(): boolean {
    return this.#blank;
  }

  /**
   * Scans the next chunk.
   * @throws AppError 400 `validation_error` when a bound is broken (`details.constraint` is
   *   `max_depth`, `max_members`, `max_items`, `max_values`, `max_key_length`, `max_string_length` or
   *   `max_number_length`, `details.limit` its value, `details.field` the top-level member it is in,
   *   else `body`); 400 `invalid_json` for a closing bracket that closes nothing.
   */
  push(chunk: Uint8Array): void {
    // The state lives in locals while the chunk is scanned (written back at the end, or before a
    // throw through #fail): a loop over fields costs several times more per byte.
    const limits = this.#limits;
    const kinds = this.#kinds;
    const counts = this.#counts;
    const n = chunk.length;
    let depth = this.#depth;
    let values = this.#values;
    let blank = this.#blank;
    let inString = this.#inString;
    let escaped = this.#escaped;
    let stringBytes = this.#stringBytes;
    let stringTotal = this.#stringTotal;
    let isKey = this.#isKey;
    let expectKey = this.#expectKey;
    let scalar = this.#scalar;
    let readingTopKey = this.#readingTopKey;
    let i = 0;
    while (i < n) {
      if (inString) {
        // Run to the closing quote: only the length matters here. A backslash escapes the one byte
        // after it (`\uXXXX` goes on with hex digits, never a quote or a backslash).
        const start = i;
        if (escaped) {
          escaped = false;
          i++;
        }
        while (i < n) {
          const b = chunk[i] ?? 0;
          if (b === QUOTE) break;
          i += b === BACKSLASH ? 2 : 1;
        }
        if (i > n) {
          // The chunk ended right after a backslash: the next one starts with the escaped byte.
          escaped = true;
          i = n;
        }
        if (readingTopKey) {
          const key = this.#topKey;
          let length = this.#topKeyLength;
          for (let k = start; k < i && length < TOP_KEY_MAX; k++) key[length++] = chunk[k] ?? 0;
          this.#topKeyLength = length;
        }
        stringBytes += i - start;
        stringTotal += i - start;
        if (i < n) {
          // The closing quote.
          stringBytes++;
          stringTotal++;
          i++;
          inString = false;
          readingTopKey = false;
        }
        if (stringTotal > limits.maxStringBytesTotal) {
          throw this.#fail(
            depth,
            "max_total_string_length",
            limits.maxStringBytesTotal,
            "the strings of the body together are longer than",
          );
        }
        if (isKey) {
          if (stringBytes > limits.maxKeyBytes)
            throw this.#fail(depth, "max_key_length", limits.maxKeyBytes, "a key is longer than");
        } else if (stringBytes > limits.maxStringBytes) {
          throw this.#fail(depth, "max_string_length", limits.maxStringBytes, "a string is longer than");
        }
        continue;
      }
      const b = chunk[i] ?? 0;
      i++;
      if (b === SPACE || b === LF || b === CR || b === TAB) {
        scalar = 0;
        while (i < n) {
          const w = chunk[i] ?? 0;
          if (w !== SPACE && w !== LF && w !== CR && w !== TAB) break;
          i++;
        }
        continue;
      }
      blank = false;
      if (b === QUOTE) {
        scalar = 0;
        inString = true;
        stringBytes = 1;
        stringTotal++;
        isKey = expectKey && kinds[depth] === OBJECT;
        if (isKey) {
          expectKey = false;
          if (depth === 1) {
            this.#topKeyLength = 0;
            readingTopKey = true;
          }
          const members = (counts[depth] ?? 0) + 1;
          counts[depth] = members;
          if (members > limits.maxMembers)
            throw this.#fail(depth, "max_members", limits.maxMembers, "an object has more members than");
        } else if (
          ++values > limits.maxValues ||
          (kinds[depth] === ARRAY && ++counts[depth]! > limits.maxItems)
        ) {
          throw this.#tooMany(depth, values);
        }
      } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
        scalar = 0;
        if (++values > limits.maxValues || (kinds[depth] === ARRAY && ++counts[depth]! > limits.maxItems)) {
          throw this.#tooMany(depth, values);
        }
        if (depth === limits.maxDepth)
          throw this.#fail(depth, "max_depth", limits.maxDepth, "containers are nested deeper than");
        depth++;
        kinds[depth] = b === OPEN_OBJECT ? OBJECT : ARRAY;
        counts[depth] = 0;
        expectKey = b === OPEN_OBJECT;
      } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        scalar = 0;
        if (depth === 0) {
          const at = this.#bytes + i - 1;
          throw new AppError(
            "invalid_json",
            `request body is not valid JSON: unexpected ${String.fromCharCode(b)} at byte ${at}`,
          );
        }
        depth--;
        expectKey = false;
      } else if (b === COMMA) {
        scalar = 0;
        expectKey = kinds[depth] === OBJECT;
      } else if (b === COLON) {
        scalar = 0;
        expectKey = false;
      } else {
        // A bare scalar token: its first byte starts a value.
        if (
          scalar === 0 &&
          (++values > limits.maxValues || (kinds[depth] === ARRAY && ++counts[depth]! > limits.maxItems))
        ) {
          throw this.#tooMany(depth, values);
        }
        if (++scalar > limits.maxNumberChars)
          throw this.#fail(
            depth,
            "max_number_length",
            limits.maxNumberChars,
            "a number or literal is longer than",
          );
      }
    }
    this.#bytes += n;
    this.#depth = depth;
    this.#values = values;
    this.#blank = blank;
    this.#inString = inString;
    this.#escaped = escaped;
    this.#stringBytes = stringBytes;
    this.#stringTotal = stringTotal;
    this.#isKey = isKey;
    this.#expectKey = expectKey;
    this.#scalar = scalar;
    this.#readingTopKey = readingTopKey;
  }

  /** The error of a value start past `maxValues` or past its array's `maxItems`. */
  #tooMany(depth: number, values: number): AppError {
    const limits = this.#limits;
    return values > limits.maxValues
      ? this.#fail(depth, "max_values", limits.maxValues, "the body has more JSON values than")
      : this.#fail(depth, "max_items", limits.maxItems, "an array has more items than");
  }

  #fail(depth: number, constraint: string, limit: number, what: string): AppError {
    this.#depth = depth;
    return this.#broken(constraint, limit, what);
  }

  /** The top-level member being read, else `body`. */
  #field(): string {
    if (this.#depth === 0 || this.#kinds[1] !== OBJECT || this.#topKeyLength === 0) return "body";
    return new TextDecoder().decode(this.#topKey.subarray(0, this.#topKeyLength));
  }

  #broken(constraint: string, limit: number, what: string): AppError {
    const field = this.#field();
    const where = field === "body" ? "request body" : field;
    return new AppError("validation_error", `${where}: ${what} the limit of ${limit}`, {
      details: { field, constraint, limit },
    });
  }
}
