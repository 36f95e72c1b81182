// The audit log through a whole system with its pipeline (relay → `audit` queue → staging → the
// appender → checkpoints): every finished job gets a receipt that verifies — with the project's
// verifyReceipt and with an independent verifier — two checkpoints are consistent, the routes guard
// their inputs and their owners, a job of the queue run twice appends once, and the routes answer 503
// at once when Redis is away.
import { Queue } from "bullmq";
import { Hono } from "hono";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyReceipt } from "../../src/core/receipt.js";
import { fromHex, verifyConsistency } from "../../src/core/merkle.js";
import { createAuditReads } from "../../src/api/audit-reads.js";
import { createErrorHandler } from "../../src/api/problem.js";
import { auditRoutes } from "../../src/api/routes/audit.js";
import { createAuditStore } from "../../src/queues/audit-store.js";
import { AUDIT_QUEUE, createKeys } from "../../src/queues/keys.js";
import { createRedis, closeRedis } from "../../src/infra/redis.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { verifyAuditLog } from "../../src/infra/audit-log-reader.js";
import {
  checkpointSigned,
  independentlyVerified,
  until200,
  type CheckpointDoc,
  type JwksDoc,
  type ReceiptDoc,
} from "../helpers/receipts.js";
import { until } from "../helpers/processes.js";
import { FLUX_SCHNELL_512, queueJob, startSystem, type TestSystem } from "../helpers/system.js";

const S = 4;
let sys: TestSystem;
let alice: string;
let admin: string;

beforeAll(async () => {
  sys = await startSystem({
    pipeline: true,
    env: {
      AUDIT_SEGMENT_SIZE: String(S),
      AUDIT_CHECKPOINT_MS: "50",
      AUDIT_LOCK_MS: "2000",
      PIPELINE_CLAIM_MS: "500",
    },
  });
  alice = await sys.token("audit-alice");
  admin = await sys.token("audit-ops", { admin: true });
});
afterAll(async () => {
  await sys?.close();
});

const get = (path: string, token?: string) => sys.call(path, token === undefined ? {} : { token });
const json = async <T>(path: string, token?: string): Promise<T> => {
  const res = await get(path, token);
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
};
const problem = async (path: string, status: number, token?: string) => {
  const res = await get(path, token);
  const body = (await res.json()) as { error: string; details?: { field?: string } };
  expect(res.status, `${path}: ${JSON.stringify(body)}`).toBe(status);
  return body;
};

async function finishedJobs(n: number, customer: string, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push(await queueJob(sys, customer, { ...FLUX_SCHNELL_512, prompt: `${tag} ${i}` }));
  return ids;
}

const receiptOf = (id: string, token = alice) =>
  until200<ReceiptDoc>((p) => get(p, token), `/jobs/${id}/receipt`);

describe("receipts", () => {
  let ids: string[];
  let receipts: ReceiptDoc[];
  let jwks: JwksDoc;

  beforeAll(async () => {
    ids = await finishedJobs(11, alice, "receipt");
    receipts = await Promise.all(ids.map((id) => receiptOf(id)));
    jwks = await json<JwksDoc>("/.well-known/render-gateway/keys");
  });

  it("are served for every finished job, one leaf each, and verify two independent ways", async () => {
    const leaves = new Set(receipts.map((r) => r.leaf_index));
    expect(leaves.size).toBe(ids.length);
    for (const [i, r] of receipts.entries()) {
      expect(r.record).toMatchObject({ job_id: ids[i], customer_id: "audit-alice", status: "complete" });
      expect(r.record.output_digests).toHaveLength(1);
      expect(JSON.stringify(r)).not.toContain("receipt ");
      expect(await verifyReceipt(r, jwks)).toEqual({ ok: true });
      expect(independentlyVerified(r, jwks)).toBe(true);
    }
    // a receipt whose record was changed fails both
    const forged = structuredClone(receipts[0]!);
    forged.record.gpu_ms = Number(forged.record.gpu_ms) + 1;
    expect((await verifyReceipt(forged, jwks)).ok).toBe(false);
    expect(independentlyVerified(forged, jwks)).toBe(false);
  });

  it("are the owner's and admins' alone; anything else is a 404", async () => {
    const bob = await sys.token("audit-bob");
    await problem(`/jobs/${ids[0]}/receipt`, 404, bob);
    expect((await json<ReceiptDoc>(`/jobs/${ids[0]}/receipt`, admin)).record.job_id).toBe(ids[0]);
    await problem(`/jobs/j_AAAAAAAAAAAAAAAAAAAAAA/receipt`, 404, alice);
    await problem(`/jobs/not-a-job/receipt`, 404, alice);
    await problem(`/jobs/${"x".repeat(5000)}/receipt`, 404, alice);
    await problem(`/jobs/${ids[0]}/receipt`, 401);
  });

  it("checkpoints of two moments are consistent, and the JWKS verifies them", async () => {
    const first = await json<CheckpointDoc>("/audit/checkpoint");
    await Promise.all((await finishedJobs(5, alice, "later")).map((id) => receiptOf(id)));
    const second = await json<CheckpointDoc>("/audit/checkpoint");
    expect(second.tree_size).toBeGreaterThan(first.tree_size);
    for (const cp of [first, second]) expect(checkpointSigned(cp, jwks)).toBe(true);
    const { proof } = await json<{ proof: string[] }>(
      `/audit/consistency?from=${first.tree_size}&to=${second.tree_size}`,
    );
    const check = (p: string[], rootA = first.root_hash) =>
      verifyConsistency(
        first.tree_size,
        second.tree_size,
        fromHex(rootA),
        fromHex(second.root_hash),
        p.map(fromHex),
      );
    expect(check(proof)).toBe(true);
    // a forked history (another first root) is caught
    expect(check(proof, "00".repeat(32))).toBe(false);
    const same = await json<{ proof: string[] }>(
      `/audit/consistency?from=${first.tree_size}&to=${first.tree_size}`,
    );
    expect(same.proof).toEqual([]);
  });

  it("a job of the audit queue run twice appends once", async () => {
    const receipt = await receiptOf(ids[1]!);
    const queue = new Queue(AUDIT_QUEUE, { connection: sys.redis.client, prefix: sys.redis.prefix });
    try {
      const job = await queue.add("audit", { record: receipt.record }, { jobId: `audit.${ids[1]}.again` });
      await until("the second run completed", async () => (await job.isCompleted()) || undefined);
    } finally {
      await queue.close();
    }
    const keys = createKeys(sys.redis.prefix);
    const leaves = await sys.redis.client.hgetall(keys.auditLeaf);
    expect(Object.keys(leaves).filter((id) => id === ids[1])).toHaveLength(1);
    expect(Object.values(leaves).filter((i) => i === String(receipt.leaf_index))).toHaveLength(1);
    expect(await sys.redis.client.llen(keys.auditStagedOrder)).toBe(0);
  });
});

describe("the log under DATA_DIR", () => {
  it("verifies offline, every leaf of Redis's log in it", async () => {
    const keys = createKeys(sys.redis.prefix);
    // once the latest checkpoint covers every leaf committed
    const size = await until("a checkpoint of the whole log", async () => {
      const n = Number(await sys.redis.client.get(keys.auditSize));
      const cp = await get("/audit/checkpoint");
      return cp.status === 200 && ((await cp.json()) as CheckpointDoc).tree_size === n ? n : undefined;
    });
    const report = await verifyAuditLog(sys.dataDir);
    expect(report).toMatchObject({ ok: true, verified: size, leaves: size });
  });
});

describe("inputs of the audit routes", () => {
  it("consistency: integers in 1..size, from ≤ to", async () => {
    const size = (await json<CheckpointDoc>("/audit/checkpoint")).tree_size;
    for (const q of [
      "",
      "from=1",
      "to=1",
      "from=0&to=1",
      "from=-1&to=1",
      "from=01&to=2",
      "from=1e0&to=2",
      "from=1.0&to=2",
      "from=%201&to=2",
      "from=1&to=99999999999999999",
      `from=1&to=${"9".repeat(500)}`,
      "from=abc&to=2",
    ]) {
      expect((await problem(`/audit/consistency?${q}`, 400)).error, q).toBe("validation_error");
    }
    expect((await problem(`/audit/consistency?from=2&to=1`, 400)).details?.field).toBe("from");
    expect((await problem(`/audit/consistency?from=1&to=${size + 1000}`, 400)).details?.field).toBe("to");
  });

  it("segments: admins only, a bounded page", async () => {
    await problem("/audit/segments", 401);
    expect((await problem("/audit/segments", 403, alice)).error).toBe("forbidden");
    for (const q of ["limit=0", "limit=1001", "from=-1", "limit=1.5", "from=x"]) {
      expect((await problem(`/audit/segments?${q}`, 400, admin)).error, q).toBe("validation_error");
    }
    type Page = {
      tree_size: number;
      segment_size: number;
      segments: { segment: number; digest: string; count: number; root?: string }[];
      next?: number;
    };
    const all = await json<Page>("/audit/segments?limit=1000", admin);
    expect(all.segment_size).toBe(S);
    expect(all.segments.length).toBe(Math.ceil(all.tree_size / S));
    expect(all.next).toBeUndefined();
    expect(all.segments.reduce((n, s) => n + s.count, 0)).toBe(all.tree_size);
    for (const s of all.segments) expect(s.root !== undefined).toBe(s.count === S);
    const first = await json<Page>("/audit/segments?limit=1", admin);
    expect(first.segments).toEqual([all.segments[0]]);
    expect(first.next).toBe(1);
    const second = await json<Page>(`/audit/segments?from=${first.next}&limit=1`, admin);
    expect(second.segments).toEqual([all.segments[1]]);
  });

  it("the JWKS and the checkpoint are public; the JWKS is cacheable", async () => {
    const res = await get("/.well-known/render-gateway/keys");
    expect(res.headers.get("cache-control")).toMatch(/^public, max-age=\d+$/);
    const jwks = (await res.json()) as JwksDoc;
    expect(jwks.keys.length).toBeGreaterThan(0);
    expect(jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    expect((await get("/audit/checkpoint")).status).toBe(200);
  });
});

describe("with Redis away", () => {
  it("the audit routes answer 503 at once", async () => {
    // a client of the API's profile on a port nobody listens on: commands fail at once
    const dead = createRedis({ kind: "url", url: "redis://127.0.0.1:1" }, "api", "rg-dead", {
      commandTimeoutMs: 500,
    });
    try {
      const app = new Hono();
      app.onError(createErrorHandler(pino({ level: "silent" })));
      app.route(
        "/",
        auditRoutes({
          audit: createAuditReads({
            store: createAuditStore(dead, sys.redis.prefix),
            blobs: createFsBlobStore({ root: `${sys.dataDir}/cas` }),
            segmentSize: S,
          }),
        }),
      );
      for (const path of [
        "/audit/checkpoint",
        "/audit/consistency?from=1&to=2",
        "/.well-known/render-gateway/keys",
      ]) {
        const res = await app.request(path);
        expect(res.status, path).toBe(503);
        expect(res.headers.get("retry-after")).toBe("1");
      }
    } finally {
      await closeRedis(dead);
    }
  });
});
