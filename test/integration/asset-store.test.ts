// The asset records of uploads in Redis: one PUT's claim at a time, a lapsed claim taken over (and
// its old holder refused), a failed PUT giving the asset back, and the done step granting the
// uploader the object, pinning it for the CAS collector and keeping the asset for the retention.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAssetStore, type AssetStore } from "../../src/queues/asset-store.js";
import { createCasRefs } from "../../src/queues/cas-refs.js";
import { createKeys } from "../../src/queues/keys.js";
import { createObjectGrants } from "../../src/queues/object-grants.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

const ID = "a_ABCDEFGHIJKLMNOPQRSTUV";
const DIGEST = `sha256-${"d".repeat(64)}`;
const NOW = 1_700_000_000_000;

let r: TestRedis;
let assets: AssetStore;

beforeEach(async () => {
  r = testRedis();
  assets = createAssetStore(r.client, r.prefix);
  await assets.create(
    { id: ID, customerId: "alice", contentType: "image/png", bytes: 123, expUnixS: NOW / 1000 + 60 },
    120_000,
  );
});
afterEach(async () => {
  await r.cleanup();
});

describe("asset records", () => {
  it("are pending after create, with what the PUT needs, and expire with the URL", async () => {
    expect(await assets.read(ID)).toEqual({
      id: ID,
      customerId: "alice",
      contentType: "image/png",
      bytes: 123,
      expUnixS: NOW / 1000 + 60,
      state: "pending",
    });
    const ttl = await r.client.pttl(createKeys(r.prefix).asset(ID));
    expect(ttl).toBeGreaterThan(100_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
    expect(await assets.read("a_NOSUCHASSET0000000000")).toBeUndefined();
    expect(await assets.claim("a_NOSUCHASSET0000000000", "t", NOW, 1000)).toBe("missing");
  });

  it("let one PUT claim an asset; another is busy until the claim lapses, then takes it over", async () => {
    expect(await assets.claim(ID, "first", NOW, 1_000)).toBe("claimed");
    expect((await assets.read(ID))?.state).toBe("uploading");
    expect(await assets.claim(ID, "second", NOW + 999, 1_000)).toBe("busy");
    expect(await assets.claim(ID, "second", NOW + 1_000, 1_000)).toBe("claimed");
    // the first PUT's late end changes nothing
    expect(await assets.complete(ID, "first", DIGEST, 3600, NOW + 3_600_000)).toBe(false);
    expect(await assets.release(ID, "first")).toBe(false);
    expect((await assets.read(ID))?.state).toBe("uploading");
  });

  it("are pending again after a failed PUT gives its claim back", async () => {
    expect(await assets.claim(ID, "t1", NOW, 60_000)).toBe("claimed");
    expect(await assets.release(ID, "t1")).toBe(true);
    expect((await assets.read(ID))?.state).toBe("pending");
    expect(await assets.claim(ID, "t2", NOW + 1, 60_000)).toBe("claimed");
  });

  it("once done, name the digest, grant and pin the object, last the retention, and refuse more PUTs", async () => {
    expect(await assets.claim(ID, "t", NOW, 60_000)).toBe("claimed");
    const pinUntil = NOW + 7_200_000;
    expect(await assets.complete(ID, "t", DIGEST, 7200, pinUntil)).toBe(true);
    expect(await assets.read(ID)).toMatchObject({ state: "done", digest: DIGEST });
    const keys = createKeys(r.prefix);
    const ttl = await r.client.ttl(keys.asset(ID));
    expect(ttl).toBeGreaterThan(7100);
    expect(ttl).toBeLessThanOrEqual(7200);
    expect(Object.keys(await r.client.hgetall(keys.asset(ID))).sort()).toEqual(
      ["bytes", "cust", "digest", "exp", "state", "type"].sort(),
    );
    const grants = createObjectGrants(r.client, r.prefix, 7200);
    expect(await grants.isOwner(DIGEST, "alice")).toBe(true);
    expect(await grants.isOwner(DIGEST, "bob")).toBe(false);
    const refs = createCasRefs(r.client, r.prefix);
    expect(await refs.referenced([DIGEST], pinUntil)).toEqual([true]);
    expect(await refs.referenced([DIGEST], pinUntil + 1)).toEqual([false]);
    expect(await assets.claim(ID, "again", NOW + 1, 60_000)).toBe("done");
  });
});
