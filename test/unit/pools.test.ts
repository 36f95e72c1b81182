// POOLS_FILE parsing and the pool router (core/pools.ts, config/pools.ts): names, one pool per model
// and backend, bounds, ids that name their pool, the pools' key prefixes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSettings } from "../../src/main/settings.js";
import { parsePoolsFile, poolProblems, MAX_POOLS_FILE_BYTES } from "../../src/config/pools.js";
import { createPoolRouter, DEFAULT_POOL, poolPrefix, SINGLE_POOL } from "../../src/core/pools.js";
import { isJobId, randomIds } from "../../src/core/ids.js";

const doc = (pools: unknown) => JSON.stringify({ pools });
const pool = (name: string, models = ["flux/dev"], backends = ["b1"]) => ({ name, models, backends });

describe("POOLS_FILE", () => {
  it("reads JSON and YAML alike", () => {
    const json = parsePoolsFile(doc([pool("eu"), pool("us", ["flux/schnell"], ["b2"])]), "f");
    const yaml = parsePoolsFile(
      "pools:\n  - name: eu\n    models: [flux/dev]\n    backends: [b1]\n  - name: us\n    models: [flux/schnell]\n    backends: [b2]\n",
      "f",
    );
    expect(yaml).toEqual(json);
    expect(json.map((p) => p.name)).toEqual(["eu", "us"]);
  });

  it.each([
    ["a bad name", [pool("EU")], "names are 1-16 chars"],
    ["a long name", [pool("a".repeat(17))], "names are 1-16 chars"],
    ["the default's name", [pool("default")], '"default" is the unnamed pool'],
    ["a duplicate name", [pool("eu"), pool("eu", ["flux/schnell"], ["b2"])], "duplicate pool eu"],
    [
      "a model in two pools",
      [pool("eu"), pool("us", ["flux/dev"], ["b2"])],
      "flux/dev is already in pool eu",
    ],
    [
      "a backend in two pools",
      [pool("eu"), pool("us", ["flux/schnell"], ["b1"])],
      "b1 is already in pool eu",
    ],
    ["no models", [pool("eu", [])], "pools.0.models"],
    ["a wildcard model", [pool("eu", ["*"])], 'expected "family/model"'],
    ["an unknown member", [{ ...pool("eu"), region: "x" }], "pools.0"],
  ])("refuses %s, naming the file and the path", (_, pools, message) => {
    expect(() => parsePoolsFile(doc(pools), "POOLS_FILE /x")).toThrow(message);
    expect(() => parsePoolsFile(doc(pools), "POOLS_FILE /x")).toThrow("POOLS_FILE /x: invalid pools file");
  });

  it("refuses more than 32 pools, an oversized file and text that is neither JSON nor YAML", () => {
    const many = Array.from({ length: 33 }, (_, i) => pool(`p${i}`, [`f/m${i}`], [`b${i}`]));
    expect(() => parsePoolsFile(doc(many), "f")).toThrow("pools");
    expect(() => parsePoolsFile(" ".repeat(MAX_POOLS_FILE_BYTES + 1), "f")).toThrow("larger than");
    expect(() => parsePoolsFile("pools: [", "f")).toThrow("not valid JSON/YAML");
  });

  it("checks pools against the backends and the catalogue", () => {
    const backends = [
      { id: "b1", models: ["flux/dev"] },
      { id: "b2", models: ["*"] },
    ];
    const inCatalog = (m: string) => m !== "flux/nope";
    expect(poolProblems([pool("eu", ["flux/dev"], ["b1"])], backends, inCatalog)).toEqual([]);
    expect(poolProblems([pool("eu", ["flux/schnell"], ["b2"])], backends, inCatalog)).toEqual([]);
    expect(poolProblems([pool("eu", ["flux/dev"], ["b9"])], backends, inCatalog)).toEqual([
      "pool eu: backend b9 is not in the backends",
      "pool eu: no backend of the pool serves flux/dev",
    ]);
    expect(poolProblems([pool("eu", ["flux/schnell"], ["b1"])], backends, inCatalog)).toEqual([
      "pool eu: no backend of the pool serves flux/schnell",
    ]);
    expect(poolProblems([pool("eu", ["flux/nope"], ["b2"])], backends, inCatalog)).toEqual([
      "pool eu: model flux/nope is not in the catalogue",
    ]);
  });
});

describe("the pool router", () => {
  const router = createPoolRouter([pool("eu", ["flux/dev"], ["b1"]), pool("gpu2", ["flux/schnell"], ["b2"])]);

  it("routes a model to the pool naming it, any other to the default pool", () => {
    expect(router.ofModel("flux/dev")).toBe("eu");
    expect(router.ofModel("flux/schnell")).toBe("gpu2");
    expect(router.ofModel("wan/video")).toBe(DEFAULT_POOL);
    expect(router.names).toEqual([DEFAULT_POOL, "eu", "gpu2"]);
  });

  it("makes ids that name their pool and stay API.md job ids; the default pool's are unchanged", () => {
    for (let i = 0; i < 100; i++) {
      const base = randomIds("job");
      for (const p of router.names) {
        const id = router.jobId(base, p);
        expect(isJobId(id)).toBe(true);
        expect(router.ofJob(id)).toBe(p);
      }
      expect(router.jobId(base, DEFAULT_POOL)).toBe(base);
    }
    // an id of another length, or naming no pool, is the default pool's
    expect(router.ofJob("j_" + "a".repeat(22) + "xyz")).toBe(DEFAULT_POOL);
    expect(router.ofJob("j_" + "a".repeat(20))).toBe(DEFAULT_POOL);
    expect(SINGLE_POOL.ofJob("j_" + "a".repeat(22) + "eu")).toBe(DEFAULT_POOL);
  });

  it("gives each pool its backends, the default pool those no pool lists", () => {
    expect(router.backendsOf("eu", ["b1", "b2", "b3"])).toEqual(["b1"]);
    expect(router.backendsOf(DEFAULT_POOL, ["b1", "b2", "b3"])).toEqual(["b3"]);
    expect(SINGLE_POOL.backendsOf(DEFAULT_POOL, ["b1", "b2"])).toEqual(["b1", "b2"]);
  });

  it("puts a pool's keys under a hash tag of its own; the default pool keeps REDIS_PREFIX", () => {
    expect(poolPrefix("{rg}", "eu")).toBe("{rg-eu}");
    expect(poolPrefix("{rg}", DEFAULT_POOL)).toBe("{rg}");
    expect(poolPrefix("{rg}", undefined)).toBe("{rg}");
    expect(poolPrefix("x{rg}y", "eu")).toBe("x{rg-eu}y");
    expect(poolPrefix("rg", "eu")).toBe("rg-eu");
  });
});

describe("pools in the settings", () => {
  const dir = mkdtempSync(join(tmpdir(), "rg-pools-settings-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const backends = file(
    "backends.json",
    JSON.stringify({
      backends: [
        { id: "b1", url: "http://127.0.0.1:1", engine: "nunchaku", capacity: 1, models: ["flux/dev"] },
      ],
    }),
  );

  it("stops at start on a pool whose backend is not in BACKENDS_FILE, or a WORKER_POOL no file names", () => {
    const bad = file("bad.json", doc([pool("eu", ["flux/dev"], ["b9"])]));
    expect(() => loadSettings({ POOLS_FILE: bad, BACKENDS_FILE: backends })).toThrow(
      /POOLS_FILE .*bad\.json: pool eu: backend b9 is not in the backends/,
    );
    const good = file("good.json", doc([pool("eu", ["flux/dev"], ["b1"])]));
    expect(loadSettings({ POOLS_FILE: good, BACKENDS_FILE: backends }).pools.names).toEqual([
      DEFAULT_POOL,
      "eu",
    ]);
    expect(() => loadSettings({ POOLS_FILE: good, WORKER_POOL: "us" })).toThrow(
      "WORKER_POOL us: no such pool in POOLS_FILE",
    );
    expect(() => loadSettings({ WORKER_POOL: "Bad!" })).toThrow("WORKER_POOL");
    expect(() => loadSettings({ POOLS_FILE: join(dir, "missing.json") })).toThrow("does not exist");
  });

  it("stops at start when REDIS_PREFIX's braces would leave every pool in the default pool's hash slot", () => {
    const good = file("good-prefix.json", doc([pool("eu", ["flux/dev"], ["b1"])]));
    // Redis hashes the first {…}: `x}{rg}-eu` and `{a{b}-eu` hash as the default pool's keys do
    for (const prefix of ["x}{rg}", "{a{b}"]) {
      expect(
        () => loadSettings({ POOLS_FILE: good, BACKENDS_FILE: backends, REDIS_PREFIX: prefix }),
        prefix,
      ).toThrow(/REDIS_PREFIX .* must hold no brace, or a hash tag/);
    }
    for (const prefix of ["{rg}", "x{rg}y", "rg"]) {
      expect(
        loadSettings({ POOLS_FILE: good, BACKENDS_FILE: backends, REDIS_PREFIX: prefix }).pools.names,
      ).toContain("eu");
    }
    // without named pools any prefix the Redis target accepts still goes
    expect(loadSettings({ REDIS_PREFIX: "x}{rg}" }).pools.names).toEqual([DEFAULT_POOL]);
  });
});
