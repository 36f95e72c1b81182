// BACKENDS_FILE parsing: ids are unique and never the one name the lease keys reserve.
import { describe, expect, it } from "vitest";
import { parseBackendsFile } from "../../src/config/backends.js";
import { createKeys } from "../../src/queues/keys.js";

function file(...ids: string[]): string {
  return JSON.stringify({
    backends: ids.map((id) => ({
      id,
      url: "http://127.0.0.1:9",
      engine: "nunchaku",
      capacity: 1,
      models: ["*"],
    })),
  });
}

describe("parseBackendsFile", () => {
  it("reads ids, defaults and YAML", () => {
    const [b] = parseBackendsFile(file("gpu-a.1"), "x.json");
    expect(b).toMatchObject({ id: "gpu-a.1", protocol: "kserve-v2", timeout_ms: 120_000, streaming: false });
    const yaml =
      "backends:\n  - id: b1\n    url: http://127.0.0.1:9\n    engine: nunchaku\n    capacity: 2\n    models: ['*']\n";
    expect(parseBackendsFile(yaml, "x.yaml")[0]!.capacity).toBe(2);
  });

  it("refuses duplicate ids, naming the path", () => {
    expect(() => parseBackendsFile(file("b1", "b1"), "x.json")).toThrow(/backends\.1\.id: duplicate id b1/);
  });

  it('refuses the id "backends": its lease set would be the set of lease sets', () => {
    const keys = createKeys("rg");
    expect(keys.lease("backends")).toBe(keys.leaseBackends);
    expect(() => parseBackendsFile(file("b1", "backends"), "x.json")).toThrow(
      /backends\.1\.id: "backends" is reserved/,
    );
  });
});
