// The audit log's Redis state through its scripts (audit_*.lua) on a real redis-server: a record is
// staged once per job whatever runs it again, one holder at a time commits with its fencing token
// (a stale holder changes nothing), a commit is all or nothing, a segment is sealed at S leaves, the
// CAS collector keeps the log's blobs, and checkpoints only move forward.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAuditStore, type AuditStore } from "../../src/queues/audit-store.js";
import { createCasRefs } from "../../src/queues/cas-refs.js";
import { createKeys } from "../../src/queues/keys.js";
import { until } from "../helpers/processes.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

const S = 4;
const digest = (c: string) => `sha256-${c.repeat(64)}`;
const rec = (id: string) => JSON.stringify({ job_id: id });

let r: TestRedis;
let store: AuditStore;

beforeEach(() => {
  r = testRedis();
  store = createAuditStore(r.client, r.prefix);
});
afterEach(async () => {
  await r.cleanup();
});

/** Everything the log keeps in Redis, to compare before and after a refused call. */
async function snapshot() {
  const k = createKeys(r.prefix);
  return {
    size: await r.client.get(k.auditSize),
    segs: await r.client.lrange(k.auditSegments, 0, -1),
    roots: await r.client.lrange(k.auditRoots, 0, -1),
    tail: await r.client.lrange(k.auditTail, 0, -1),
    leaf: await r.client.hgetall(k.auditLeaf),
    staged: await r.client.hgetall(k.auditStaged),
    order: await r.client.lrange(k.auditStagedOrder, 0, -1),
    blobs: (await r.client.smembers(k.auditBlobs)).sort(),
    cp: await r.client.get(k.auditCheckpoint),
  };
}

async function stageAll(ids: readonly string[]) {
  for (const id of ids) expect(await store.stage(id, rec(id))).toBe(true);
}

describe("staging", () => {
  it("stages a job once, whether it is still staged or appended already", async () => {
    expect(await store.stage("j1", rec("j1"))).toBe(true);
    expect(await store.stage("j1", rec("j1"))).toBe(false);
    expect(await store.stage("j1", "another body")).toBe(false);
    expect(await store.stagedCount()).toBe(1);
    const fence = await store.acquire("a", 10_000);
    expect(
      await store.commit({
        owner: "a",
        fence,
        expectedSize: 0,
        segmentSize: S,
        digest: digest("1"),
        jobIds: ["j1"],
      }),
    ).toBe(1);
    // appended: staging it again changes nothing
    expect(await store.stage("j1", rec("j1"))).toBe(false);
    expect(await store.stagedCount()).toBe(0);
    expect((await store.head("j1")).leaf).toBe(0);
  });

  it("tells the appender's backlog: how many are staged, and when the oldest job finished", async () => {
    expect(await store.backlog()).toEqual({ staged: 0, oldestAt: undefined });
    const done = (id: string, at: string) => JSON.stringify({ job_id: id, completed_at: at });
    await store.stage("j1", done("j1", "2026-12-07T10:00:00.000Z"));
    await store.stage("j2", done("j2", "2026-12-07T10:00:05.000Z"));
    expect(await store.backlog()).toEqual({ staged: 2, oldestAt: Date.UTC(2026, 11, 7, 10) });
  });

  it("hands out staged records in arrival order", async () => {
    await stageAll(["c", "a", "b"]);
    expect(await store.staged(2)).toEqual([
      { jobId: "c", record: rec("c") },
      { jobId: "a", record: rec("a") },
    ]);
  });
});

describe("the lock and its fencing token", () => {
  it("has one holder at a time; a holder whose lock expired can neither renew nor commit", async () => {
    const first = await store.acquire("a", 100);
    expect(first).toBeGreaterThan(0);
    expect(await store.acquire("b", 10_000)).toBe(0);
    expect(await store.renew("a", first, 100)).toBe(true);
    const second = await until("the lock expires and b takes it", async () => {
      const f = await store.acquire("b", 10_000);
      return f > 0 ? f : undefined;
    });
    expect(second).toBeGreaterThan(first);
    expect(await store.renew("a", first, 100)).toBe(false);

    await stageAll(["j1", "j2"]);
    const before = await snapshot();
    const stale = {
      owner: "a",
      fence: first,
      expectedSize: 0,
      segmentSize: S,
      digest: digest("1"),
      jobIds: ["j1"],
    };
    expect(await store.commit(stale)).toBe("fenced");
    // the same owner name with the new token is not enough either: the token names the holder
    expect(await store.commit({ ...stale, fence: second })).toBe("fenced");
    expect(await store.publishCheckpoint({ owner: "a", fence: first, treeSize: 0, json: "{}" }, 10)).toBe(
      "fenced",
    );
    expect(await snapshot()).toEqual(before);
    expect(await store.commit({ ...stale, owner: "b", fence: second })).toBe(1);
  });

  it("is released only by its holder", async () => {
    const fence = await store.acquire("a", 10_000);
    await store.release("b", fence);
    expect(await store.acquire("b", 10_000)).toBe(0);
    await store.release("a", fence);
    expect(await store.acquire("b", 10_000)).toBe(fence + 1);
  });
});

describe("a commit", () => {
  let fence: number;
  const commit = (expectedSize: number, jobIds: string[], d: string, root?: string) =>
    store.commit({
      owner: "a",
      fence,
      expectedSize,
      segmentSize: S,
      digest: d,
      jobIds,
      ...(root === undefined ? {} : { root }),
    });
  beforeEach(async () => {
    fence = await store.acquire("a", 60_000);
  });

  it("changes nothing when its records are not the next staged ones, or its size is stale", async () => {
    await stageAll(["j1", "j2", "j3"]);
    const before = await snapshot();
    expect(await commit(0, ["j2"], digest("1"))).toBe("unstaged");
    expect(await commit(0, ["j1", "j3"], digest("1"))).toBe("unstaged");
    expect(await commit(0, ["j1", "j2", "j3", "j4"], digest("1"), "ab".repeat(32))).toBe("unstaged");
    expect(await commit(1, ["j1"], digest("1"))).toBe("moved");
    expect(await snapshot()).toEqual(before);
    // a batch that crosses the segment's end, or a root where the segment is not full, is a bug
    await expect(commit(0, ["j1", "j2", "j3", "j4", "j5"], digest("1"))).rejects.toThrow(/bad batch/);
    await expect(commit(0, ["j1"], digest("1"), "ab")).rejects.toThrow(/bad batch/);
    expect(await snapshot()).toEqual(before);
  });

  it("assigns the next indexes and seals the segment at S leaves", async () => {
    await stageAll(["j1", "j2", "j3", "j4", "j5", "j6"]);
    expect(await commit(0, ["j1", "j2", "j3"], digest("1"))).toBe(3);
    let s = await snapshot();
    expect(s).toMatchObject({ size: "3", segs: [digest("1")], roots: [], blobs: [digest("1")] });
    expect(s.tail).toEqual(["j1", "j2", "j3"].map(rec));
    expect(s.leaf).toEqual({ j1: "0", j2: "1", j3: "2" });
    expect(s.order).toEqual(["j4", "j5", "j6"]);

    // the fourth leaf fills segment 0: sealed, its partial blob no longer kept
    expect(await commit(3, ["j4"], digest("2"), "ab".repeat(32))).toBe(4);
    s = await snapshot();
    expect(s).toMatchObject({ size: "4", segs: [digest("2")], roots: ["ab".repeat(32)], tail: [] });
    expect(s.blobs).toEqual([digest("2")]);

    expect(await commit(4, ["j5", "j6"], digest("3"))).toBe(6);
    s = await snapshot();
    expect(s.segs).toEqual([digest("2"), digest("3")]);
    expect(s.tail).toEqual(["j5", "j6"].map(rec));
    expect(s.leaf).toMatchObject({ j5: "4", j6: "5" });
    expect(s.blobs).toEqual([digest("2"), digest("3")].sort());
    expect(await store.head("j6")).toEqual({ size: 6, sealed: 1, checkpoint: undefined, leaf: 5 });
    expect(await store.segments(0, 10)).toEqual([digest("2"), digest("3")]);
    expect(await store.roots(0, 10)).toEqual(["ab".repeat(32)]);
    expect(await store.tail(1, 5)).toEqual([rec("j6")]);
  });

  it("restores records given (not staged), unstaging them, and refuses one in the log already", async () => {
    await stageAll(["j1", "j2"]);
    expect(await commit(0, ["j1"], digest("1"))).toBe(1);
    const restore = (ids: string[], expectedSize = 1) =>
      store.restore({
        owner: "a",
        fence,
        expectedSize,
        segmentSize: S,
        digest: digest("2"),
        jobIds: ids,
        records: ids.map(rec),
      });
    const before = await snapshot();
    expect(await restore(["j1"])).toBe("appended");
    expect(await restore(["j3", "j1"])).toBe("appended");
    expect(await restore(["j3"], 0)).toBe("moved");
    expect(await snapshot()).toEqual(before);
    expect(await restore(["j3", "j2"])).toBe(3);
    const s = await snapshot();
    expect(s.leaf).toEqual({ j1: "0", j3: "1", j2: "2" });
    expect(s).toMatchObject({
      staged: {},
      order: [],
      segs: [digest("2")],
      tail: ["j1", "j3", "j2"].map(rec),
    });
  });

  it("keeps the log's blobs from the CAS collector, and lets a replaced partial go", async () => {
    await stageAll(["j1", "j2"]);
    await commit(0, ["j1"], digest("1"));
    await commit(1, ["j2"], digest("2"));
    const refs = createCasRefs(r.client, r.prefix);
    expect(await refs.referenced([digest("1"), digest("2"), digest("3")], Date.now())).toEqual([
      false,
      true,
      false,
    ]);
  });
});

describe("checkpoints", () => {
  it("publishes only newer checkpoints of committed sizes, keeping a bounded list", async () => {
    const fence = await store.acquire("a", 60_000);
    await stageAll(["j1", "j2", "j3"]);
    await store.commit({
      owner: "a",
      fence,
      expectedSize: 0,
      segmentSize: S,
      digest: digest("1"),
      jobIds: ["j1", "j2", "j3"],
    });
    const cp = (n: number) => JSON.stringify({ tree_size: n, root_hash: `r${n}` });
    const publish = (n: number) =>
      store.publishCheckpoint({ owner: "a", fence, treeSize: n, json: cp(n) }, 2);
    expect(await publish(4)).toBe("moved");
    expect(await publish(1)).toBe(true);
    expect(await publish(1)).toBe(false);
    expect(await publish(3)).toBe(true);
    expect(await publish(2)).toBe(false);
    expect((await store.head()).checkpoint).toBe(cp(3));
    expect(await store.recentCheckpoints()).toEqual([cp(3), cp(1)]);
  });

  it("serves the public keys published", async () => {
    await store.publishKeys(new Map([["k1", '{"kid":"k1"}']]));
    await store.publishKeys(new Map([["k2", '{"kid":"k2"}']]));
    expect((await store.keys()).sort()).toEqual(['{"kid":"k1"}', '{"kid":"k2"}']);
  });
});
