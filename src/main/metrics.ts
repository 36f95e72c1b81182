// Metrics wiring (README "Metrics and logs"; docs/decisions.md "Metrics"): the process's metrics,
// published to Redis every METRICS_INTERVAL_MS with an expiry of three intervals (worker and
// pipeline processes have no HTTP server), and, in API processes, the fleet's GET /metrics text: the
// fleet gauges read from Redis now, and every live process's last snapshot.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import { Queue } from "bullmq";
import type { FleetSnapshot } from "../core/metrics.js";
import type { Clock } from "../core/time.js";
import {
  createFleetMetrics,
  createProcessMetrics,
  processSeries,
  type ProcessMetrics,
} from "../infra/metrics.js";
import { exposition, parseSnapshot, type ProcessSnapshot } from "../infra/metrics-exposition.js";
import { closeRedis } from "../infra/redis.js";
import type { RedisConnector } from "../infra/redis-connector.js";
import { FOLLOW_UP_QUEUES } from "../queues/keys.js";
import { followUpLag } from "../queues/follow-up-lag.js";
import { createMetricsStore } from "../queues/metrics-store.js";
import type { PoolView } from "../api/deps.js";
import type { JobStore } from "../queues/job-store.js";
import type { OutboxStore } from "../queues/outbox-store.js";
import type { AuditStore } from "../queues/audit-store.js";
import type { ComplianceStore } from "../queues/compliance-store.js";
import type { CapacityView } from "../api/capacity.js";
import { every, within } from "../workers/timers.js";
import type { Runtime } from "./runtime.js";

/** A process's metrics, named like the worker ids: host, pid and a random part. */
export function processMetricsFor(roles: readonly string[]): ProcessMetrics {
  return createProcessMetrics({
    processId: `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
    roles: roles.join(","),
  });
}

/** A snapshot lives this many publication intervals: one or two lost publications do not drop it. */
export const SNAPSHOT_LIFETIME_INTERVALS = 3;

/**
 * Publishes the process's snapshot now and then every `intervalMs` on a connection of its own,
 * until shutdown, when the snapshot is withdrawn (its series end at once). A process that dies
 * drops out of GET /metrics within {@link SNAPSHOT_LIFETIME_INTERVALS} intervals of its last one.
 */
export async function startMetricsPublisher(o: {
  readonly metrics: ProcessMetrics;
  readonly redisConnector: RedisConnector;
  readonly prefix: string;
  readonly intervalMs: number;
  readonly runtime: Runtime;
  readonly logger: Logger;
  readonly clock: Clock;
}): Promise<void> {
  const redis = o.redisConnector.connect("worker", "rg-metrics");
  o.runtime.defer("metrics connection", () => closeRedis(redis));
  const store = createMetricsStore(redis, o.prefix, o.clock);
  const ttlMs = o.intervalMs * SNAPSHOT_LIFETIME_INTERVALS;
  const publish = async () => {
    const snapshot = await o.metrics.snapshot(o.clock());
    await store.publish(o.metrics.processId, JSON.stringify(snapshot), ttlMs);
  };
  await within(
    publish().catch((err: unknown) => o.logger.warn({ err }, "metrics publication failed")),
    2_000,
  );
  const timer = every(o.intervalMs, publish, o.logger, "metrics publication");
  o.runtime.defer("metrics publication", async () => {
    timer.stop();
    await within(store.withdraw(o.metrics.processId), 1_000);
  });
}

/** What the API reads for the fleet gauges (its own stores). */
export interface FleetSources {
  readonly redis: RedisClient;
  /** Where BullMQ's getters of the follow-up queues run (api-role.ts: kept off `redis`). */
  readonly queueRedis: RedisClient;
  readonly prefix: string;
  readonly store: Pick<JobStore, "depths" | "leases">;
  readonly capacity: Pick<CapacityView, "snapshot">;
  readonly outbox: Pick<OutboxStore, "lag">;
  /** The audit log's staged records: the appender's backlog. */
  readonly audit: Pick<AuditStore, "backlog">;
  /** The compliance reports' list: the newest one's figures (one ZREVRANGEBYSCORE and one HMGET). */
  readonly compliance: Pick<ComplianceStore, "list">;
  /** Each pool's own reads (docs/decisions.md "Pools"): the fleet gauges get a `pool` label. */
  readonly pools?: readonly PoolView[];
}

type PoolReads = Pick<FleetSources, "store" | "capacity" | "outbox"> & { readonly name?: string };

/** A pool's (or the single pool's) queue depth, backends and outbox lag, labelled with its name. */
async function readPool(v: PoolReads, now: number) {
  const [depths, leases, capacity, outbox] = await Promise.all([
    v.store.depths(),
    v.store.leases(),
    v.capacity.snapshot(),
    v.outbox.lag(now),
  ]);
  const pool = v.name === undefined ? {} : { pool: v.name };
  return {
    depth: depths.byTier.map((d) => ({ ...d, ...pool })),
    activeTenants: depths.activeTenants,
    backends: capacity.backends.map((b) => ({
      id: b.id,
      capacity: b.capacity,
      inFlight: leases.get(b.id) ?? 0,
      healthy: b.healthy,
      ...pool,
    })),
    outbox: {
      queue: "outbox",
      waiting: outbox.entries,
      delayed: 0,
      oldestSeconds: outbox.oldestMs / 1000,
      ...pool,
    },
  };
}

/** Scrapes within this long of the last one get its text (each costs reads of every snapshot). */
const CACHE_MS = 1_000;

/**
 * The fleet's GET /metrics text for an API process: the fleet gauges (bounded reads: the `fair`
 * hash, the active tenants' count, the backends' leases, the outbox's lag and the follow-up queues'
 * counts) and every live process's snapshot, this one's included. At most one build at a time, and
 * a build serves the scrapes of the next second. When Redis cannot be read, this process's own
 * series now, with `rg_metrics_fleet_read_ok 0`.
 */
export function fleetExposition(
  o: FleetSources & {
    readonly metrics: ProcessMetrics;
    readonly runtime: Runtime;
    readonly logger: Logger;
    readonly clock: Clock;
  },
): () => Promise<string> {
  const fleet = createFleetMetrics();
  const snapshots = createMetricsStore(o.redis, o.prefix, o.clock);
  let queues: Queue[] | undefined;
  const closeQueues = async (qs: readonly Queue[]): Promise<void> => {
    await within(Promise.all(qs.map((q) => q.close())), 2_000);
  };
  let stopped = false;
  const followUps = (): Queue[] => {
    if (stopped) throw new Error("the API is stopping");
    // BullMQ's getters on the API's connection (fail fast, like every read of this route)
    queues ??= FOLLOW_UP_QUEUES.map((name) => {
      const q = new Queue(name, { connection: o.queueRedis, prefix: o.prefix });
      q.on("error", (err) => o.logger.debug({ err: err.message }, "metrics queue error"));
      return q;
    });
    return queues;
  };
  // A queue whose start failed (Redis away at the first scrape) fails every call after: made anew.
  const dropQueues = (): Promise<void> => {
    const qs = queues;
    queues = undefined;
    return qs ? closeQueues(qs) : Promise.resolve();
  };
  o.runtime.defer("metrics queues", () => {
    stopped = true;
    return dropQueues();
  });

  async function readFleet(now: number): Promise<FleetSnapshot> {
    const [pools, audit, newest, ...lags] = await Promise.all([
      Promise.all(o.pools ? o.pools.map((v) => readPool(v, now)) : [readPool(o, now)]),
      o.audit.backlog(),
      o.compliance.list(1),
      ...followUps().map((q) => followUpLag(q, now)),
    ]);
    const report = newest[0];
    return {
      depth: pools.flatMap((p) => p.depth),
      activeTenants: pools.reduce((n, p) => n + p.activeTenants, 0),
      backends: pools.flatMap((p) => p.backends),
      pipeline: [
        ...pools.map((p) => p.outbox),
        ...FOLLOW_UP_QUEUES.map((queue, i) => ({
          queue,
          waiting: lags[i]!.waiting,
          delayed: lags[i]!.delayed,
          oldestSeconds: lags[i]!.oldestMs / 1000,
        })),
        // records staged for the audit log's appender, aged by when their jobs finished
        {
          queue: "audit_log",
          waiting: audit.staged,
          delayed: 0,
          oldestSeconds: audit.oldestAt === undefined ? 0 : Math.max(0, now - audit.oldestAt) / 1000,
        },
      ],
      ...(report === undefined
        ? {}
        : {
            compliance: {
              maxDiscrepancy: report.summary.max_discrepancy,
              lost: report.summary.lost,
              flagged: report.summary.flagged,
              ageSeconds: Math.max(0, (now - report.generatedMs) / 1000),
            },
          }),
    };
  }

  async function build(): Promise<string> {
    const now = o.clock();
    try {
      const [state, texts] = await Promise.all([readFleet(now), snapshots.read()]);
      const live = texts.map(parseSnapshot).filter((s): s is ProcessSnapshot => s !== undefined);
      return await exposition([await fleet.json(state), ...processSeries(live, now)]);
    } catch (err) {
      void dropQueues();
      o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics: fleet not readable");
      return exposition([
        await fleet.json(undefined),
        ...processSeries([await o.metrics.snapshot(now)], now),
      ]);
    }
  }

  let last: { at: number; text: Promise<string> } | undefined;
  return () => {
    const now = o.clock();
    if (last === undefined || now - last.at >= CACHE_MS) {
      const text = build();
      last = { at: now, text };
      // a failed build is not served again
      text.catch(() => {
        if (last?.text === text) last = undefined;
      });
    }
    return last.text;
  };
}
