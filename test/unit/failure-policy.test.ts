// The failure policy's table: the error decides the job's fate, and whether the backend cools down.
import { describe, expect, it } from "vitest";
import { BackendHttpError, BackendProtocolError } from "../../src/workers/backends/kserve-client.js";
import { AttemptAbort, BreakerOpenError, classify, tripsBreaker } from "../../src/workers/failure-policy.js";
import { InputMissingError } from "../../src/workers/infer-request.js";

const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });

describe("classify", () => {
  it.each([
    ["a backend 429", new BackendHttpError(429, "busy"), "busy", "backend_busy", true],
    ["a backend 503", new BackendHttpError(503, "busy"), "busy", "backend_busy", true],
    ["a refused connection", refused, "busy", "backend_unavailable", true],
    ["this process's open breaker", new BreakerOpenError("b1"), "busy", "backend_unavailable", false],
    ["our shutdown", new AttemptAbort("shutdown"), "busy", "interrupted", false],
    ["a cancel", new AttemptAbort("cancelled"), "busy", "interrupted", false],
  ])(
    "hands the job back on %s, cooling the backend down only when it said so",
    (_, err, outcome, code, cool) => {
      const v = classify(err);
      expect(v).toMatchObject({ outcome, error: { code, retriable: true } });
      expect(v.outcome === "busy" && v.coolDown).toBe(cool);
    },
  );

  it.each([
    ["a backend 500", new BackendHttpError(500, "x"), "retry", "backend_error"],
    ["a backend 408", new BackendHttpError(408, "x"), "retry", "backend_error"],
    ["an execution timeout", new AttemptAbort("timeout"), "retry", "backend_timeout"],
    ["an unreadable answer", new BackendProtocolError("x"), "retry", "backend_error"],
    ["a backend 400", new BackendHttpError(400, "x"), "failed", "invalid_request"],
    ["a missing input image", new InputMissingError("sha256-x"), "failed", "input_missing"],
  ])("decides %s", (_, err, outcome, code) => {
    expect(classify(err)).toMatchObject({ outcome, error: { code } });
  });

  it("counts only the backend's own failures against its breaker", () => {
    expect(tripsBreaker(new BackendHttpError(500, "x"))).toBe(true);
    expect(tripsBreaker(refused)).toBe(true);
    expect(tripsBreaker(new BackendHttpError(429, "x"))).toBe(false);
    expect(tripsBreaker(new BackendHttpError(400, "x"))).toBe(false);
    expect(tripsBreaker(new AttemptAbort("cancelled"))).toBe(false);
  });
});
