// Admits jobs straight into the scheduler, with the same validation and the same stored record as
// `POST /queue` (parseQueueRequest + admitJob), many in flight at once: fills queues in seconds; and
// reads the jobs' records back.
import { join } from "node:path";
import type { RedisClient } from "../../src/infra/redis-client.js";
import { admitJob, type AdmissionDeps } from "../../src/api/admission.js";
import type { Principal } from "../../src/api/auth.js";
import { createImageBudget } from "../../src/api/input-images.js";
import { buildSnapshot, type CapacitySnapshot, type CapacityView } from "../../src/api/capacity.js";
import { createCostModel } from "../../src/core/cost.js";
import { randomIds } from "../../src/core/ids.js";
import { parseQueueRequest } from "../../src/core/request-schema.js";
import { systemClock } from "../../src/core/time.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createImageInspector } from "../../src/infra/image-inspector.js";
import { createOutboundHttp } from "../../src/infra/outbound-http.js";
import { loadSettings } from "../../src/main/settings.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import { buildInferRequest } from "../../src/workers/infer-request.js";
import type { InferRequest } from "../../src/workers/backends/kserve-client.js";
import { createKeys } from "../../src/queues/keys.js";
import type { Tiers } from "../../src/core/tiers.js";
import type { Priority } from "../../src/core/job.js";
import { benchTiers } from "./gateway.js";
import { maxWeight } from "../../src/core/tiers.js";
import { processMetricsFor } from "../../src/main/metrics.js";

/** The typical `POST /queue` body of the issues (flux/schnell t2i, normal priority). */
export const TYPICAL_BODY = {
  modality: "image",
  family: "flux",
  model: "schnell",
  task: "t2i",
  prompt: "a lighthouse at dawn, watercolor, soft light over a calm sea",
  priority: "normal",
} as const;

/**
 * A job for the worker benches: 512×512 and a fixed seed, so the simulator renders the PNG once and
 * serves it from its media cache (the bench measures the gateway, not sharp).
 */
export function workerBody(steps?: number): Record<string, unknown> {
  return { ...TYPICAL_BODY, format: "512", seed: 424242, ...(steps === undefined ? {} : { steps }) };
}

export interface Admitter {
  /** Admits `count` jobs (`inFlight` at a time); returns their ids in admission order. */
  admit(count: number, inFlight?: number): Promise<string[]>;
  /** The KServe v2 body the worker sends for this request (ids differ per job). */
  inferBody(id: string): Promise<InferRequest>;
  /** The given fields of each job's hash (null when absent), in the order of `ids`. */
  fields(ids: readonly string[], names: readonly string[]): Promise<(string | null)[][]>;
}

/** Capacity as an API without workers sees it: none reported, nothing measured, nothing queued. */
const NO_CAPACITY: CapacitySnapshot = buildSnapshot({
  backends: [],
  roster: { live: [], announced: false },
  leases: new Map(),
  rates: new Map(),
  head: [],
  cost: { msPerUnit: (_model, measured) => measured ?? 5_000 },
});
const noCapacity: CapacityView = {
  snapshot: async () => NO_CAPACITY,
  current: () => NO_CAPACITY,
  fresh: async () => NO_CAPACITY,
};

/** Who submits the i-th job, and at which priority (default: the body's). */
export interface Submitter {
  readonly customerId: string;
  readonly tier: string;
  readonly priority?: Priority;
}

export function createAdmitter(o: {
  redis: RedisClient;
  prefix: string;
  dataDir: string;
  body: Record<string, unknown>;
  /** One customer (tier pro) for every job, or the submitter of the i-th job. */
  customerId: string | ((i: number) => Submitter);
  /** The tier table; default {@link benchTiers} (limits lifted to benchmark volumes). */
  tiers?: Tiers;
}): Admitter {
  const settings = loadSettings({ DATA_DIR: o.dataDir, LOG_LEVEL: "silent" });
  const request = parseQueueRequest(o.body, { catalog: settings.catalog, minTtlS: 60, maxTtlS: 86_400 });
  const blobs = createFsBlobStore({ root: join(o.dataDir, "cas") });
  const scheduler = createScheduler({
    redis: o.redis,
    prefix: o.prefix,
    clock: systemClock,
    leaseTtlMs: 30_000,
    maxAttempts: 5,
    retentionS: 86_400,
    retentionCount: 100_000,
    maxWeight: maxWeight(o.tiers ?? benchTiers()),
  });
  const policy = { allowPrivate: false, allowedPorts: settings.env.OUTBOUND_ALLOWED_PORTS };
  const deps: AdmissionDeps = {
    scheduler,
    tiers: o.tiers ?? benchTiers(),
    blobs,
    capacity: noCapacity,
    cost: createCostModel(settings.catalog, {
      image: settings.env.DEFAULT_SERVICE_MS,
      video: settings.env.DEFAULT_VIDEO_SERVICE_MS,
    }),
    clock: systemClock,
    ids: randomIds,
    grantObject: async () => undefined,
    mayReadObject: async () => true,
    resolveAsset: async () => "missing" as const,
    defaultTtlS: 86_400,
    redisNearLimit: () => false,
    metrics: processMetricsFor(["api"]).api(),
    // The bench bodies carry no input image; these are the real parts all the same.
    inputs: {
      policy,
      http: createOutboundHttp({
        policy,
        connectTimeoutMs: settings.env.OUTBOUND_CONNECT_TIMEOUT_MS,
        timeoutMs: settings.env.INPUT_FETCH_TIMEOUT_MS,
        maxBytes: settings.env.INPUT_IMAGE_MAX_BYTES,
      }),
      inspector: createImageInspector({
        maxPixels: settings.env.INPUT_IMAGE_MAX_PIXELS,
        concurrency: settings.env.INPUT_DECODE_CONCURRENCY,
      }),
      maxBytes: settings.env.INPUT_IMAGE_MAX_BYTES,
      fetchTimeoutMs: settings.env.INPUT_FETCH_TIMEOUT_MS,
      budget: createImageBudget(settings.env.INPUT_IMAGE_BUDGET_BYTES),
    },
  };
  const who = o.customerId;
  const submitterOf: (i: number) => Submitter =
    typeof who === "string" ? () => ({ customerId: who, tier: "pro" }) : who;
  const principals = new Map<string, Principal>();
  const principalOf = (s: Submitter): Principal => {
    const key = `${s.customerId}\n${s.tier}`;
    let p = principals.get(key);
    if (!p) {
      p = Object.freeze({
        customerId: s.customerId,
        tier: s.tier,
        admin: false,
        expiresAt: Date.now() + 3_600_000,
      });
      principals.set(key, p);
    }
    return p;
  };

  return {
    async admit(count, inFlight = 256) {
      const ids: string[] = new Array<string>(count);
      let next = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          const who = submitterOf(i);
          const admitted = await admitJob(
            {
              principal: principalOf(who),
              request,
              priority: who.priority ?? request.priority,
              mode: "async",
            },
            deps,
          );
          ids[i] = admitted.id;
        }
      };
      await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
      return ids;
    },
    async inferBody(id) {
      // The same fields admitJob stores (everything but the routing fields) and the worker sends.
      const { modality, family: _f, model: _m, task, format: _fmt, ...rest } = request;
      const stored: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(rest)) {
        if (v !== undefined) stored[k] = v;
      }
      return buildInferRequest({ id, modality, task, seed: request.seed ?? 0, request: stored }, blobs);
    },
    async fields(ids, names) {
      const out: (string | null)[][] = [];
      for (let i = 0; i < ids.length; i += 1000) {
        const pipe = o.redis.pipeline();
        for (const id of ids.slice(i, i + 1000)) pipe.hmget(createKeys(o.prefix).job(id), ...names);
        for (const [err, v] of (await pipe.exec()) ?? []) {
          if (err) throw err;
          out.push(v as (string | null)[]);
        }
      }
      return out;
    },
  };
}
