// A sync job's output is kept in Redis with the settle and written to the CAS after the answer
// (docs/decisions.md "Sync route"). With real processes on the run's redis-server: a `start --roles
// api` the callers use and a `start --roles worker` with a simulator of its own, so the API reads the
// output from storage (no in-process hand-over). The CAS write is made to fail by putting a file where
// the CAS's `sha256` folder goes (every put then fails with ENOTDIR; a test run as root cannot use
// permissions for it), which holds the "after the answer" step open as long as the test needs:
//
//  1. the caller gets its 200 and the image while the CAS has no object: the API read the copy;
//  2. kill -9 of the worker with its write still undone: the copy stays in Redis, GET /objects
//     serves it (verified against its digest), and the job is complete;
//  3. a new worker's sweep writes the object out once the CAS can be written, then drops the copy;
//     the object is then served from the CAS.
// And in the ordinary case, nothing stays in Redis: the worker writes the object right after the
// answer and drops the copy.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  pngDimensions,
  readJob,
  token,
  until,
  waitForModel,
  type Gateway,
} from "../helpers/processes.js";
import { ownGpuWorker, syncCall, type OwnGpuWorker } from "../helpers/sync-direct.js";
import { createKeys } from "../../src/queues/keys.js";

const SWEEP_MS = "200";

let h: E2eHarness;
let worker: OwnGpuWorker;
let api: Gateway;
let bearer: string;

const digestOf = (bytes: Uint8Array) => `sha256-${createHash("sha256").update(bytes).digest("hex")}`;
const casFolder = () => join(h.dataDir, "cas", "sha256");
const objectFile = (digest: string) => {
  const hex = digest.slice("sha256-".length);
  return join(casFolder(), hex.slice(0, 2), hex);
};
/** Every CAS put fails from now on (ENOTDIR), until {@link unblockCas}. */
function blockCas(): void {
  rmSync(casFolder(), { recursive: true, force: true });
  mkdirSync(join(h.dataDir, "cas"), { recursive: true, mode: 0o700 });
  writeFileSync(casFolder(), "not a folder");
}
function unblockCas(): void {
  if (existsSync(casFolder()) && statSync(casFolder()).isFile()) rmSync(casFolder());
}
const held = async (digest: string) => {
  const keys = createKeys(h.prefix);
  const [bytes, listed] = await Promise.all([
    h.redis().exists(keys.syncOutput(digest)),
    h.redis().zscore(keys.syncOutputs, digest),
  ]);
  return { bytes: bytes === 1, listed: listed !== null };
};

beforeAll(async () => {
  h = new E2eHarness();
  worker = await ownGpuWorker(h, "worker", {
    capacity: 2,
    stepMs: 2,
    env: { WORKER_CONCURRENCY: "2", SYNC_OUTPUT_SWEEP_MS: SWEEP_MS },
  });
  api = await h.start("api");
  bearer = await token("sync-output-crash", { tier: "enterprise" });
  await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("a sync output written to the CAS after the answer", () => {
  it("is written out and dropped from Redis right after the answer", async () => {
    const answer = await syncCall(api.url, bearer, { prompt: "ordinary", steps: 2 }).answer;
    expect(answer.status).toBe(200);
    const digest = digestOf(answer.bytes);
    expect(answer.headers.get("content-location")).toContain(digest);
    await until("the object is in the CAS and no copy in Redis", async () => {
      const h2 = await held(digest);
      return existsSync(objectFile(digest)) && !h2.bytes && !h2.listed;
    });
  });

  it("survives kill -9 of the worker before the write: served from Redis, then written out by another worker", async () => {
    blockCas();
    try {
      const answer = await syncCall(api.url, bearer, { prompt: "crash before the write", steps: 2 }).answer;
      // 1. Answered from the copy: the CAS has no object.
      expect(answer.status).toBe(200);
      expect(pngDimensions(answer.bytes).width).toBeGreaterThan(0);
      const digest = digestOf(answer.bytes);
      const id = answer.headers.get("x-job-id")!;
      expect(existsSync(objectFile(digest))).toBe(false);
      expect(await held(digest)).toEqual({ bytes: true, listed: true });

      // 2. The worker dies with its write undone.
      await worker.proc.kill();
      expect((await readJob(api.url, bearer, id))?.status).toBe("complete");
      const served = await call(api.url, `/objects/${digest}`, { token: bearer });
      expect(served.status).toBe(200);
      expect(Buffer.from(await served.arrayBuffer()).equals(answer.bytes)).toBe(true);
      expect(await held(digest)).toEqual({ bytes: true, listed: true });

      // 3. Another worker's sweep writes it out once the CAS takes writes again.
      await worker.restart();
      unblockCas();
      await until("the sweep wrote the object and dropped the copy", async () => {
        const h2 = await held(digest);
        return existsSync(objectFile(digest)) && !h2.bytes && !h2.listed;
      });
      const again = await call(api.url, `/objects/${digest}`, { token: bearer });
      expect(again.status).toBe(200);
      expect(Buffer.from(await again.arrayBuffer()).equals(answer.bytes)).toBe(true);
    } finally {
      unblockCas();
    }
  });
});
