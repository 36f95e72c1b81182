// Customer tiers: the table of API.md §1, the TIERS_FILE schema, priorities and prices.
import { describe, expect, it } from "vitest";
import {
  DEFAULT_TIER,
  DEFAULT_TIERS,
  isPriorityAllowed,
  parseTiers,
  pricePerGpuSecond,
  RATE_POLICIES,
  rateLimitOf,
  tierOf,
  tiersFileSchema,
} from "../../src/core/tiers.js";
import { PRIORITIES } from "../../src/core/job.js";

describe("default tiers", () => {
  it("match the table of API.md §1", () => {
    const row = (name: keyof typeof DEFAULT_TIERS) => {
      const t = DEFAULT_TIERS[name];
      return [t.submits_per_min, t.max_running, t.max_queued, t.priorities.join(","), t.weight, t.sync];
    };
    expect(row("free")).toEqual([300, 8, 200, "normal,low", 1, true]);
    expect(row("pro")).toEqual([1_200, 32, 2_000, "high,normal,low", 4, true]);
    expect(row("enterprise")).toEqual([12_000, 256, 100_000, "high,normal,low", 16, true]);
    expect(row("unlimited")).toEqual([null, null, 1_000_000, "high,normal,low", 1, true]);
    expect(DEFAULT_TIER).toBe("free");
  });

  it("give reads their own per-second limit", () => {
    expect(DEFAULT_TIERS.free.reads_per_s).toBe(20);
    expect(DEFAULT_TIERS.pro.reads_per_s).toBe(100);
    expect(DEFAULT_TIERS.enterprise.reads_per_s).toBe(1_000);
    expect(DEFAULT_TIERS.unlimited.reads_per_s).toBeNull();
  });

  it("are valid TIERS_FILE content themselves and frozen", () => {
    expect(parseTiers(DEFAULT_TIERS)).toEqual(DEFAULT_TIERS);
    expect(Object.isFrozen(DEFAULT_TIERS.free.priorities)).toBe(true);
  });
});

describe("isPriorityAllowed", () => {
  it("keeps high priority for paying tiers", () => {
    expect(isPriorityAllowed(DEFAULT_TIERS.free, "high")).toBe(false);
    expect(isPriorityAllowed(DEFAULT_TIERS.free, "normal")).toBe(true);
    expect(isPriorityAllowed(DEFAULT_TIERS.free, "low")).toBe(true);
    for (const name of ["pro", "enterprise", "unlimited"] as const) {
      for (const p of PRIORITIES)
        expect(isPriorityAllowed(DEFAULT_TIERS[name], p), `${name} ${p}`).toBe(true);
    }
    expect(isPriorityAllowed({ priorities: ["low"] }, "normal")).toBe(false);
  });
});

describe("TIERS_FILE", () => {
  const tier = {
    submits_per_min: 10,
    max_running: 1,
    max_queued: 5,
    priorities: ["low"],
    weight: 2,
    sync: false,
  };

  it("replaces the table, with optional prices per model", () => {
    const tiers = parseTiers({
      free: tier,
      gold: { ...tier, price_micro_usd_per_gpu_s: { default: 700, models: { "wan/default": 1_500 } } },
    });
    expect(Object.keys(tiers)).toEqual(["free", "gold"]);
    expect(tierOf(tiers, "gold")?.sync).toBe(false);
    expect(tierOf(tiers, "pro")).toBeUndefined();
    expect(tierOf(tiers, "toString")).toBeUndefined();
    expect(pricePerGpuSecond(tiers["gold"]!, "wan", "default")).toBe(1_500);
    expect(pricePerGpuSecond(tiers["gold"]!, "flux", "dev")).toBe(700);
    expect(pricePerGpuSecond(tiers["free"]!, "flux", "dev")).toBe(0);
    expect(pricePerGpuSecond(DEFAULT_TIERS.pro, "flux", "dev")).toBe(400);
  });

  it.each<[string, unknown, RegExp]>([
    ["a table without free", { pro: tier }, /"free" must be defined/],
    ["an unknown priority", { free: { ...tier, priorities: ["urgent"] } }, /free\.priorities\.0/],
    ["no priority at all", { free: { ...tier, priorities: [] } }, /free\.priorities/],
    [
      "a duplicate priority",
      { free: { ...tier, priorities: ["low", "low"] } },
      /free\.priorities: duplicate/,
    ],
    ["a zero limit", { free: { ...tier, max_running: 0 } }, /free\.max_running/],
    ["a fractional limit", { free: { ...tier, submits_per_min: 1.5 } }, /free\.submits_per_min/],
    ["a missing member", { free: { ...tier, sync: undefined } }, /free\.sync/],
    ["a typo", { free: { ...tier, wieght: 2 } }, /free: .*wieght/],
    ["a zero weight", { free: { ...tier, weight: 0 } }, /free\.weight/],
    [
      "a fractional weight (the scheduler sums weights as integers)",
      { free: { ...tier, weight: 0.5 } },
      /free\.weight/,
    ],
    [
      "a negative price",
      { free: { ...tier, price_micro_usd_per_gpu_s: { default: -1 } } },
      /price_micro_usd_per_gpu_s\.default/,
    ],
    [
      "a price for something that is not family/model",
      { free: { ...tier, price_micro_usd_per_gpu_s: { default: 1, models: { flux: 2 } } } },
      /price_micro_usd_per_gpu_s\.models/,
    ],
    ["a bad tier name", { free: tier, "Gold Tier": tier }, /Gold Tier|tier names/],
    ["not an object", [], /\(root\)/],
  ])("rejects %s, naming the path", (_name, doc, expected) => {
    expect(() => parseTiers(doc, "tiers.json")).toThrow(/^tiers\.json: invalid tiers file/);
    expect(() => parseTiers(doc, "tiers.json")).toThrow(expected);
  });

  it("keeps a file written before reads_per_s valid: built-in names get their default, others no limit", () => {
    const { reads_per_s: _, ...pro } = DEFAULT_TIERS.pro;
    const tiers = parseTiers({ free: tier, pro, gold: pro });
    expect(tiers["free"]?.reads_per_s).toBe(20);
    expect(tiers["pro"]?.reads_per_s).toBe(100);
    expect(tiers["gold"]?.reads_per_s).toBeNull();
    // Set in the file, it is the file's: a number, or null for no limit.
    const set = parseTiers({ free: { ...tier, reads_per_s: 7 }, pro: { ...pro, reads_per_s: null } });
    expect(set["free"]?.reads_per_s).toBe(7);
    expect(set["pro"]?.reads_per_s).toBeNull();
    expect(() => parseTiers({ free: { ...tier, reads_per_s: 0 } })).toThrow(/free\.reads_per_s/);
  });

  it("names each rate policy's quota and window", () => {
    expect(RATE_POLICIES).toEqual({ submits: { windowS: 60 }, reads: { windowS: 1 } });
    expect(rateLimitOf(DEFAULT_TIERS.pro, "submits")).toBe(1_200);
    expect(rateLimitOf(DEFAULT_TIERS.pro, "reads")).toBe(100);
    expect(rateLimitOf(DEFAULT_TIERS.unlimited, "submits")).toBeNull();
    expect(rateLimitOf(DEFAULT_TIERS.unlimited, "reads")).toBeNull();
  });

  it("exposes the zod schema", () => {
    expect(tiersFileSchema.safeParse({ free: tier }).success).toBe(true);
    expect(tiersFileSchema.safeParse({ free: { ...tier, sync: "yes" } }).success).toBe(false);
  });
});
