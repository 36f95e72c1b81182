// The parts of the API that hold per-process state and serve more than one entry point: the
// admission (with the process's input-image budget), the per-customer rate limiter, object grants
// and the asset store. The API role makes them once; the HTTP app and the WebSocket share them.
import type { ApiDeps } from "./deps.js";
import type { AdmissionDeps } from "./admission.js";
import { createRateLimiter, type RateLimiter } from "./rate-limits.js";
import { createImageBudget, type ImageBudget } from "./input-images.js";
import { isSignedObjectUrl } from "./objects.js";
import { createObjectGrants, type ObjectGrants } from "../queues/object-grants.js";
import { createAssetStore, type AssetStore } from "../queues/asset-store.js";

export interface ApiServices {
  readonly admission: AdmissionDeps;
  /** Submits per minute and reads per second per customer (API.md §1; docs/decisions.md "Rate limits"). */
  readonly limiter: RateLimiter;
  readonly grants: ObjectGrants;
  readonly assets: AssetStore;
  /** Input-image bytes the admissions of this process may hold (INPUT_IMAGE_BUDGET_BYTES). */
  readonly imageBudget: ImageBudget;
}

export function createApiServices(deps: ApiDeps): ApiServices {
  const grants = createObjectGrants(
    deps.redis,
    deps.scheduler.keys.prefix,
    deps.config.retentionS,
    (deps.poolViews ?? []).filter((v) => v.prefix !== deps.scheduler.keys.prefix).map((v) => v.prefix),
  );
  // One per process: the API role makes one set of services.
  const imageBudget = createImageBudget(deps.config.inputImageBudgetBytes);
  const assets = createAssetStore(deps.redis, deps.scheduler.keys.prefix);
  const admission: AdmissionDeps = {
    scheduler: deps.scheduler,
    tiers: deps.tiers,
    blobs: deps.blobs,
    capacity: deps.capacity,
    cost: deps.cost,
    clock: deps.clock,
    ids: deps.ids,
    ...(deps.pools ? { pools: deps.pools } : {}),
    grantObject: (digest, customer) => grants.grant(digest, customer),
    // An input object is usable by whoever may read it: its owner, an admin, or the holder of a
    // signed URL of it (the same rule as GET /objects/{digest}).
    mayReadObject: async (digest, principal, url) =>
      principal.admin ||
      (url !== undefined &&
        isSignedObjectUrl(
          url,
          digest,
          deps.config.urlKey,
          Math.floor(deps.clock() / 1000),
          deps.config.outputUrlTtlS,
        )) ||
      (await grants.isOwner(digest, principal.customerId)),
    resolveAsset: async (id, principal) => {
      const asset = await assets.read(id);
      if (!asset || (!principal.admin && asset.customerId !== principal.customerId)) return "missing";
      return asset.state === "done" && asset.digest !== undefined ? { digest: asset.digest } : "pending";
    },
    defaultTtlS: deps.config.defaultTtlS,
    redisNearLimit: deps.redisNearLimit,
    metrics: deps.metrics,
    ...(deps.admissions ? { journal: deps.admissions } : {}),
    ...(deps.heads ? { onHead: deps.heads.admitted } : {}),
    inputs: {
      policy: deps.config.outbound,
      http: deps.outboundHttp,
      inspector: deps.imageInspector,
      maxBytes: deps.config.inputImageMaxBytes,
      fetchTimeoutMs: deps.config.inputFetchTimeoutMs,
      budget: imageBudget,
    },
  };
  const limiter = createRateLimiter({ tiers: deps.tiers, store: deps.rateLimits });
  return { admission, limiter, grants, assets, imageBudget };
}
