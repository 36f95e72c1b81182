// One table of the scripts' return codes, decoded by one function.
import { describe, expect, it } from "vitest";
import {
  SCRIPT_CODES,
  luaCodeTable,
  refusalOf,
  withLuaCodes,
  type ScriptRefusal,
} from "../../src/queues/script-codes.js";
import { SCRIPT_NAMES, scriptSources } from "../../src/queues/scripts.js";

const names = Object.keys(SCRIPT_CODES) as ScriptRefusal[];

describe("script return codes", () => {
  it("gives each refusal its own negative code, returned by known scripts", () => {
    const codes = names.map((n) => SCRIPT_CODES[n].code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const n of names) {
      expect(SCRIPT_CODES[n].code, n).toBeLessThan(0);
      for (const script of SCRIPT_CODES[n].from) expect(SCRIPT_NAMES, n).toContain(script);
    }
  });

  it("decodes a code into the refusal of the script that returned it", () => {
    expect(refusalOf("finish", SCRIPT_CODES.stale.code)).toBe("stale");
    expect(refusalOf("cancel", SCRIPT_CODES.missing.code)).toBe("missing");
    expect(refusalOf("admit", SCRIPT_CODES.resent.code)).toBe("resent");
    expect(refusalOf("finish", 1)).toBeUndefined();
    expect(refusalOf("admit", 0)).toBeUndefined();
  });

  it("throws on a code the script does not return", () => {
    expect(() => refusalOf("admit", SCRIPT_CODES.stale.code)).toThrow(/admit\.lua returned -3/);
    expect(() => refusalOf("finish", -99)).toThrow(/finish\.lua returned -99/);
  });

  it("hands the scripts the same table as Lua source", () => {
    const lua = luaCodeTable();
    for (const n of names) expect(lua).toContain(`${n} = ${SCRIPT_CODES[n].code}`);
  });

  it("writes the codes into the scripts as numbers, and refuses a name not in the table", () => {
    expect(withLuaCodes("if x then return {E.voided} end return {E.too_far, p}")).toBe(
      "if x then return {(-8)} end return {(-6), p}",
    );
    expect(() => withLuaCodes("return {E.vanished}")).toThrow(/E\.vanished/);
    for (const [name, lua] of scriptSources()) expect(lua, name).not.toMatch(/\bE\.\w/);
  });
});
