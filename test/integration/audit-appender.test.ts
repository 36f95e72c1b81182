// The audit appender on a real redis-server, a real CAS and real DATA_DIR/audit files (no API, no
// queue): it appends staged records segment by segment and signs checkpoints of the tree; a new
// holder first brings index.jsonl up to Redis's state; files that say more than Redis stop it; and a
// holder whose lock was taken stops appending while the new one goes on.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/core/canonical-json.js";
import { fromBase64Url, verifyCheckpoint } from "../../src/core/checkpoint.js";
import { TreeBuilder, leafHash, toHex } from "../../src/core/merkle.js";
import { systemClock } from "../../src/core/time.js";
import { openAuditFiles, type AuditFiles } from "../../src/infra/audit-files.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { verifyAuditLog } from "../../src/infra/audit-log-reader.js";
import { createAuditAppender, type AuditAppender } from "../../src/pipeline/audit-appender.js";
import { createAuditStore, type AuditStore } from "../../src/queues/audit-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { until } from "../helpers/processes.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

const S = 4;
let r: TestRedis;
let store: AuditStore;
let dir: string;
let files: AuditFiles;
let lines: string[];
const running: AuditAppender[] = [];

beforeEach(() => {
  r = testRedis();
  store = createAuditStore(r.client, r.prefix);
  dir = mkdtempSync(join(tmpdir(), "rg-audit-"));
  files = openAuditFiles(dir);
  lines = [];
});
afterEach(async () => {
  for (const a of running.splice(0)) await a.stop();
  await r.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function appender(owner: string, lockMs = 5_000): AuditAppender {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(`${owner} ${chunk.toString()}`);
      done();
    },
  });
  const a = createAuditAppender({
    store,
    blobs: createFsBlobStore({ root: join(dir, "cas") }),
    files,
    owner,
    segmentSize: S,
    checkpointMs: 20,
    lockMs,
    clock: systemClock,
    logger: pino({ level: "info" }, sink),
    idleMs: 10,
  });
  running.push(a);
  void a.run();
  return a;
}

const record = (i: number) => canonicalJson({ job_id: `j${String(i).padStart(4, "0")}`, n: i });
async function stage(from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await store.stage(`j${String(i).padStart(4, "0")}`, record(i));
}
const size = async () => (await store.head()).size;
const appended = (n: number) => until(`${n} leaves appended`, async () => (await size()) >= n, 15_000, 10);
/** Waits for a log line of `owner`'s appender that contains `text`. */
const logged = (owner: string, text: string) =>
  until(
    `${owner} logged "${text}"`,
    async () => lines.find((l) => l.startsWith(`${owner} `) && l.includes(text)),
    15_000,
    10,
  );

describe("the appender", () => {
  it("appends staged records segment by segment, writes the index and signs checkpoints of the tree", async () => {
    appender("a");
    await stage(0, 10);
    await appended(10);
    await until("a checkpoint of 10 leaves", async () => {
      const cp = (await store.head()).checkpoint;
      return cp !== undefined && (JSON.parse(cp) as { tree_size: number }).tree_size === 10;
    });
    const keys = createKeys(r.prefix);
    expect(await r.client.lrange(keys.auditRoots, 0, -1)).toHaveLength(2);
    expect(await r.client.lrange(keys.auditTail, 0, -1)).toEqual([record(8), record(9)]);
    // index.jsonl names the segments Redis names, with their counts
    const index = await files.readIndex();
    const segs = await store.segments(0, 10);
    expect([...index.entries()]).toEqual(segs.map((digest, k) => [k, { digest, count: k < 2 ? S : 2 }]));
    // the blobs hold the leaves in order; the checkpoints sign the tree they make
    const blobs = createFsBlobStore({ root: join(dir, "cas") });
    const tree = new TreeBuilder();
    const roots = new Map<number, string>();
    for (const digest of segs) {
      const text = new TextDecoder().decode(await blobs.get(digest));
      for (const leaf of text.split("\n").slice(0, -1)) {
        tree.append(leafHash(new TextEncoder().encode(leaf)));
        roots.set(tree.size, toHex(tree.root()));
      }
    }
    expect(tree.size).toBe(10);
    const jwks = await files.jwks();
    const checkpoints = await files.readCheckpoints();
    expect(checkpoints.length).toBeGreaterThan(0);
    for (const cp of checkpoints) {
      expect(cp.root_hash).toBe(roots.get(cp.tree_size));
      const jwk = jwks.keys.find((k) => k.kid === cp.key_id)!;
      expect(await verifyCheckpoint(cp, fromBase64Url(jwk.x, 32)!)).toBe(true);
    }
    // the JWKS route's source holds the key
    expect((await store.keys()).map((k) => (JSON.parse(k) as { kid: string }).kid)).toContain(
      jwks.keys[0]!.kid,
    );
  });

  it("a new holder first brings index.jsonl up to Redis's state (a crash after a commit)", async () => {
    const first = appender("a");
    await stage(0, 6);
    await appended(6);
    await first.stop();
    // the last index line lost, as when its writer died after the commit
    const path = join(dir, "audit", "index.jsonl");
    const text = readFileSync(path, "utf8").split("\n").filter(Boolean);
    writeFileSync(path, `${text.slice(0, -1).join("\n")}\n`);
    expect((await files.readIndex()).get(1)).toBeUndefined();
    appender("b");
    await logged("b", '"indexLines":1');
    await stage(6, 7);
    await appended(7);
    await until(
      "the index names 3 leaves of segment 1",
      async () => (await files.readIndex()).get(1)?.count === 3,
    );
  });

  it("puts back leaves Redis lost (restarted short of its last writes) from the files, once each", async () => {
    const id = (i: number) => `j_restore${String(i).padStart(13, "0")}`;
    const audited = (i: number) =>
      canonicalJson({
        job_id: id(i),
        customer_id: "c",
        modality: "image",
        family: "flux",
        model: "schnell",
        task: "t2i",
        backend: null,
        status: "complete",
        attempts: 1,
        created_at: "2026-12-07T10:00:00.000Z",
        started_at: null,
        completed_at: "2026-12-07T10:00:01.000Z",
        gpu_ms: i,
        price_micro_usd: 0,
        input_digest: `sha256-${"0".repeat(64)}`,
        output_digests: [],
      });
    const stageAudited = async (from: number, to: number) => {
      for (let i = from; i < to; i++) await store.stage(id(i), audited(i));
    };
    const keys = createKeys(r.prefix);
    const state = [
      keys.auditSize,
      keys.auditSegments,
      keys.auditRoots,
      keys.auditLeaf,
      keys.auditTail,
      keys.auditStaged,
      keys.auditStagedOrder,
      keys.auditCheckpoint,
      keys.auditCheckpoints,
      keys.auditBlobs,
    ];
    const a = appender("a");
    await stageAudited(0, 5);
    await appended(5);
    const snapshot = await Promise.all(state.map((k) => r.client.dumpBuffer(k)));
    await stageAudited(5, 10);
    await appended(10);
    await until("the index names 10 leaves", async () => (await files.readIndex()).get(2)?.count === 2);
    await a.stop();
    // Redis as its AOF left it a few commits back; one lost record staged again by a rerun
    await r.client.del(...state);
    await Promise.all(
      state.map((k, i) => (snapshot[i] ? r.client.restore(k, 0, snapshot[i]) : Promise.resolve(null))),
    );
    expect(await size()).toBe(5);
    await stageAudited(7, 8);
    appender("b");
    await logged("b", '"restored":5');
    expect(await size()).toBe(10);
    expect(await store.stagedCount()).toBe(0);
    const leaves = await r.client.hgetall(keys.auditLeaf);
    expect(Object.entries(leaves).sort(([, x], [, y]) => Number(x) - Number(y))).toEqual(
      Array.from({ length: 10 }, (_, i) => [id(i), String(i)]),
    );
    await stageAudited(10, 11);
    await appended(11);
    await until("a checkpoint of 11 leaves", async () => {
      const cp = (await store.head()).checkpoint;
      return cp !== undefined && (JSON.parse(cp) as { tree_size: number }).tree_size === 11;
    });
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, verified: 11 });
  });

  it("refuses to append when DATA_DIR/audit says more than Redis", async () => {
    await files.appendIndex([{ segment: 0, digest: `sha256-${"a".repeat(64)}`, count: 3 }]);
    const a = appender("a");
    await stage(0, 3);
    await logged("a", "refuses to append");
    expect(a.appended()).toBe(0);
    expect(await size()).toBe(0);
  });

  it("a holder whose lock was taken stops appending; the new holder goes on", async () => {
    const a = appender("a", 600);
    await stage(0, 3);
    await appended(3);
    // the lock passes to b (as when a froze past it): b's token is the newer
    await r.client.del(createKeys(r.prefix).auditLock);
    const b = appender("b", 600);
    await until("b holds the log", async () => b.holding() || undefined, 15_000, 10);
    await stage(3, 9);
    await appended(9);
    await logged("a", "no longer holds the log");
    expect(a.holding()).toBe(false);
    const leaves = await r.client.hgetall(createKeys(r.prefix).auditLeaf);
    expect(
      Object.values(leaves)
        .map(Number)
        .sort((x, y) => x - y),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
