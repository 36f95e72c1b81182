// The identity vocabulary: model names, routes, KServe model names and attempt ids are each joined
// and split by one function, and splitting undoes joining.
import { describe, expect, it } from "vitest";
import {
  formatFamilyModel,
  formatRoute,
  kserveModelName,
  parseFamilyModel,
  parseRoute,
} from "../../src/core/model-route.js";
import { ATTEMPT_ID_SEPARATOR, attemptId, parseAttemptId } from "../../src/core/attempt-id.js";
import { randomIds } from "../../src/core/ids.js";

describe("model routes", () => {
  it("joins family and model with a slash and splits them back", () => {
    const name = formatFamilyModel("flux", "schnell");
    expect(name).toBe("flux/schnell");
    expect(parseFamilyModel(name)).toEqual({ family: "flux", model: "schnell" });
    expect(parseFamilyModel("no-slash")).toBeUndefined();
  });

  it("adds a backend constraint after @ only when there is one", () => {
    expect(formatRoute("flux/schnell")).toBe("flux/schnell");
    expect(formatRoute("flux/schnell", "")).toBe("flux/schnell");
    expect(formatRoute("flux/schnell", "nunchaku")).toBe("flux/schnell@nunchaku");
  });

  it("splits a route into its model and constraint", () => {
    expect(parseRoute("flux/schnell")).toEqual({
      family: "flux",
      model: "schnell",
      familyModel: "flux/schnell",
    });
    expect(parseRoute("wan/2.1-t2v@gpu-a.1")).toEqual({
      family: "wan",
      model: "2.1-t2v",
      familyModel: "wan/2.1-t2v",
      constraint: "gpu-a.1",
    });
    for (const constraint of [undefined, "torch", "b_1"]) {
      const route = formatRoute(formatFamilyModel("sd", "xl-turbo"), constraint);
      const back = parseRoute(route);
      expect(formatRoute(back.familyModel, back.constraint)).toBe(route);
    }
  });

  it("names the model on a KServe server family-model", () => {
    expect(kserveModelName("flux", "schnell")).toBe("flux-schnell");
  });
});

describe("attempt ids", () => {
  it("are <job id>|<token> and split back into both", () => {
    const ref = { id: randomIds("job"), token: "a1b2c3d4e5f6.12" };
    const id = attemptId(ref);
    expect(id).toBe(`${ref.id}|${ref.token}`);
    expect(parseAttemptId(id)).toEqual(ref);
    expect(parseAttemptId("no separator")).toBeUndefined();
    expect(parseAttemptId("|token")).toBeUndefined();
    expect(parseAttemptId("id|")).toBeUndefined();
  });

  it("are valid BullMQ job ids (no colon, not an integer)", () => {
    const id = attemptId({ id: randomIds("job"), token: "0123456789ab.1" });
    expect(id).not.toContain(":");
    expect(Number.isInteger(Number(id))).toBe(false);
    expect(ATTEMPT_ID_SEPARATOR).not.toMatch(/[A-Za-z0-9_.:]/);
  });
});
