// The audit log's appender survives kill -9 and takeovers (issue 13), with real processes on the run's
// redis-server: a pipeline process killed after putting a segment blob, after its commit, or after its
// index line leaves no gap and no duplicate once another pipeline process takes over — every finished
// job has exactly one leaf, its receipt verifies, and `render-gateway audit verify` passes on DATA_DIR;
// and of two pipeline processes one appends at a time: a holder frozen past its lock loses it to the
// other and, woken, appends nothing more.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyReceipt } from "../../src/core/receipt.js";
import { createKeys } from "../../src/queues/keys.js";
import {
  E2eHarness,
  call,
  foxRequest,
  submitJob,
  token,
  until,
  waitForModel,
  waitTerminal,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import { independentlyVerified, until200, type JwksDoc, type ReceiptDoc } from "../helpers/receipts.js";

let h: E2eHarness;
let gw: Gateway;
/** Small segments and fast checkpoints and takeovers: every path of the appender runs in seconds. */
const AUDIT_ENV = {
  AUDIT_SEGMENT_SIZE: "4",
  AUDIT_CHECKPOINT_MS: "100",
  AUDIT_LOCK_MS: "1500",
  PIPELINE_CLAIM_MS: "400",
  PIPELINE_LOCK_MS: "600",
  LOG_LEVEL: "info",
};

beforeAll(async () => {
  h = new E2eHarness();
  gw = await h.start("api,worker,sim", { env: { SIM_STEP_MS: "2", ...AUDIT_ENV, LOG_LEVEL: "warn" } });
  await waitForModel(gw.url, await token("warmup", { tier: "pro" }), "flux/schnell");
});
afterAll(async () => {
  await h.cleanup();
});

async function runJobs(bearer: string, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await submitJob(gw.url, bearer, foxRequest(`${tag} ${i}`, 3))).id);
  await waitTerminal(gw.url, bearer, ids);
  return ids;
}

/** How long a test may take: processes start, die and take over (each bound below is the env's). */
const TEST_MS = 120_000;

/** Every job's receipt, once a checkpoint covers it; each verifies two independent ways. */
async function receiptsVerify(bearer: string, ids: readonly string[]): Promise<ReceiptDoc[]> {
  const receipts: ReceiptDoc[] = [];
  // one job at a time: the customer's reads quota is the API's, polled within it
  for (const id of ids) {
    receipts.push(
      await until200<ReceiptDoc>(
        (p) => call(gw.url, p, { token: bearer }),
        `/jobs/${id}/receipt`,
        60_000,
        100,
      ),
    );
  }
  const jwks = (await (await call(gw.url, "/.well-known/render-gateway/keys")).json()) as JwksDoc;
  for (const r of receipts) {
    expect(await verifyReceipt(r, jwks)).toEqual({ ok: true });
    expect(independentlyVerified(r, jwks)).toBe(true);
  }
  return receipts;
}

/**
 * The log in Redis has one leaf per finished job, indexes 0..size-1 each once (no gap, no
 * duplicate), once the pipeline has caught up with every finished job; and `audit verify` passes.
 */
async function logIsWhole(): Promise<void> {
  const redis = h.redis();
  const keys = createKeys(h.prefix);
  const finished = await until("every finished job appended", async () => {
    const [done, size] = await Promise.all([redis.zcard(keys.done), redis.get(keys.auditSize)]);
    return Number(size) === done ? done : undefined;
  });
  const leaves = await redis.hgetall(keys.auditLeaf);
  const indexes = Object.values(leaves)
    .map(Number)
    .sort((a, b) => a - b);
  expect(indexes).toEqual(Array.from({ length: finished }, (_, i) => i));
  const doneIds = await redis.zrange(keys.done, "0", "-1");
  expect(Object.keys(leaves).sort()).toEqual([...doneIds].sort());
  expect(await redis.llen(keys.auditStagedOrder)).toBe(0);
  const verify = await h.run(["audit", "verify"], { timeoutMs: 60_000 });
  expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
}

/** The process id in the lock's value (`<fence>:<host>-<pid>-<random>`). */
async function lockHolderPid(): Promise<number | undefined> {
  const value = await h.redis().get(createKeys(h.prefix).auditLock);
  const m = value === null ? null : /^\d+:.*-(\d+)-[0-9a-f]+$/.exec(value);
  return m ? Number(m[1]) : undefined;
}

describe.each(["audit_after_blob", "audit_after_commit", "audit_after_index"] as const)(
  "an appender killed %s",
  (fault) => {
    it(
      "leaves no gap and no duplicate after another pipeline process takes over",
      async () => {
        const bearer = await token(`audit-${fault}`, { tier: "pro" });
        const doomed = await h.start("pipeline", {
          wait: "none",
          name: `pipeline (${fault})`,
          env: { ...AUDIT_ENV, PIPELINE_FAULT: fault },
        });
        const ids = await runJobs(bearer, 10, fault);
        // it killed itself (SIGKILL) at its fault point, in the middle of an append
        expect((await doomed.proc.exited).signal).toBe("SIGKILL");
        await doomed.proc.kill();
        const heir = await h.start("pipeline", { wait: "none", name: "pipeline (heir)", env: AUDIT_ENV });
        try {
          await receiptsVerify(bearer, ids);
          await logIsWhole();
        } finally {
          await heir.proc.stop();
        }
      },
      TEST_MS,
    );
  },
);

describe("two pipeline processes", () => {
  it(
    "append one at a time: a frozen holder loses the log to the other and appends nothing more",
    async () => {
      const bearer = await token("audit-pair", { tier: "pro" });
      const procs: CliProcess[] = [];
      for (const name of ["pipeline A", "pipeline B"]) {
        procs.push((await h.start("pipeline", { wait: "none", name, env: AUDIT_ENV })).proc);
      }
      try {
        await takeover(bearer, procs);
      } finally {
        for (const p of procs) await p.stop();
      }
    },
    TEST_MS,
  );
});

async function takeover(bearer: string, procs: readonly CliProcess[]): Promise<void> {
  const holderOf = async () => {
    const pid = await lockHolderPid();
    return procs.find((p) => p.pid === pid);
  };
  const first = await until("one of them holds the log", holderOf);
  const other = procs.find((p) => p !== first)!;
  const before = await runJobs(bearer, 6, "pair before");
  await receiptsVerify(bearer, before);
  // only the holder said it holds the log
  expect(first.stdout).toContain("audit appender holds the log");
  expect(other.stdout).not.toContain("audit appender holds the log");

  first.pause();
  const second = await until("the other takes the log over", async () =>
    (await holderOf()) === other ? other : undefined,
  );
  const during = await runJobs(bearer, 6, "pair during");
  await receiptsVerify(bearer, during);
  first.resume();
  await first.waitUntil("the woken holder notices it lost the log", () =>
    first.stdout.includes("it no longer holds the log") ? true : undefined,
  );
  expect(await holderOf()).toBe(second);
  const after = await runJobs(bearer, 6, "pair after");
  await receiptsVerify(bearer, after);
  await logIsWhole();
}
