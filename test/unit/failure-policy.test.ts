// The failure policy's table: the error decides the job's fate, and whether the backend cools down.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { JOB_ERROR_MESSAGE, type JobErrorCode } from "../../src/core/job-errors.js";
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

describe("customer-visible messages", () => {
  const leaky = "10.1.2.3:8000 /srv/models/secret.bin";
  it.each([
    ["a backend 422 with its body", new BackendHttpError(422, `backend answered 422: ${leaky}`)],
    ["a backend 500 with its body", new BackendHttpError(500, `backend answered 500: ${leaky}`)],
    ["a backend 503", new BackendHttpError(503, `backend answered 503: ${leaky}`)],
    ["an unreadable answer", new BackendProtocolError(`bad frame from ${leaky}`)],
    ["a reset connection", Object.assign(new Error(`read ECONNRESET ${leaky}`), { code: "ECONNRESET" })],
    [
      "a refused connection",
      Object.assign(new Error(`connect ECONNREFUSED ${leaky}`), { code: "ECONNREFUSED" }),
    ],
    ["a missing input", new InputMissingError(`sha256-${leaky}`)],
    ["any other exception", new TypeError(`Cannot read properties of undefined at ${leaky}`)],
    ["a thrown string", leaky],
  ])("%s: the message is the code's fixed text, the cause only in detail", (_, err) => {
    const v = classify(err);
    expect(v.error.message).toBe(JOB_ERROR_MESSAGE[v.error.code as JobErrorCode]);
    expect(v.error.message).not.toContain("10.1.2.3");
    expect(v.detail).toContain(leaky);
  });

  it("bounds the detail", () => {
    expect(classify(new BackendHttpError(500, "x".repeat(10_000))).detail.length).toBeLessThanOrEqual(501);
  });

  it("the scheduler scripts spell the table's texts for the codes they write", () => {
    const lua = (name: string) =>
      readFileSync(new URL(`../../src/queues/lua/${name}`, import.meta.url), "utf8");
    expect(lua("cancel.lua")).toContain(`"cancelled", "${JOB_ERROR_MESSAGE.cancelled}"`);
    for (const file of ["lib_dispatch.lua", "expire.lua"])
      expect(lua(file)).toContain(`"ttl_expired", "${JOB_ERROR_MESSAGE.ttl_expired}"`);
  });
});
