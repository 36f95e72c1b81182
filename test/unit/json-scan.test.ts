// The structural scan of JSON bodies: every bound refused with its constraint and field, whatever
// the chunking; a body that passes never holds more than the bounds allow once JSON.parse builds it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/core/errors.js";
import { JsonScan } from "../../src/core/json-scan.js";
import { JSON_BODY_LIMITS, type JsonLimits } from "../../src/core/request-limits.js";

const SMALL: JsonLimits = {
  maxDepth: 4,
  maxMembers: 5,
  maxItems: 6,
  maxValues: 20,
  maxKeyBytes: 10,
  maxStringBytes: 16,
  maxStringBytesTotal: 32,
  maxNumberChars: 8,
};

/** Scans `text` cut into pieces at `cuts` (byte offsets); the error it throws, if any. */
function scan(
  text: string | Uint8Array,
  limits: JsonLimits = SMALL,
  cuts: readonly number[] = [],
): AppError | undefined {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  const s = new JsonScan(limits);
  let from = 0;
  try {
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      s.push(bytes.subarray(from, Math.max(from, cut)));
      from = Math.max(from, cut);
    }
    s.push(bytes.subarray(from));
    return undefined;
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
}

/** Every byte offset, one chunk per byte. */
const everyByte = (text: string) =>
  Array.from({ length: new TextEncoder().encode(text).length }, (_, i) => i);

describe("JsonScan", () => {
  it("passes a typical request and reports whether it was blank", () => {
    const body = JSON.stringify({
      modality: "image",
      prompt: 'a "quoted" \\ prompt\nwith 中文 and 😀',
      lora: [{ id: "x", weight: -0.5 }],
      seed: 4294967295,
      lightning: true,
      mask: null,
    });
    expect(scan(body, JSON_BODY_LIMITS)).toBeUndefined();
    expect(scan(body, JSON_BODY_LIMITS, everyByte(body))).toBeUndefined();
    const blank = new JsonScan(SMALL);
    blank.push(new TextEncoder().encode(" \r\n\t "));
    expect(blank.blank).toBe(true);
    expect(blank.bytes).toBe(5);
  });

  it.each([
    ["max_depth", '{"a":[[[1]]]}', '{"a":[[[[1]]]]}', "a"],
    ["max_depth", "[[[[]]]]", "[[[[[]]]]]", "body"],
    ["max_members", '{"a":1,"b":2,"c":3,"d":4,"e":5}', '{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}', "body"],
    [
      "max_members",
      '{"o":{"a":1,"b":2,"c":3,"d":4,"e":5}}',
      '{"o":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}}',
      "o",
    ],
    ["max_items", '{"lora":[0,1,2,3,4,5]}', '{"lora":[0,1,2,3,4,5,6]}', "lora"],
    ["max_items", '[{},{},[],"",0,null]', '[{},{},[],"",0,null,true]', "body"],
    [
      "max_values",
      "[[0,0,0,0,0,0],[0,0,0,0,0,0],[0,0,0,0]]",
      "[[0,0,0,0,0,0],[0,0,0,0,0,0],[0,0,0,0,0]]",
      "body",
    ],
    ["max_key_length", '{"abcdefgh":1}', '{"abcdefghi":1}', "abcdefghi"],
    ["max_string_length", '{"p":"abcdefghijklmn"}', '{"p":"abcdefghijklmno"}', "p"],
    ["max_string_length", '{"p":"\\n\\n\\n\\n\\n\\n\\n"}', '{"p":"\\n\\n\\n\\n\\n\\n\\na"}', "p"],
    [
      "max_total_string_length",
      '{"a":"0123456789","b":"0123456789"}',
      '{"a":"0123456789","b":"0123456789","c":"0"}',
      "c",
    ],
    ["max_number_length", '{"s":-1.5e-30}', '{"s":-1.5e-300}', "s"],
    ["max_number_length", "[nullnull]", "[nullnulln]", "body"],
  ])("%s: %s passes, %s is refused (field %s)", (constraint, ok, bad, field) => {
    expect(scan(ok)).toBeUndefined();
    expect(scan(ok, SMALL, everyByte(ok))).toBeUndefined();
    for (const cuts of [[], everyByte(bad)]) {
      const err = scan(bad, SMALL, cuts);
      expect(err?.code).toBe("validation_error");
      expect(err?.details).toEqual({ field, constraint, limit: expect.any(Number) });
      expect(err?.message).toContain(String(err?.details?.["limit"]));
    }
  });

  it("names a multi-byte top-level key whatever the chunking", () => {
    const bad = '{"prömpt":[[[[[0]]]]]}';
    for (const cuts of [[], everyByte(bad)])
      expect(scan(bad, SMALL, cuts)?.details?.["field"]).toBe("prömpt");
  });

  it("keeps an escaped quote or backslash inside the string across chunk ends", () => {
    // `"a\"[[[[[[[["` is one string; were the escape lost at the cut, the brackets would count as depth.
    const text = '{"k":"a\\"[[[[[[","q":"\\\\"}';
    expect(scan(text, SMALL, everyByte(text))).toBeUndefined();
  });

  it("refuses a closing bracket that closes nothing as invalid JSON", () => {
    expect(scan("{}]")?.code).toBe("invalid_json");
    expect(scan("]", SMALL)?.message).toMatch(/unexpected \] at byte 0/);
  });

  it("stops at the first bound: a 10 MiB [[[[… is refused after maxDepth + 1 bytes", () => {
    const s = new JsonScan(JSON_BODY_LIMITS);
    const huge = new Uint8Array(10 * 1024 * 1024).fill(0x5b);
    expect(() => s.push(huge)).toThrow(/nested deeper than/);
  });

  /** What JSON.parse built: depth, values, widest object and array, longest key and string. */
  function measure(v: unknown, depth = 0): { depth: number; values: number; members: number; items: number } {
    let out = { depth, values: 1, members: 0, items: 0 };
    if (v !== null && typeof v === "object") {
      const entries = Object.values(v);
      out = Array.isArray(v)
        ? { ...out, depth: depth + 1, items: entries.length }
        : { ...out, depth: depth + 1, members: entries.length };
      for (const e of entries) {
        const m = measure(e, depth + 1);
        out = {
          depth: Math.max(out.depth, m.depth),
          values: out.values + m.values,
          members: Math.max(out.members, m.members),
          items: Math.max(out.items, m.items),
        };
      }
    }
    return out;
  }

  it("never lets through more than JSON.parse may build, and refuses only what breaks a bound", () => {
    fc.assert(
      fc.property(
        fc.jsonValue({ maxDepth: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.boolean(),
        (value, cutSeeds, pretty) => {
          const text = JSON.stringify(value, null, pretty ? 2 : undefined);
          const bytes = new TextEncoder().encode(text);
          const limits = { ...SMALL, maxStringBytes: 64, maxStringBytesTotal: 256, maxNumberChars: 32 };
          const err = scan(
            bytes,
            limits,
            cutSeeds.map((c) => c % (bytes.length + 1)),
          );
          const m = measure(JSON.parse(text));
          const within =
            m.depth <= limits.maxDepth &&
            m.values <= limits.maxValues &&
            m.members <= limits.maxMembers &&
            m.items <= limits.maxItems;
          if (err === undefined) expect(within).toBe(true);
          else expect(err.code).toBe("validation_error");
          // Structure alone (no string or number bound involved): refused exactly when a bound is broken.
          if (
            err !== undefined &&
            ["max_depth", "max_values", "max_members", "max_items"].includes(
              String(err.details?.["constraint"]),
            )
          )
            expect(within).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("gives the same answer whatever the chunking", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...'[]{}",:\\ 0an\u00e9'), maxLength: 80 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (text, seeds) => {
          const len = new TextEncoder().encode(text).length;
          const whole = scan(text);
          const cut = scan(
            text,
            SMALL,
            seeds.map((s) => s % (len + 1)),
          );
          expect(cut?.details).toEqual(whole?.details);
          expect(cut?.code).toEqual(whole?.code);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
