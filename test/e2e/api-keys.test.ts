// API keys end to end (API.md §1, §5): `keys create|list|revoke` against the Redis two API processes
// share; a key works on both, and once revoked both refuse it within 1 s — through the revocation
// message, and also when the message is lost with a cut subscriber connection (the cache is read again
// when the channel comes back, and after API_KEY_RECHECK_MS while it is down). No process logs a key.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKeyStore, type ApiKeyStore } from "../../src/queues/api-key-store.js";
import { E2eHarness, call, until, type Gateway } from "../helpers/processes.js";

const PEPPER = "e2e-api-key-pepper-0123456789-abcdefghij";
const RECHECK_MS = 1_000;
/** What the re-check may take beyond API_KEY_RECHECK_MS: the read itself and the poll's own round trip. */
const RECHECK_MARGIN_MS = 500;
const ENV = { API_KEY_PEPPER: PEPPER, API_KEY_RECHECK_MS: String(RECHECK_MS), LOG_LEVEL: "debug" };
const KEY_LINE = /^rk_[a-z0-9]{12}_[A-Za-z0-9]{43}\n$/;

let h: E2eHarness;
let apis: Gateway[];
let store: ApiKeyStore;
const keysSeen: string[] = [];

beforeAll(async () => {
  h = new E2eHarness();
  apis = [];
  for (const name of ["api 1", "api 2"]) {
    apis.push(await h.start("api", { name, dataDir: h.tempDir(), env: ENV }));
  }
  store = createApiKeyStore({
    redis: h.redis(),
    prefix: h.prefix,
    clock: () => Date.now(),
    tiers: ["free", "pro", "enterprise", "unlimited"],
    pepper: new TextEncoder().encode(PEPPER),
  });
}, 120_000);

afterAll(async () => {
  // No API process wrote a key anywhere in its output, at debug level.
  const logs = apis?.map((a) => a.proc.stdout + a.proc.stderr).join("\n") ?? "";
  await h?.cleanup();
  for (const key of keysSeen) {
    expect(logs).not.toContain(key);
    expect(logs).not.toContain(key.slice(16));
  }
});

/** GET /queue status on each API. */
async function statuses(key: string): Promise<number[]> {
  return Promise.all(apis.map(async (a) => (await call(a.url, "/queue", { token: key })).status));
}

/** Polls both APIs until both refuse `key`; the ms from `t0` to the poll that saw it. */
async function refusedOnBoth(key: string, t0: number, timeoutMs = 5_000): Promise<number> {
  return until(
    "both APIs refuse the key",
    async () => {
      const s = await statuses(key);
      for (const code of s) expect([200, 401]).toContain(code);
      return s.every((c) => c === 401) ? Date.now() - t0 : undefined;
    },
    timeoutMs,
    10,
  );
}

async function createKey(customer: string): Promise<{ key: string; prefix: string }> {
  const { key, info } = await store.create({ customerId: customer, tier: "enterprise" });
  keysSeen.push(key);
  return { key, prefix: info.prefix };
}

describe("render-gateway keys", () => {
  it("create prints only the key, list never shows it, revoke of an unknown prefix fails", async () => {
    const r = await h.run(
      ["keys", "create", "--customer", "cli-1", "--tier", "pro", "--name", "ci bot", "--expires", "90d"],
      {
        env: ENV,
      },
    );
    expect(r.code, r.proc.describe()).toBe(0);
    expect(r.stdout).toMatch(KEY_LINE);
    const key = r.stdout.trim();
    keysSeen.push(key);
    const prefix = key.slice(3, 15);
    expect(r.stderr).toContain(prefix);
    expect(r.stderr).not.toContain(key.slice(16));
    expect(await statuses(key)).toEqual([200, 200]);

    const admin = await h.run(["keys", "create", "--customer", "cli-ops", "--admin"], { env: ENV });
    expect(admin.code, admin.proc.describe()).toBe(0);
    keysSeen.push(admin.stdout.trim());

    const table = await h.run(["keys", "list"], { env: ENV });
    expect(table.code, table.proc.describe()).toBe(0);
    expect(table.stdout).toMatch(
      /^PREFIX +CUSTOMER +NAME +TIER +ADMIN +CREATED +LAST USED +EXPIRES +STATUS\n/,
    );
    expect(table.stdout).toMatch(new RegExp(`${prefix} +cli-1 +ci bot +pro +no +\\S+ +\\S+ +\\S+ +active`));
    for (const k of keysSeen) expect(table.stdout + table.stderr).not.toContain(k.slice(16));

    const json = await h.run(["keys", "list", "--customer", "cli-1", "--json"], { env: ENV });
    const listed = JSON.parse(json.stdout) as Record<string, unknown>[];
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      prefix,
      customer_id: "cli-1",
      name: "ci bot",
      tier: "pro",
      admin: false,
      status: "active",
    });
    expect(Date.parse(String(listed[0]!.expires_at)) - Date.parse(String(listed[0]!.created_at))).toBe(
      90 * 86_400_000,
    );
    expect(json.stdout).not.toContain(key.slice(16));

    const unknown = await h.run(["keys", "revoke", "zzzzzzzzzzzz"], { env: ENV });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no API key with prefix/);

    const revoked = await h.run(["keys", "revoke", prefix], { env: ENV });
    expect(revoked.code, revoked.proc.describe()).toBe(0);
    await refusedOnBoth(key, Date.now());
    const after = JSON.parse(
      (await h.run(["keys", "list", "--customer", "cli-1", "--json"], { env: ENV })).stdout,
    ) as {
      status: string;
    }[];
    expect(after[0]!.status).toBe("revoked");
  });

  it("fails clearly with no Redis to reach, and refuses to create keys with JWT_SECRET but no pepper", async () => {
    const lonely = await h.run(["keys", "list"], {
      env: { ...ENV, REDIS_URL: undefined },
      dataDir: h.tempDir(),
    });
    expect(lonely.code).not.toBe(0);
    expect(lonely.stderr).toMatch(/no Redis to use: REDIS_URL is not set/);
    const noPepper = await h.run(["keys", "create", "--customer", "x"], {
      env: { ...ENV, API_KEY_PEPPER: undefined },
    });
    expect(noPepper.code).not.toBe(0);
    expect(noPepper.stderr).toMatch(/API_KEY_PEPPER/);
    expect(noPepper.stdout).toBe("");
  });
});

describe("revocation across two API processes", () => {
  it("a revoked key is refused by both within 1 s of the revoke", async () => {
    const { key, prefix } = await createKey("two-1");
    expect(await statuses(key)).toEqual([200, 200]);
    const t0 = Date.now();
    expect(await store.revoke(prefix)).toBe("revoked");
    const elapsed = await refusedOnBoth(key, t0);
    expect(elapsed).toBeLessThan(1_000);
  });

  it("with the revocation message lost to a cut subscriber, both still refuse it within API_KEY_RECHECK_MS", async () => {
    const { key, prefix } = await createKey("two-2");
    expect(await statuses(key)).toEqual([200, 200]);
    // Every subscriber connection is cut: the message of the revocation reaches no API process.
    await h.redis().call("CLIENT", "KILL", "TYPE", "pubsub");
    const t0 = Date.now();
    expect(await store.revoke(prefix)).toBe("revoked");
    const elapsed = await refusedOnBoth(key, t0);
    expect(elapsed).toBeLessThan(RECHECK_MS + RECHECK_MARGIN_MS);
  });
});
