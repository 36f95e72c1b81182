import { describe, expect, it } from "vitest";
import { createRandomIds, isJobId, randomAlnum, randomIds } from "../../src/core/ids.js";

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

describe("pooled ids", () => {
  it("never repeats and keeps the documented shape across pool refills", () => {
    const ids = createRandomIds();
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const id = ids(i % 2 ? "job" : "request");
      expect(id).toMatch(/^(j_|req_)[A-Za-z0-9]{22}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(5_000);
  });
});
