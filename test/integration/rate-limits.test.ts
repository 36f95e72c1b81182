// Tier rate limits on a real Redis (API.md §1): submits per minute count new, valid submits only
// (never an idempotent replay), reads per second count authenticated reads, both answer 429
// `rate_limited` with Retry-After and the IETF RateLimit fields; a tier without the sync route gets
// 403 before anything is stored; and with Redis gone the limiter answers 503 at once.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { createKeys } from "../../src/queues/keys.js";
import { spawnRedis } from "../helpers/processes.js";
import { FLUX_SCHNELL_512, startSystem, type TestSystem } from "../helpers/system.js";

const dir = mkdtempSync(join(tmpdir(), "rg-limits-"));
const tiersFile = join(dir, "tiers.json");
const SUBMITS = 20;
const READS = 5;
writeFileSync(
  tiersFile,
  JSON.stringify({
    free: DEFAULT_TIERS.free,
    pro: { ...DEFAULT_TIERS.pro, submits_per_min: SUBMITS, reads_per_s: READS },
    batch: { ...DEFAULT_TIERS.pro, sync: false },
    unlimited: DEFAULT_TIERS.unlimited,
  }),
);

let sys: TestSystem;
beforeAll(async () => {
  sys = await startSystem({ worker: false, env: { TIERS_FILE: tiersFile } });
});
afterAll(async () => {
  await sys?.close();
  rmSync(dir, { recursive: true, force: true });
});

const keys = () => createKeys(sys.redis.prefix);
const submit = (token: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  sys.call("/queue", { method: "POST", token, headers, body: JSON.stringify(body) });
const job = (prompt: string) => ({ ...FLUX_SCHNELL_512, prompt });

describe("submits per minute", () => {
  it("100 concurrent identical idempotent submits make one job and take one unit", async () => {
    const t = await sys.token("idem-storm");
    const body = job("one of a hundred");
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => submit(t, body, { "idempotency-key": "storm-1" })),
    );
    const statuses = answers.map((r) => r.status);
    // The first admission 202; the others replay it (202) or find it still being admitted (409).
    expect(
      statuses.every((s) => s === 202 || s === 409),
      statuses.join(","),
    ).toBe(true);
    const accepted = answers.filter((r) => r.status === 202);
    const ids = new Set(
      await Promise.all(accepted.map(async (r) => ((await r.json()) as { id: string }).id)),
    );
    expect(ids.size).toBe(1);
    // Only the admission that took the key carries the quota; replays took none.
    const firsts = accepted.filter((r) => r.headers.get("idempotent-replayed") === null);
    expect(firsts).toHaveLength(1);
    expect(firsts[0]!.headers.get("ratelimit")).toMatch(new RegExp(`^"submits";r=${SUBMITS - 1};t=\\d+$`));
    for (const r of answers.filter((a) => a !== firsts[0])) expect(r.headers.get("ratelimit")).toBeNull();
    expect(await sys.redis.client.zcard(keys().queue)).toBe(1);
    expect(await sys.redis.client.get(keys().rateLimit("submits", "idem-storm"))).toBe("1");
    // A replay afterwards takes nothing either; the next new submit finds 18 left.
    const replay = await submit(t, body, { "idempotency-key": "storm-1" });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    const next = await submit(t, job("the next one"));
    expect(next.status).toBe(202);
    expect(next.headers.get("ratelimit")).toMatch(new RegExp(`^"submits";r=${SUBMITS - 2};t=\\d+$`));
    expect(next.headers.get("ratelimit-policy")).toBe(`"submits";q=${SUBMITS};w=60`);
  });

  it("counts valid submits only: a 400 takes nothing; past the limit, 429 with Retry-After", async () => {
    const t = await sys.token("eager");
    const invalid = await submit(t, { ...job("no"), steps: 0 });
    expect(invalid.status).toBe(400);
    expect(await sys.redis.client.get(keys().rateLimit("submits", "eager"))).toBeNull();
    for (let i = 0; i < SUBMITS; i++) expect((await submit(t, job(`fits ${i}`))).status).toBe(202);
    const refused = await submit(t, job("one too many"));
    expect(refused.status).toBe(429);
    const problem = (await refused.json()) as { error: string; details: Record<string, unknown> };
    expect(problem.error).toBe("rate_limited");
    expect(problem.details).toEqual({ policy: "submits", limit: SUBMITS, window_s: 60, tier: "pro" });
    const retry = Number(refused.headers.get("retry-after"));
    expect(Number.isInteger(retry) && retry >= 1 && retry <= 60).toBe(true);
    expect(refused.headers.get("ratelimit")).toBe(`"submits";r=0;t=${retry}`);
    expect(refused.headers.get("ratelimit-policy")).toBe(`"submits";q=${SUBMITS};w=60`);
    // A key reserved by a refused submit is released at once: the retry after Retry-After is new.
    const keyed = await submit(t, job("keyed, over"), { "idempotency-key": "late-1" });
    expect(keyed.status).toBe(429);
    const keyHash = createHash("sha256").update("late-1").digest("hex");
    expect(await sys.redis.client.exists(keys().idempotency("eager", keyHash))).toBe(0);
    // The sync route counts against the same quota.
    const sync = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: t,
      body: JSON.stringify({ prompt: "sync, also over" }),
    });
    expect(sync.status).toBe(429);
    // Another customer has a quota of their own.
    expect((await submit(await sys.token("patient"), job("mine"))).status).toBe(202);
  });

  it("lets admins and tiers without a limit through without counting", async () => {
    const admin = await sys.token("ops", { admin: true });
    const unlimited = await sys.token("big", { tier: "unlimited" });
    for (let i = 0; i < SUBMITS + 2; i++) {
      const a = await submit(admin, job(`admin ${i}`));
      expect(a.status).toBe(202);
      expect(a.headers.get("ratelimit")).toBeNull();
      expect((await submit(unlimited, job(`big ${i}`))).status).toBe(202);
    }
    expect(await sys.redis.client.get(keys().rateLimit("submits", "ops"))).toBeNull();
    expect(await sys.redis.client.get(keys().rateLimit("submits", "big"))).toBeNull();
  });
});

describe("reads per second", () => {
  it(`answers 429 to read ${READS + 1} of a window, with the fields on every read`, async () => {
    const t = await sys.token("reader");
    // The window is 1 s from the first read; opened here for a minute instead (the count is the
    // library's plain counter), so the test does not depend on how fast it runs.
    await sys.redis.client.set(keys().rateLimit("reads", "reader"), "0", "PX", 60_000);
    for (let i = 1; i <= READS; i++) {
      const res = await sys.call("/models", { token: t });
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-policy")).toBe(`"reads";q=${READS};w=1`);
      expect(res.headers.get("ratelimit")).toMatch(new RegExp(`^"reads";r=${READS - i};t=\\d+$`));
      await res.arrayBuffer();
    }
    const refused = await sys.call("/jobs/j_nosuchjob0000000000000", { token: t });
    expect(refused.status).toBe(429);
    const problem = (await refused.json()) as { error: string; details: Record<string, unknown> };
    expect(problem.error).toBe("rate_limited");
    expect(problem.details).toMatchObject({ policy: "reads", limit: READS, window_s: 1 });
    const retry = Number(refused.headers.get("retry-after"));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("ratelimit")).toBe(`"reads";r=0;t=${retry}`);
    // Submits are not reads: their own quota is untouched.
    expect((await submit(t, job("a submit while reads are spent"))).status).toBe(202);
  });

  it("counts a bearer read of an object, not the open routes", async () => {
    const t = await sys.token("object-reader");
    const res = await sys.call(`/objects/sha256-${"a".repeat(64)}`, { token: t });
    expect(res.status).toBe(404);
    expect(await sys.redis.client.get(keys().rateLimit("reads", "object-reader"))).toBe("1");
    expect((await sys.call("/health", { token: t })).status).toBe(200);
    expect((await sys.call("/ready", { token: t })).status).toBe(200);
    expect(await sys.redis.client.get(keys().rateLimit("reads", "object-reader"))).toBe("1");
  });
});

describe("the sync flag", () => {
  it("answers 403 on a tier without the sync route, before anything is stored or counted", async () => {
    const t = await sys.token("batch-customer", { tier: "batch" });
    const before = await sys.redis.client.zcard(keys().queue);
    const res = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: t,
      body: JSON.stringify({ prompt: "not for this tier" }),
    });
    expect(res.status).toBe(403);
    const problem = (await res.json()) as { error: string; details: Record<string, unknown> };
    expect(problem.error).toBe("forbidden");
    expect(problem.details).toEqual({ tier: "batch", sync: false });
    expect(res.headers.get("x-job-id")).toBeNull();
    expect(await sys.redis.client.zcard(keys().queue)).toBe(before);
    expect(await sys.redis.client.get(keys().rateLimit("submits", "batch-customer"))).toBeNull();
    // The async route stays open to it.
    expect((await submit(t, job("queued instead"))).status).toBe(202);
  });
});

describe("with Redis gone", () => {
  it("answers 503 unavailable at once; admins and unlimited tiers never ask it", async () => {
    const redisDir = mkdtempSync(join(tmpdir(), "rg-limits-redis-"));
    const server = await spawnRedis(redisDir);
    // A command timeout far beyond the test's: an answer at all means the limiter did not wait for it.
    const own = await startSystem({
      worker: false,
      env: { REDIS_URL: server.url, TIERS_FILE: tiersFile, REDIS_COMMAND_TIMEOUT_MS: "60000" },
    });
    try {
      const t = await own.token("outage");
      const admin = await own.token("ops", { admin: true });
      const unlimited = await own.token("big", { tier: "unlimited" });
      expect((await own.call("/models/aliases", { token: t })).status).toBe(200);
      await server.kill("SIGKILL");
      // GET /models/aliases reads the catalogue only: the limiter is its one Redis call.
      const read = await own.call("/models/aliases", { token: t });
      expect(read.status).toBe(503);
      expect(((await read.json()) as { error: string }).error).toBe("unavailable");
      expect(read.headers.get("retry-after")).toBe("1");
      const sent = await own.call("/queue", { method: "POST", token: t, body: JSON.stringify(job("down")) });
      expect(sent.status).toBe(503);
      expect(((await sent.json()) as { error: string }).error).toBe("unavailable");
      for (const who of [admin, unlimited]) {
        const res = await own.call("/models/aliases", { token: who });
        expect(res.status).toBe(200);
        expect(res.headers.get("ratelimit")).toBeNull();
        await res.arrayBuffer();
      }
    } finally {
      await server.restart();
      await own.close();
      await server.stop().catch(() => undefined);
      rmSync(redisDir, { recursive: true, force: true });
    }
  }, 20_000);
});
