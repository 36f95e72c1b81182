// `keys` on the quick-start setup: no REDIS_URL and no JWT_SECRET. The CLI finds the embedded Redis
// that `start` runs through DATA_DIR/run/redis.port, and derives the same pepper from the dev secret,
// so a key it makes works against the running API at once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eHarness, call, until, type Gateway } from "../helpers/processes.js";

const DEV = { JWT_SECRET: undefined, REDIS_PREFIX: undefined };

let h: E2eHarness;
let gw: Gateway;

beforeAll(async () => {
  h = new E2eHarness({ redis: "none" });
  gw = await h.start("api", { env: DEV });
}, 120_000);
afterAll(async () => {
  await h?.cleanup();
});

describe("keys against the embedded Redis", () => {
  it("creates a key the API accepts, lists it, and revokes it", async () => {
    const created = await h.run(["keys", "create", "--customer", "dev-key", "--admin"], { env: DEV });
    expect(created.code, created.proc.describe()).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^rk_[a-z0-9]{12}_[A-Za-z0-9]{43}$/);
    expect((await call(gw.url, "/queue", { token: key })).status).toBe(200);

    const listed = await h.run(["keys", "list", "--json"], { env: DEV });
    expect(listed.code, listed.proc.describe()).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({
        prefix: key.slice(3, 15),
        customer_id: "dev-key",
        admin: true,
        status: "active",
      }),
    ]);

    const revoked = await h.run(["keys", "revoke", key.slice(3, 15)], { env: DEV });
    expect(revoked.code, revoked.proc.describe()).toBe(0);
    // (The 1 s bound itself is asserted in api-keys.test.ts.)
    await until("the API refuses the revoked key", async () =>
      (await call(gw.url, "/queue", { token: key })).status === 401 ? true : undefined,
    );
  });
});
