// Environment values at their edges: empty means unset, and combinations that cannot work are refused
// with a message naming the variables.
import { describe, expect, it } from "vitest";
import { parseEnv } from "../../src/config/env.js";

function errorOf(source: Record<string, string>): string {
  try {
    parseEnv(source);
  } catch (err) {
    return String(err);
  }
  throw new Error("parseEnv accepted the environment");
}

describe("environment edge cases", () => {
  it("treats an empty PORT or SIM_PORT as unset (the default), not as port 0", () => {
    expect(parseEnv({ PORT: "" }).PORT).toBe(8080);
    expect(parseEnv({ PORT: "  " }).PORT).toBe(8080);
    expect(parseEnv({ SIM_PORT: "" }).SIM_PORT).toBeUndefined();
    // an explicit 0 still means "any free port"
    expect(parseEnv({ PORT: "0" }).PORT).toBe(0);
    expect(parseEnv({ SIM_PORT: "0" }).SIM_PORT).toBe(0);
  });

  it("treats other empty numbers and flags as unset too", () => {
    const env = parseEnv({
      WORKER_CONCURRENCY: "",
      MIN_TTL_S: "",
      SIM_FAIL_RATE: "",
      WEBHOOK_ALLOW_PRIVATE: "",
    });
    expect(env.WORKER_CONCURRENCY).toBeUndefined();
    expect(env.MIN_TTL_S).toBe(60);
    expect(env.SIM_FAIL_RATE).toBe(0);
    expect(env.WEBHOOK_ALLOW_PRIVATE).toBe(false);
  });

  it("refuses MIN_TTL_S above 86400, the highest ttl a job may have", () => {
    expect(parseEnv({ MIN_TTL_S: "86400" }).MIN_TTL_S).toBe(86_400);
    expect(errorOf({ MIN_TTL_S: "86401" })).toContain("MIN_TTL_S");
  });

  it("refuses BACKOFF_BASE_MS above BACKOFF_MAX_MS, naming both", () => {
    const message = errorOf({ BACKOFF_BASE_MS: "5000", BACKOFF_MAX_MS: "1000" });
    expect(message).toContain("BACKOFF_BASE_MS");
    expect(message).toContain("BACKOFF_MAX_MS");
    // against the default maximum (30000) as well
    expect(errorOf({ BACKOFF_BASE_MS: "60000" })).toContain("BACKOFF_MAX_MS");
    expect(parseEnv({ BACKOFF_BASE_MS: "1000", BACKOFF_MAX_MS: "1000" }).BACKOFF_MAX_MS).toBe(1000);
  });
});
