// Property: whatever interleaving of success, failure, timeout, busy, cancel, retry, worker crash
// and lease expiry happens, backend slot leases return to exactly zero,
// no backend ever holds more leases than its capacity, and every job ends terminal or queued.
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { createScheduler, type Attempt, type BackendView } from "../../src/queues/scheduler.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { attemptId } from "../../src/core/attempt-id.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";
import { createKeys } from "../../src/queues/keys.js";

const BACKENDS: BackendView[] = [
  { id: "a", cap: 2, engine: "nunchaku", models: ["*"], ok: true },
  { id: "b", cap: 1, engine: "torch", models: ["flux/schnell"], ok: true },
];

type Op =
  | { kind: "admit"; model: "flux/schnell" | "wan/default"; prio: "high" | "normal" | "low" }
  | { kind: "dispatch"; slots: number }
  | { kind: "finish"; pick: number; outcome: "complete" | "failed" | "retry" | "busy" }
  | { kind: "cancel"; pick: number }
  | { kind: "crash"; pick: number }
  | { kind: "tick"; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("admit" as const),
    model: fc.constantFrom("flux/schnell" as const, "wan/default" as const),
    prio: fc.constantFrom("high" as const, "normal" as const, "low" as const),
  }),
  fc.record({ kind: fc.constant("dispatch" as const), slots: fc.integer({ min: 1, max: 4 }) }),
  fc.record({
    kind: fc.constant("finish" as const),
    pick: fc.nat(),
    outcome: fc.constantFrom("complete" as const, "failed" as const, "retry" as const, "busy" as const),
  }),
  fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("crash" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 3_000 }) }),
);

let r: TestRedis | undefined;
afterEach(async () => {
  await r?.cleanup();
  r = undefined;
});

describe("lease accounting", () => {
  it("returns every lease after any interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 60 }), async (ops) => {
        r = testRedis();
        let now = 1_000_000;
        const sched = createScheduler({
          redis: r.client,
          prefix: r.prefix,
          clock: () => now,
          leaseTtlMs: 2_000,
          maxAttempts: 3,
          retentionS: 3600,
          retentionCount: 10_000,
        });
        const store = createJobStore(r.client, r.prefix);
        const ids: string[] = [];
        let begun: Attempt[] = [];
        const payload = { output: "sha256-x", outputs: ["sha256-x"], ctype: "image/png", seed: 1, gpu_ms: 1 };
        const err = { code: "backend_error", message: "x", retriable: true };
        const leaseCount = async (b: string) => r!.client.zcard(createKeys(r!.prefix).lease(b));

        // The model: every lease that must exist, with its expiry. Redis must match it exactly.
        const model = new Map<string, { backend: string; expiry: number }>();
        const member = (d: Attempt) => attemptId(d);
        const redisLeases = async () => {
          const out = new Map<string, string>();
          for (const b of BACKENDS) {
            for (const m of await r!.client.zrange(createKeys(r!.prefix).lease(b.id), "0", "-1"))
              out.set(m, b.id);
          }
          return out;
        };

        for (const o of ops) {
          switch (o.kind) {
            case "admit": {
              const id = `j_${ids.length.toString().padStart(20, "0")}`;
              const [fam, mdl] = o.model.split("/");
              await sched.admit({
                id,
                route: o.model,
                priority: o.prio,
                serviceMs: 100,
                capacity: 1,
                fields: {
                  cust: "c",
                  prio: o.prio,
                  mod: "image",
                  fam: fam!,
                  mdl: mdl!,
                  task: "t2i",
                  fmt: "512",
                  seed: "1",
                  mode: "async",
                },
                request: "{}",
              });
              ids.push(id);
              break;
            }
            case "dispatch":
              for (const d of await sched.dispatch(o.slots, BACKENDS)) {
                begun.push(d);
                model.set(member(d), { backend: d.backend, expiry: now + 2_000 });
              }
              break;
            case "finish": {
              const d = begun.splice(o.pick % Math.max(1, begun.length), 1)[0];
              if (d) {
                await sched.finish(
                  d.id,
                  d.token,
                  d.backend,
                  o.outcome,
                  o.outcome === "complete" ? payload : { error: err, notbefore: now + 500, cool_ms: 300 },
                );
                model.delete(member(d));
              }
              break;
            }
            case "cancel": {
              if (ids.length === 0) break;
              const id = ids[o.pick % ids.length]!;
              // a running job's lease stays until its worker settles it (or it expires)
              await sched.cancel(id, undefined);
              break;
            }
            case "crash": {
              // the worker holding this attempt vanishes: it never settles or renews it
              const d = begun[o.pick % Math.max(1, begun.length)];
              if (d) begun = begun.filter((x) => x !== d);
              break;
            }
            case "tick": {
              now += o.ms;
              // live workers renew what they run (while the job is still theirs, running, and its
              // lease not yet reaped — an expired lease its live holder renews first stays its own)
              for (const d of begun) {
                const m = model.get(member(d));
                const job = await store.read(d.id);
                if (
                  m &&
                  job?.job.status === "running" &&
                  (await r.client.hget(createKeys(r.prefix).job(d.id), "token")) === d.token
                ) {
                  m.expiry = now + 2_000;
                }
              }
              await sched.renew(begun.map((d) => ({ id: d.id, token: d.token, backend: d.backend })));
              await sched.reap();
              for (const [k, v] of model) if (v.expiry <= now) model.delete(k);
              await sched.expire();
              break;
            }
          }
          const actual = await redisLeases();
          expect([...actual.keys()].sort()).toEqual([...model.keys()].sort());
          for (const b of BACKENDS) expect(await leaseCount(b.id)).toBeLessThanOrEqual(b.cap);
        }

        // Drain: settle what live workers hold, let the rest expire, run everything to the end.
        for (const d of begun) await sched.finish(d.id, d.token, d.backend, "complete", payload);
        begun = [];
        for (let round = 0; round < 200; round++) {
          now += 3_000;
          await sched.reap();
          const ds = await sched.dispatch(8, BACKENDS);
          if (
            ds.length === 0 &&
            (await store.totals()).depth.normal +
              (await store.totals()).depth.high +
              (await store.totals()).depth.low ===
              0
          )
            break;
          for (const d of ds) await sched.finish(d.id, d.token, d.backend, "complete", payload);
        }
        now += 3_000;
        await sched.reap();
        const totals = await store.totals();
        expect(totals.running).toBe(0);
        expect(totals.depth).toEqual({ high: 0, normal: 0, low: 0 });
        for (const b of BACKENDS) expect(await leaseCount(b.id)).toBe(0);
        for (const id of ids) {
          const j = (await store.read(id))!.job;
          expect(["complete", "error", "cancelled"]).toContain(j.status);
        }
        await r.cleanup();
        r = undefined;
      }),
      { numRuns: 60 },
    );
  });
});
