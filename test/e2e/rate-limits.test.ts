// Submits per minute across API processes: two `start --roles api` processes sharing one Redis
// accept no more submits of one customer than the tier's limit in a window, however the requests are
// split between them (the count lives in Redis, taken atomically).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { createKeys } from "../../src/queues/keys.js";
import { E2eHarness, call, token, type Gateway } from "../helpers/processes.js";

const LIMIT = 20;
const SENT = 60;

let h: E2eHarness;
let apis: Gateway[];

beforeAll(async () => {
  h = new E2eHarness();
  const tiersFile = h.writeFile(
    "tiers.json",
    JSON.stringify({ free: DEFAULT_TIERS.free, pro: { ...DEFAULT_TIERS.pro, submits_per_min: LIMIT } }),
  );
  // No worker: jobs are admitted and wait (the queue is what is counted here).
  apis = await Promise.all(
    ["api-a", "api-b"].map((name) =>
      h.start("api", { name, dataDir: h.tempDir(), env: { TIERS_FILE: tiersFile } }),
    ),
  );
}, 120_000);
afterAll(async () => {
  await h?.cleanup();
});

describe("two API processes, one Redis", () => {
  it(`accept exactly ${LIMIT} of ${SENT} concurrent submits; the rest get 429 with Retry-After and the fields`, async () => {
    const bearer = await token("shared-customer");
    const answers = await Promise.all(
      Array.from({ length: SENT }, (_, i) =>
        call(apis[i % 2]!.url, "/queue", {
          method: "POST",
          token: bearer,
          body: { modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: `race ${i}` },
        }),
      ),
    );
    const accepted = answers.filter((r) => r.status === 202);
    const refused = answers.filter((r) => r.status === 429);
    expect(accepted).toHaveLength(LIMIT);
    // Each process got 30: counting on its own, either would have accepted 20 of them.
    expect(refused).toHaveLength(SENT - LIMIT);
    for (const r of accepted) {
      expect(r.headers.get("ratelimit-policy")).toBe(`"submits";q=${LIMIT};w=60`);
      expect(r.headers.get("ratelimit")).toMatch(/^"submits";r=\d+;t=\d+$/);
    }
    // Every unit left was handed out exactly once.
    const left = accepted.map((r) => Number(/;r=(\d+);/.exec(r.headers.get("ratelimit")!)![1]));
    expect(left.sort((a, b) => a - b)).toEqual(Array.from({ length: LIMIT }, (_, i) => i));
    for (const r of refused) {
      const retry = Number(r.headers.get("retry-after"));
      expect(Number.isInteger(retry) && retry >= 1 && retry <= 60, String(retry)).toBe(true);
      expect(r.headers.get("ratelimit")).toBe(`"submits";r=0;t=${retry}`);
      expect(r.headers.get("ratelimit-policy")).toBe(`"submits";q=${LIMIT};w=60`);
      const problem = (await r.json()) as { error: string; status: number };
      expect(problem).toMatchObject({ error: "rate_limited", status: 429 });
    }
    expect(await h.redis().zcard(createKeys(h.prefix).queue)).toBe(LIMIT);
  });
});
