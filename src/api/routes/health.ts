// GET /health (process up) and GET /ready (Redis reachable, not shutting down; backend details
// only for admins).
import { Hono, type Context } from "hono";
import type { ApiEnv } from "../context.js";
import type { ApiDeps, PoolView } from "../deps.js";

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Each pool's own figures for admins (docs/decisions.md "Pools"): its backends, queue, capacity,
 * live workers and outbox backlog; the top-level members add the pools up (the outbox's is the
 * default pool's).
 */
async function poolFigures(views: readonly PoolView[], now: number) {
  const each = await Promise.all(
    views.map(async (v) => {
      const [snapshot, totals, lag] = await Promise.all([
        v.capacity.snapshot(),
        v.store.totals(),
        v.outbox.lag(now),
      ]);
      const { leases: _leases, ...queue } = totals;
      return [
        v.name,
        {
          backends: snapshot.backends.map((b) => b.id),
          queue,
          capacity: { usable: snapshot.usableCapacity, running: snapshot.running },
          workers: snapshot.workers.length,
          pipeline: { outbox_entries: lag.entries, outbox_oldest_ms: lag.oldestMs },
        },
      ] as const;
    }),
  );
  return Object.fromEntries(each);
}

export function healthRoutes(deps: ApiDeps, access: { admin(c: Context<ApiEnv>): Promise<boolean> }) {
  const app = new Hono<ApiEnv>();

  // HEAD is named beside GET (Hono runs the GET handler for it either way) so that the `Allow` of a
  // 405 on these probe paths lists it.
  app.on(["GET", "HEAD"], "/health", (c) => c.json({ status: "ok" }));

  app.on(["GET", "HEAD"], "/ready", async (c) => {
    let redisOk = false;
    try {
      redisOk = (await deps.redis.ping()) === "PONG";
    } catch {
      redisOk = false;
    }
    const ready = redisOk && deps.accepting();
    const body: Record<string, unknown> = {
      status: ready ? "ready" : "unavailable",
      redis: redisOk ? "ok" : "down",
    };
    if (!deps.accepting()) body.shutting_down = true;
    if (redisOk && (await access.admin(c))) {
      // One read of the leases: the per-backend counts and the running total agree.
      const [snapshot, totals, fair, lag] = await Promise.all([
        deps.capacity.snapshot(),
        deps.store.totals(),
        deps.store.tenants(),
        deps.outbox.lag(deps.clock()),
      ]);
      const { backends } = snapshot;
      const { leases, ...queue } = totals;
      body.backends = backends.map((b) => ({
        id: b.id,
        engine: b.engine,
        capacity: b.capacity,
        healthy: b.healthy,
        leases: leases.get(b.id) ?? 0,
        breakers: b.breakers,
        models: b.models,
      }));
      body.queue = queue;
      // The capacity ETAs and sync admission count: backend slots, no more than the live worker
      // slots serving them (docs/decisions.md "Queue, positions and ETAs").
      body.capacity = {
        usable: snapshot.usableCapacity,
        running: snapshot.running,
        ms_per_unit: Object.fromEntries(snapshot.measuredUnitMs),
      };
      body.workers = snapshot.workers.map((w) => ({ id: w.workerId, slots: w.slots, backends: w.backends }));
      // Fair share per active tenant: its entitled share (weight / summed weight of the active
      // tenants), what it has queued, running and held, and its share of the slots in use now.
      const runningNow = fair.tenants.reduce((sum, t) => sum + t.running, 0);
      body.tenants = fair.tenants.map((t) => ({
        customer: t.customer,
        weight: t.weight,
        weight_share: fair.weight > 0 ? round3(t.weight / fair.weight) : 0,
        queued: t.queued,
        running: t.running,
        held: t.held,
        running_share: runningNow > 0 ? round3(t.running / runningNow) : 0,
        gpu_ms: t.gpuMs,
      }));
      body.requests = deps.bodies.stats();
      // The follow-up pipeline's backlog: outbox entries not yet handed to the follow-up queues and
      // the age of the oldest (docs/decisions.md "Outbox").
      body.pipeline = { outbox_entries: lag.entries, outbox_oldest_ms: lag.oldestMs };
      if (deps.poolViews) body.pools = await poolFigures(deps.poolViews, deps.clock());
      // Which keys verify tokens: HS256 yes/no (never the secret), local key ids, the JWKS state.
      if (deps.authSources) body.auth = deps.authSources();
    }
    if (!ready) c.header("retry-after", "1");
    return c.json(body, ready ? 200 : 503);
  });

  return app;
}
