// RFC 8785 canonical JSON (src/core/canonical-json.ts): the RFC's own examples byte for byte, and
// the values JSON cannot carry refused with the path named.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { bodyFingerprint } from "../../src/api/idempotency.js";
import { CanonicalJsonError, canonicalBytes, canonicalJson } from "../../src/core/canonical-json.js";

/** The IEEE 754 double with these 64 bits (hex). */
function double(bits: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${bits}`));
  return view.getFloat64(0);
}

describe("RFC 8785 examples", () => {
  it("serializes the numbers of Appendix B", () => {
    const table: [string, string][] = [
      ["0000000000000000", "0"],
      ["8000000000000000", "0"],
      ["0000000000000001", "5e-324"],
      ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"],
      ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"],
      ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"],
      ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"],
      ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4e", "999999999999999700000"],
      ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"],
      ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"],
      ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555554", "333333333.33333325"],
      ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555556", "333333333.3333334"],
      ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"],
      ["43143ff3c1cb0959", "1424953923781206.2"],
    ];
    for (const [bits, text] of table) expect(canonicalJson(double(bits)), bits).toBe(text);
    // NaN and Infinity (0x7fffffffffffffff, 0x7ff0000000000000) are errors
    expect(() => canonicalJson(double("7fffffffffffffff"))).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(double("7ff0000000000000"))).toThrow(CanonicalJsonError);
  });

  it("gives the bytes of §3.2.4 for the sample object of §3.2.2", () => {
    const input = JSON.parse(String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50,
                  2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`) as unknown;
    const hex =
      "7b226c69746572616c73223a5b6e756c6c2c747275652c66616c73655d2c226e756d62657273223a5b3333333333333333" +
      "332e333333333333332c31652b33302c342e352c302e3030322c31652d32375d2c22737472696e67223a22e282ac245c7530" +
      "3030665c6e4127425c225c5c5c5c5c222f227d";
    expect(Buffer.from(canonicalBytes(input)).toString("hex")).toBe(hex);
    expect(canonicalJson(input)).toBe(
      String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
    );
  });

  it("sorts members by UTF-16 code units (§3.2.3)", () => {
    const input = JSON.parse(String.raw`{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }`) as Record<string, string>;
    // the order in the text (a parsed object would put "1", an array index, first whatever the text)
    const text = canonicalJson(input);
    const positions = Object.values(input).map((v) => [text.indexOf(v), v] as const);
    expect(positions.sort((a, b) => a[0] - b[0]).map(([, v]) => v)).toEqual([
      "Carriage Return",
      "One",
      "Control",
      "Latin Small Letter O With Diaeresis",
      "Euro Sign",
      "Emoji: Grinning Face",
      "Hebrew Letter Dalet With Dagesh",
    ]);
  });
});

describe("canonicalJson refuses what JSON cannot carry", () => {
  const refused: [string, unknown, string][] = [
    ["undefined", undefined, "$"],
    ["a function", { a: [1, () => 1] }, "$.a[1]"],
    ["a symbol", { s: Symbol("x") }, "$.s"],
    ["a bigint", { n: 10n }, "$.n"],
    ["NaN", { x: { y: Number.NaN } }, "$.x.y"],
    ["-Infinity", [Number.NEGATIVE_INFINITY], "$[0]"],
    ["a lone surrogate", { p: "a\ud800b" }, "$.p"],
    ["a lone surrogate in a key", { "\udc00": 1 }, "$"],
    ["a Date", { at: new Date(0) }, "$.at"],
    ["a Map", { m: new Map() }, "$.m"],
    ["a Uint8Array", { b: new Uint8Array(2) }, "$.b"],
    // eslint-disable-next-line no-sparse-arrays -- the hole is the point
    ["an array hole", { h: [1, , 3] }, "$.h[1]"],
    ["undefined in an array", [undefined], "$[0]"],
  ];
  for (const [what, value, path] of refused) {
    it(`refuses ${what}, naming ${path}`, () => {
      let err: unknown;
      try {
        canonicalJson(value);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CanonicalJsonError);
      expect((err as CanonicalJsonError).path).toBe(path);
    });
  }

  it("refuses cycles and nesting deeper than 256, but not shared references", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/circular/);
    let deep: unknown = 1;
    for (let i = 0; i < 300; i++) deep = [deep];
    expect(() => canonicalJson(deep)).toThrow(/deeper/);
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });

  it("leaves out members whose value is undefined, as JSON.stringify does", () => {
    expect(canonicalJson({ b: 1, a: undefined })).toBe('{"b":1}');
    expect(canonicalJson(Object.assign(Object.create(null) as object, { z: true, y: null }))).toBe(
      '{"y":null,"z":true}',
    );
  });
});

describe("the idempotency fingerprint", () => {
  it("is SHA-256 of the canonical bytes, whatever the member order or number spelling", () => {
    const a = JSON.parse('{"prompt":"x","seed":1.0e0,"lora":[{"w":0.50,"name":"n"}]}') as unknown;
    const b = JSON.parse('{"lora":[{"name":"n","w":5e-1}],"seed":1,"prompt":"x"}') as unknown;
    expect(bodyFingerprint(a)).toBe(bodyFingerprint(b));
    expect(bodyFingerprint(a)).toBe(
      createHash("sha256").update('{"lora":[{"name":"n","w":0.5}],"prompt":"x","seed":1}').digest("hex"),
    );
    expect(bodyFingerprint({ ...(a as object), seed: 2 })).not.toBe(bodyFingerprint(a));
  });

  it("turns a lone surrogate into a 400 validation_error", () => {
    expect(() => bodyFingerprint(JSON.parse('{"prompt":"\\ud800"}'))).toThrow(
      expect.objectContaining({ code: "validation_error", status: 400 }),
    );
  });
});
