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

describe("randomAlnum's bytes", () => {
  it("skips bytes of 248 and above, maps the rest without modulo bias, and asks again when short", () => {
    // one byte per call: 255 and 248 skipped, 0 → A, 61 → 9, 62 → A, 247 → 9 (247 % 62 = 61)
    const feed = [255, 248, 0, 61, 62, 247];
    let i = 0;
    const oneAtATime = () => Uint8Array.of(feed[i++ % feed.length]!);
    expect(randomAlnum(4, oneAtATime)).toBe("A9A9");
  });
  it("makes strings longer than its scratch buffer, and strings that do not share characters", () => {
    const long = randomAlnum(129);
    expect(long).toMatch(/^[A-Za-z0-9]{129}$/);
    const a = randomAlnum(43, () => new Uint8Array(86)); // all zero bytes: "A" × 43
    const b = randomAlnum(22, () => new Uint8Array(44).fill(1)); // "B" × 22
    expect(a).toBe("A".repeat(43));
    expect(b).toBe("B".repeat(22));
    expect(a).toBe("A".repeat(43)); // the first string is its own, not a view of the buffer
  });
});
