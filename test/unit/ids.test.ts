import { describe, expect, it } from "vitest";
import { isJobId, randomAlnum, randomIds } from "../../src/core/ids.js";

describe("ids", () => {
  it("makes job ids of the documented shape", () => {
    const id = randomIds("job");
    expect(isJobId(id)).toBe(true);
    expect(id).toMatch(/^j_[A-Za-z0-9]{22}$/);
  });
  it("makes request ids that match the echo pattern", () => {
    expect(randomIds("request")).toMatch(/^req_[A-Za-z0-9]{20,}$/);
  });
  it("draws every alphanumeric character", () => {
    const s = randomAlnum(20_000);
    expect(new Set(s).size).toBe(62);
  });
});
