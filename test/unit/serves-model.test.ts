// One predicate decides whether a backend serves a model (workers) and a route (API capacity, /models).
import { describe, expect, it } from "vitest";
import { servesModel } from "../../src/config/backends.js";
import { ENGINES as CORE_ENGINES } from "../../src/core/catalog.js";
import { ENGINES } from "../../src/config/backends.js";

const gpu = { id: "gpu-a", engine: "nunchaku", models: ["flux/schnell", "flux/dev"] };

describe("servesModel", () => {
  it("matches the backend's models, or every model for *", () => {
    expect(servesModel(gpu, "flux/schnell")).toBe(true);
    expect(servesModel(gpu, "wan/default")).toBe(false);
    expect(servesModel({ models: ["*"] }, "wan/default")).toBe(true);
  });
  it("honours a ?backend= constraint: an engine or a backend id", () => {
    expect(servesModel(gpu, "flux/schnell", "nunchaku")).toBe(true);
    expect(servesModel(gpu, "flux/schnell", "gpu-a")).toBe(true);
    expect(servesModel(gpu, "flux/schnell", "torch")).toBe(false);
    expect(servesModel(gpu, "flux/schnell", "gpu-b")).toBe(false);
  });
  it("uses the catalogue's engine names", () => {
    expect(ENGINES).toBe(CORE_ENGINES);
  });
});
