import { describe, expect, it } from "vitest";
import { parseEnv } from "../../src/config/env.js";

describe("environment", () => {
  it("applies the documented defaults", () => {
    const env = parseEnv({});
    expect(env.PORT).toBe(8080);
    expect(env.HOST).toBe("127.0.0.1");
    expect(env.DATA_DIR).toBe("./data");
    expect(env.JOB_ATTEMPTS).toBe(5);
    expect(env.SYNC_BUDGET_MS).toBe(60_000);
    expect(env.SIM_STEP_MS).toBe(20);
    expect(env.SIM_CAPACITY).toBe(16);
    expect(env.OUTPUT_URL_TTL_S).toBe(86_400);
    expect(env.WEBHOOK_ALLOW_PRIVATE).toBe(false);
    expect(Object.isFrozen(env)).toBe(true);
  });
  it("names every bad variable in one message", () => {
    let message = "";
    try {
      parseEnv({ PORT: "http", SIM_FAIL_RATE: "2" });
    } catch (err) {
      message = String(err);
    }
    expect(message).toContain("PORT");
    expect(message).toContain("SIM_FAIL_RATE");
  });
  it("treats empty strings as absent and rejects short secrets", () => {
    expect(parseEnv({ REDIS_URL: "" }).REDIS_URL).toBeUndefined();
    expect(() => parseEnv({ JWT_SECRET: "short" })).toThrow(/JWT_SECRET/);
  });
});
