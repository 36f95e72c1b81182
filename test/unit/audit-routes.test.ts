// GET /audit/consistency is public (API.md §1): it serves only sizes a signed checkpoint covers, and
// computes a bounded number of proofs at once (503 with Retry-After beyond that, never a queue).
// The audit reads are a stand-in of our own interface here: the route's rules are what is tested
// (the proofs themselves are tested against real logs in test/integration/audit-log.test.ts).
import { Hono } from "hono";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { AuditReads } from "../../src/api/audit-reads.js";
import { createErrorHandler } from "../../src/api/problem.js";
import { auditRoutes } from "../../src/api/routes/audit.js";
import type { SignedCheckpoint } from "../../src/core/checkpoint.js";

interface Reads {
  reads: AuditReads;
  asked: Array<[number, number]>;
  release(): void;
}

/** Reads of a log committed to `committed` leaves whose latest checkpoint covers `signed`. */
function readsOf(signed: number | undefined, opts: { hold?: boolean } = {}): Reads {
  const asked: Array<[number, number]> = [];
  let release = (): void => undefined;
  const held = new Promise<void>((r) => (release = r));
  const checkpoint = signed === undefined ? undefined : ({ tree_size: signed } as SignedCheckpoint);
  const reads = {
    checkpoint: async () => checkpoint,
    consistency: async (from: number, to: number) => {
      asked.push([from, to]);
      if (opts.hold) await held;
      return ["00"];
    },
  } as unknown as AuditReads;
  return { reads, asked, release: () => release() };
}

function appOf(reads: AuditReads, proofsInFlightMax?: number) {
  const app = new Hono();
  app.onError(createErrorHandler(pino({ level: "silent" })));
  app.route(
    "/",
    auditRoutes({ audit: reads, ...(proofsInFlightMax === undefined ? {} : { proofsInFlightMax }) }),
  );
  return app;
}

describe("GET /audit/consistency", () => {
  it("serves sizes up to the latest signed checkpoint, none beyond it", async () => {
    const r = readsOf(10);
    const app = appOf(r.reads);
    expect((await app.request("/audit/consistency?from=3&to=10")).status).toBe(200);
    const beyond = await app.request("/audit/consistency?from=3&to=11");
    expect(beyond.status).toBe(400);
    const doc = (await beyond.json()) as { error: string; details?: { field?: string } };
    expect(doc.error).toBe("validation_error");
    expect(doc.details?.field).toBe("to");
    expect(r.asked).toEqual([[3, 10]]);
  });

  it("serves nothing before the first checkpoint", async () => {
    const r = readsOf(undefined);
    const res = await appOf(r.reads).request("/audit/consistency?from=1&to=1");
    expect(res.status).toBe(400);
    expect(r.asked).toEqual([]);
  });

  it("computes at most proofsInFlightMax proofs at once: the next is a 503 at once", async () => {
    const r = readsOf(100, { hold: true });
    const app = appOf(r.reads, 2);
    const ask = async (q: string): Promise<Response> => app.request(`/audit/consistency?${q}`);
    const first = [ask("from=1&to=50"), ask("from=2&to=50")];
    await expect.poll(() => r.asked.length).toBe(2);
    const refused = await app.request("/audit/consistency?from=3&to=50");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(r.asked.length).toBe(2);
    r.release();
    expect((await Promise.all(first)).map((res) => res.status)).toEqual([200, 200]);
    // the slots are free again
    expect((await app.request("/audit/consistency?from=3&to=50")).status).toBe(200);
  });
});
