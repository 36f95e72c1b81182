// A pool's scheduler under the deployment-wide limits (docs/decisions.md "Pools"): every step that
// makes a job queued or running takes its place or permit in the ledger first, and every step that
// ends one has the ledger release it after (the pool reports the ends in lim:gone, drained here), so
// the ledger never counts less than the pools hold. Built only when POOLS_FILE names pools; a
// single-pool deployment calls its scheduler directly.
import { attemptId } from "../core/attempt-id.js";
import type { Clock } from "../core/time.js";
import { mayHaveRun } from "./call-outcome.js";
import { limitEntry, type LimitsLedger } from "./limits-ledger.js";
import type { PoolLimits } from "./pool-limits.js";
import type { Scheduler } from "./scheduler-types.js";

export interface LimitedSchedulerDeps {
  readonly ledger: LimitsLedger;
  readonly pool: PoolLimits;
  readonly clock: Clock;
  /** Queued jobs of everyone at once across the pools (QUEUE_MAX); -1: no limit. */
  readonly queueMax: number;
  /** Called with what failed in the releases and permits that follow a step (their repair is the sweeper's). */
  readonly onError?: (err: unknown) => void;
}

export function createLimitedScheduler(inner: Scheduler, deps: LimitedSchedulerDeps): Scheduler {
  const { ledger, pool, clock } = deps;
  const quietly = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (err: unknown) => deps.onError?.(err),
    );
  /** Releases a requeue's place, unless `ask` and its job holds it (lim_probe.lua: writes nothing for one). */
  const releaseUnheld = async (place: string, ask: boolean) => {
    if (ask && (await pool.probe([place], 0))[0] !== "over") return;
    await ledger.release([place]);
  };
  /** After a worker's step: what it ended is released, and held jobs may get the permits freed. */
  const afterWork = () => Promise.all([quietly(pool.drain()), quietly(pool.grantHeld())]);

  return {
    ...inner,

    async admit(input) {
      const customer = input.fields["cust"] ?? "";
      const tenant = input.tenant ?? { weight: 1 };
      const taken = await ledger.take(customer, input.id, tenant.maxQueued ?? -1, deps.queueMax, clock());
      if (!taken.ok)
        return { admitted: false, reason: "queue_full", scope: taken.scope, queued: taken.queued };
      const place = [limitEntry("q", customer, input.id)];
      let result;
      try {
        result = await inner.admit({
          ...input,
          // `lim`: the job's places and permits are the ledger's; a negative running cap makes the
          // pool's dispatch ask for permits instead of counting its own (lib_dispatch.lua at_limit)
          // (`lrun`: that limit, which a requeue puts back when the tenant's record went meanwhile)
          fields: {
            ...input.fields,
            lim: "1",
            ...(tenant.maxRunning !== undefined && tenant.maxRunning > 0
              ? { lrun: String(tenant.maxRunning) }
              : {}),
          },
          tenant: {
            ...tenant,
            ...(tenant.maxRunning !== undefined && tenant.maxRunning > 0
              ? { maxRunning: -tenant.maxRunning }
              : {}),
          },
        });
      } catch (err) {
        // the admission surely did nothing: its place goes back (else the sweeper settles it)
        if (!mayHaveRun(err)) await quietly(ledger.release(place));
        throw err;
      }
      // Refused or settled as never admitted: the place goes back. `unknown` keeps it (the sweeper
      // settles the id: the job, or a void marker), and so does `exists` (the id is another job's).
      if (!result.admitted && result.reason !== "unknown" && result.reason !== "exists")
        await quietly(ledger.release(place));
      return result;
    },

    async dispatch(freeSlots, backends, prefer) {
      const started = await inner.dispatch(freeSlots, backends, prefer);
      await afterWork();
      return started;
    },

    async finish(id, token, backend, outcome, payload, next, syncOutput, withRecord) {
      // A retry or busy hand-back puts the job back in the queue: its place first (never refused).
      let place: string | undefined;
      if (outcome === "retry" || outcome === "busy") {
        const customer = await pool.customerOf(id);
        if (customer !== undefined) {
          place = limitEntry("q", customer, attemptId({ id, token }));
          await ledger.add([place], clock());
        }
      }
      const r = await inner.finish(id, token, backend, outcome, payload, next, syncOutput, withRecord);
      // Not put back by this settle: the place goes back. A stale attempt may have been put back by
      // the reaper with this very place (same attempt id, reserved by reserveLapsed): the pool says
      // whether the job holds it (it can no longer come to hold it: the attempt's token is gone).
      if (place !== undefined && !(r.ok && r.status === "queued"))
        await quietly(releaseUnheld(place, !r.ok && r.reason === "stale"));
      await afterWork();
      return r;
    },

    async cancel(id, customer) {
      const r = await inner.cancel(id, customer);
      if (r === "was_queued") await quietly(pool.drain());
      return r;
    },

    async reap(now) {
      const at = now ?? clock();
      await pool.reserveLapsed(at);
      const n = await inner.reap(at);
      await afterWork();
      return n;
    },

    async expire() {
      const n = await inner.expire();
      if (n > 0) await quietly(pool.drain());
      return n;
    },
  };
}
