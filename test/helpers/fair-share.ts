// Fair-share test helpers (issue 9): a TIERS_FILE of weights and limits without a submit rate limit,
// the scheduler's fair-share ledger checked against the queue in one atomic read, a feeder that keeps
// a tenant's queue topped up, jobs read back with their attempts, slot time per tenant in a window,
// and admissions straight into the scheduler through the API's own admission code.
import { join } from "node:path";
import type { Redis } from "ioredis";
import { admitJob, type AdmissionDeps } from "../../src/api/admission.js";
import type { Principal } from "../../src/api/auth.js";
import { createCapacityView } from "../../src/api/capacity.js";
import { createImageBudget } from "../../src/api/input-images.js";
import { randomIds } from "../../src/core/ids.js";
import { PRIORITIES, type Priority } from "../../src/core/job.js";
import { parseQueueRequest } from "../../src/core/request-schema.js";
import { systemClock } from "../../src/core/time.js";
import { parseTiers, type Tier, type Tiers } from "../../src/core/tiers.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createImageInspector } from "../../src/infra/image-inspector.js";
import { createOutboundHttp } from "../../src/infra/outbound-http.js";
import { loadSettings } from "../../src/main/settings.js";
import { createBackendDirectory } from "../../src/queues/backend-directory.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import { readJob, type CliProcess, type E2eHarness, type Gateway, type JobDoc } from "./processes.js";
import { createCostModel } from "../../src/core/cost.js";
import { createWorkerSlots } from "../../src/queues/worker-slots.js";
import { maxWeight } from "../../src/core/tiers.js";
import { processMetricsFor } from "../../src/main/metrics.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A tier for the fair-share tests: every priority, no submit rate limit (the rate limits of a later
 * issue must not interfere), no running or queued limit unless given.
 */
export function fairTier(t: Partial<Tier> = {}): Tier {
  return {
    submits_per_min: null,
    reads_per_s: null,
    max_running: null,
    max_queued: null,
    priorities: ["high", "normal", "low"],
    weight: 1,
    sync: true,
    ...t,
  };
}

/**
 * Writes a TIERS_FILE into a temp dir of `h`; returns it, parsed too. `free` (required) and `pro` (the
 * tier of the harness's default tokens, as waitForModel's admin token) are added when absent.
 */
export function writeTiersFile(
  h: E2eHarness,
  tiers: Readonly<Record<string, Partial<Tier>>>,
): { file: string; tiers: Tiers; names: string[] } {
  const doc: Record<string, Tier> = { free: fairTier(), pro: fairTier() };
  for (const [name, t] of Object.entries(tiers)) doc[name] = fairTier(t);
  const file = h.writeFile("tiers.json", JSON.stringify(doc, null, 2));
  return { file, tiers: parseTiers(doc), names: Object.keys(doc) };
}

// One atomic read of the fair-share ledger (docs/decisions.md "Fair share"; lib.lua queue_join,
// queue_leave, running_join, running_leave) against what it counts: per tenant `q` = its jobs in the
// order, `r` = its attempts holding a lease, `h` = its held set, active (in `tenants`, with `aw`)
// exactly while q + r > 0, `W` = Σ aw of the active tenants, the per-priority and per tier and
// priority counts = the order's jobs by priority (and tier); every queued job waits in exactly one of its route set, the backoff set and its
// tenant's held set; every lease has an owner and every owner a lease.
const LEDGER_LUA = `
local P = ARGV[1]
local function key(...) return P .. ":" .. table.concat({...}, ":") end
local out = {}
local function problem(s) out[#out + 1] = s end
local function num(x) return tonumber(x or "0") or 0 end
local queued, prios, tiered = {}, {high = 0, normal = 0, low = 0}, {}
local ids = redis.call("ZRANGE", key("q"), 0, -1)
for _, id in ipairs(ids) do
  local f = redis.call("HMGET", key("job", id), "cust", "prio", "status", "route", "tier")
  local c = f[1] or "?"
  if f[3] ~= "queued" then problem("job " .. id .. " is in the order with status " .. tostring(f[3])) end
  queued[c] = (queued[c] or 0) + 1
  prios[f[2] or "?"] = (prios[f[2] or "?"] or 0) + 1
  local tf = "q:" .. tostring(f[5]) .. ":" .. tostring(f[2])
  tiered[tf] = (tiered[tf] or 0) + 1
  local places = 0
  if f[4] and redis.call("ZSCORE", key("q", "r", f[4]), id) then places = places + 1 end
  if redis.call("ZSCORE", key("q", "later"), id) then places = places + 1 end
  if redis.call("ZSCORE", key("q", "held", c), id) then places = places + 1 end
  if places ~= 1 then problem("job " .. id .. " waits in " .. places .. " of route/backoff/held sets") end
end
local running, owned = {}, 0
local leases = 0
for _, b in ipairs(redis.call("SMEMBERS", key("lease", "backends"))) do
  for _, m in ipairs(redis.call("ZRANGE", key("lease", b), 0, -1)) do
    leases = leases + 1
    local owner = redis.call("GET", key("att", m))
    if owner then
      running[owner] = (running[owner] or 0) + 1
    else
      problem("lease " .. m .. " of " .. b .. " has no owner")
    end
  end
end
-- every owner a lease (KEYS: a test's read of a small keyspace)
owned = #redis.call("KEYS", key("att", "*"))
if leases ~= owned then problem(leases .. " leases but " .. owned .. " attempt owners") end
local names = {}
for c in pairs(queued) do names[c] = true end
for c in pairs(running) do names[c] = true end
for _, c in ipairs(redis.call("SMEMBERS", key("tenants"))) do names[c] = true end
for i = 2, #ARGV do names[ARGV[i]] = true end
local W = 0
for c in pairs(names) do
  local t = redis.call("HMGET", key("t", c), "q", "r", "h", "aw")
  local q, r = queued[c] or 0, running[c] or 0
  if num(t[1]) ~= q then problem("tenant " .. c .. ": q " .. num(t[1]) .. ", queued jobs " .. q) end
  if num(t[2]) ~= r then problem("tenant " .. c .. ": r " .. num(t[2]) .. ", attempts " .. r) end
  local held = redis.call("ZCARD", key("q", "held", c))
  if num(t[3]) ~= held then problem("tenant " .. c .. ": h " .. num(t[3]) .. ", held set " .. held) end
  local active = redis.call("SISMEMBER", key("tenants"), c) == 1
  if active ~= (q + r > 0) then problem("tenant " .. c .. ": active " .. tostring(active) .. " with q+r " .. (q + r)) end
  if active then
    if t[4] then W = W + tonumber(t[4]) else problem("tenant " .. c .. ": active without aw") end
  elseif t[4] then
    problem("tenant " .. c .. ": inactive with aw " .. t[4])
  end
end
local fair = redis.call("HMGET", key("fair"), "W", "high", "normal", "low")
if num(fair[1]) ~= W then problem("W " .. num(fair[1]) .. ", summed weights of the active tenants " .. W) end
local names3 = {"high", "normal", "low"}
for i, p in ipairs(names3) do
  if num(fair[i + 1]) ~= prios[p] then problem(p .. " count " .. num(fair[i + 1]) .. ", queued " .. prios[p]) end
end
-- the per tier and priority counts (keys.ts tierDepthField): every field agrees with the order
local all = redis.call("HGETALL", key("fair"))
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == "q:" then
    local want = tiered[all[i]] or 0
    if num(all[i + 1]) ~= want then problem(all[i] .. " count " .. all[i + 1] .. ", queued " .. want) end
    tiered[all[i]] = nil
  end
end
for f, n in pairs(tiered) do problem(f .. " not counted, queued " .. n) end
return out
`;

/**
 * The fair-share ledger's discrepancies (empty when the counters agree with the queue and the leases),
 * read in one atomic step. `customers`: tenants to check besides those with queued or running work.
 */
export async function ledgerProblems(
  client: Redis,
  prefix: string,
  customers: readonly string[] = [],
): Promise<string[]> {
  return (await client.eval(LEDGER_LUA, 0, prefix, ...customers)) as string[];
}

/** A tenant's fair-share record (keys.ts `tenant`): queued, running, held. */
export async function tenantCounts(
  client: Redis,
  prefix: string,
  customer: string,
): Promise<{ q: number; r: number; h: number }> {
  const [q, r, h] = await client.hmget(createKeys(prefix).tenant(customer), "q", "r", "h");
  return { q: Number(q ?? 0), r: Number(r ?? 0), h: Number(h ?? 0) };
}

export interface Feeder {
  /** Ids submitted so far, in order. */
  readonly ids: readonly string[];
  /** Fewest jobs seen queued once the target was first reached. */
  readonly minQueued: number;
  /** Stops topping up (submits in flight finish); rethrows the first submit error. */
  stop(): Promise<void>;
}

/**
 * Keeps `queued()` at `target` or more by calling `submit` (up to `lanes` at once) until stopped: a
 * tenant that always has work waiting, whatever the fleet takes.
 */
export function startFeeder(o: {
  target: number;
  queued: () => Promise<number>;
  submit: (n: number) => Promise<string>;
  lanes?: number;
  pollMs?: number;
}): Feeder {
  const ids: string[] = [];
  let stopped = false;
  let primed = false;
  let minQueued = Number.POSITIVE_INFINITY;
  let failure: Error | undefined;
  const loop = (async () => {
    while (!stopped) {
      const q = await o.queued();
      if (primed) minQueued = Math.min(minQueued, q);
      const missing = o.target - q;
      if (missing <= 0) {
        primed = true;
        await sleep(o.pollMs ?? 20);
        continue;
      }
      const batch = Array.from({ length: Math.min(missing, o.lanes ?? 4) }, () => o.submit(ids.length));
      ids.push(...(await Promise.all(batch)));
    }
  })().catch((err: unknown) => {
    failure = err instanceof Error ? err : new Error(`submit failed: ${JSON.stringify(err)}`);
  });
  return {
    ids,
    get minQueued() {
      return minQueued;
    },
    async stop() {
      stopped = true;
      await loop;
      if (failure !== undefined) throw failure;
    },
  };
}

/** GET /jobs/{id} of each job, `lanes` at a time; fails on a missing job. */
export async function readJobs(base: string, bearer: string, ids: readonly string[], lanes = 16) {
  const out: JobDoc[] = new Array<JobDoc>(ids.length);
  let next = 0;
  const lane = async () => {
    while (next < ids.length) {
      const i = next++;
      const j = await readJob(base, bearer, ids[i]!);
      if (!j) throw new Error(`job ${ids[i]} not found`);
      out[i] = j;
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, ids.length) }, lane));
  return out;
}

/** A job's attempts as [start, end] in ms (end = `now` while one still runs). */
export function attemptSpans(j: JobDoc, now = Date.now()): [number, number][] {
  return j.attempt_log.map((a) => [
    Date.parse(a.started_at),
    a.ended_at === undefined ? now : Date.parse(a.ended_at),
  ]);
}

/** Slot time (ms) the jobs' attempts held inside [from, to]: each lease clipped to the window. */
export function slotMsWithin(jobs: readonly JobDoc[], from: number, to: number): number {
  let sum = 0;
  for (const j of jobs)
    for (const [s, e] of attemptSpans(j)) sum += Math.max(0, Math.min(e, to) - Math.max(s, from));
  return sum;
}

/** The most attempts of `jobs` that held a slot at the same moment (from their attempt logs). */
export function peakOverlap(jobs: readonly JobDoc[]): number {
  const edges: [number, number][] = [];
  for (const j of jobs)
    for (const [s, e] of attemptSpans(j)) {
      edges.push([s, 1], [e, -1]);
    }
  // an attempt that ends at the same millisecond another starts does not overlap it
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (now += d));
  return peak;
}

/** Admissions straight into the scheduler through admitJob, as `POST /queue` makes them. */
export interface DirectAdmitter {
  /** Admits `count` jobs of `body` for the customer (`inFlight` at a time); ids in admission order. */
  admit(
    who: { customer: string; tier: string },
    body: Record<string, unknown>,
    count: number,
    inFlight?: number,
  ): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * The API's admission code (request parsing, admitJob, the tier's weight and limits, the capacity
 * snapshot of the workers' reported backends and measured service times) in this process: fills a
 * queue far faster than HTTP submits. The bodies must carry no input image.
 */
export function createDirectAdmitter(o: {
  redis: Redis;
  prefix: string;
  dataDir: string;
  tiers: Tiers;
  /** Settings as the API process has them (DEFAULT_SERVICE_MS, AGING_BOUND_S, QUEUE_MAX…). */
  env?: Readonly<Record<string, string>>;
}): DirectAdmitter {
  const settings = loadSettings({ ...o.env, DATA_DIR: o.dataDir, LOG_LEVEL: "silent" });
  const env = settings.env;
  const scheduler = createScheduler({
    redis: o.redis,
    prefix: o.prefix,
    clock: systemClock,
    leaseTtlMs: env.LOCK_MS,
    maxAttempts: env.JOB_ATTEMPTS,
    retentionS: env.JOB_RETENTION_S,
    retentionCount: env.JOB_RETENTION_COUNT,
    agingBoundMs: env.AGING_BOUND_S * 1000,
    maxWeight: maxWeight(o.tiers),
    queueMax: env.QUEUE_MAX,
  });
  const cost = createCostModel(settings.catalog, {
    image: env.DEFAULT_SERVICE_MS,
    video: env.DEFAULT_VIDEO_SERVICE_MS,
  });
  const capacity = createCapacityView({
    directory: createBackendDirectory(o.redis, o.prefix, systemClock),
    store: createJobStore(o.redis, o.prefix),
    workerSlots: createWorkerSlots(o.redis, o.prefix, systemClock),
    cost,
    clock: systemClock,
    cacheMs: 1_000,
    staleMs: 10_000,
  });
  const policy = { allowPrivate: false, allowedPorts: env.OUTBOUND_ALLOWED_PORTS };
  const http = createOutboundHttp({
    policy,
    connectTimeoutMs: env.OUTBOUND_CONNECT_TIMEOUT_MS,
    timeoutMs: env.INPUT_FETCH_TIMEOUT_MS,
    maxBytes: env.INPUT_IMAGE_MAX_BYTES,
  });
  const deps: AdmissionDeps = {
    scheduler,
    tiers: o.tiers,
    cost,
    blobs: createFsBlobStore({ root: join(o.dataDir, "cas") }),
    capacity,
    clock: systemClock,
    ids: randomIds,
    grantObject: async () => undefined,
    mayReadObject: async () => true,
    resolveAsset: async () => "missing" as const,
    defaultTtlS: env.DEFAULT_TTL_S,
    redisNearLimit: () => false,
    metrics: processMetricsFor(["api"]).api(),
    inputs: {
      policy,
      http,
      inspector: createImageInspector({
        maxPixels: env.INPUT_IMAGE_MAX_PIXELS,
        concurrency: env.INPUT_DECODE_CONCURRENCY,
      }),
      maxBytes: env.INPUT_IMAGE_MAX_BYTES,
      fetchTimeoutMs: env.INPUT_FETCH_TIMEOUT_MS,
      budget: createImageBudget(env.INPUT_IMAGE_BUDGET_BYTES),
    },
  };
  return {
    async admit(who, body, count, inFlight = 64) {
      const request = parseQueueRequest(body, { catalog: settings.catalog, minTtlS: 1, maxTtlS: 86_400 });
      const principal: Principal = {
        customerId: who.customer,
        tier: who.tier,
        admin: false,
        expiresAt: Date.now() + 3_600_000,
      };
      const ids = new Array<string>(count);
      let next = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          const a = await admitJob({ principal, request, priority: request.priority, mode: "async" }, deps);
          ids[i] = a.id;
        }
      };
      await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
      return ids;
    },
    close: () => http.close(),
  };
}

/** Queued jobs per priority as the scheduler counts them (the fair hash). */
export async function queuedByPriority(client: Redis, prefix: string): Promise<Record<Priority, number>> {
  const counts = await client.hmget(createKeys(prefix).fair, ...PRIORITIES);
  const out = {} as Record<Priority, number>;
  PRIORITIES.forEach((p, i) => (out[p] = Number(counts[i] ?? 0)));
  return out;
}

/** The processes of a fair-share scenario: one simulator, one backend serving every model. */
export interface FairCluster {
  readonly sim: Gateway;
  /** The environment of every role process (TIERS_FILE, BACKENDS_FILE, WORKER_CONCURRENCY…). */
  readonly env: Readonly<Record<string, string>>;
  /** `start --roles api`. */
  startApi(name?: string): Promise<Gateway>;
  /** `start --roles worker`, resolved once it publishes the backend. */
  startWorker(name?: string): Promise<CliProcess>;
}

/**
 * A simulator (`stepMs` per step) and the environment of role processes whose one backend `gpu`
 * (`capacity` slots, every model) is run by workers of WORKER_CONCURRENCY = `capacity`, so the fleet's
 * slots C that admissions see (the usable capacity) are the slots that really run.
 */
export async function fairCluster(
  h: E2eHarness,
  o: { tiersFile: string; capacity: number; stepMs: number; env?: Readonly<Record<string, string>> },
): Promise<FairCluster> {
  const sim = await h.simBackend({
    env: { SIM_STEP_MS: String(o.stepMs), SIM_CAPACITY: String(Math.max(16, o.capacity)) },
  });
  const env = {
    TIERS_FILE: o.tiersFile,
    BACKENDS_FILE: h.backendsFile([{ id: "gpu", url: sim.url, capacity: o.capacity, streaming: false }]),
    WORKER_CONCURRENCY: String(o.capacity),
    ...o.env,
  };
  return {
    sim,
    env,
    startApi: (name = "api") => h.start("api", { name, env }),
    startWorker: (name = "worker") => h.startWorker("gpu", { name, env }),
  };
}

/** A tenant of the order scenarios: its customer id and tier. */
export interface OrderTenant {
  readonly customer: string;
  readonly tier: string;
}

/**
 * The i-th job of a fixed, irregular mix: tenant, priority and model vary without a pattern that
 * lines up with the order (every tenant, priority and model appears).
 */
export function mixedJob(i: number, tenants: readonly OrderTenant[]) {
  const priorities: Priority[] = ["normal", "low", "high", "normal", "high", "low", "low", "normal", "high"];
  const models = [
    ["flux", "schnell"],
    ["sdxl", "lcm"],
    ["zimage", "turbo"],
  ] as const;
  const tenant = tenants[(i * 7 + Math.floor(i / 11)) % tenants.length]!;
  const priority = priorities[(i * 5 + Math.floor(i / 9)) % priorities.length]!;
  const [family, model] = models[(i * 3 + Math.floor(i / 13)) % models.length]!;
  return {
    tenant,
    body: {
      modality: "image",
      family,
      model,
      task: "t2i",
      format: "512",
      prompt: `job ${i}`,
      priority,
      steps: 2,
    },
  };
}

/** The jobs by start time (each started once; ties of a millisecond are kept apart by `completed_at`). */
export function byStart(jobs: readonly JobDoc[]): JobDoc[] {
  return [...jobs].sort(
    (a, b) =>
      Date.parse(a.started_at!) - Date.parse(b.started_at!) ||
      Date.parse(a.completed_at!) - Date.parse(b.completed_at!),
  );
}

/** Waits until nothing is queued and no attempt holds a slot under `prefix` (read from Redis). */
export async function waitDrained(client: Redis, prefix: string, timeoutMs = 60_000): Promise<void> {
  const keys = createKeys(prefix);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // active tenants: a job queued or an attempt holding a slot
    const [queued, owners] = await Promise.all([client.zcard(keys.queue), client.scard(keys.activeTenants)]);
    if (queued === 0 && owners === 0) return;
    if (Date.now() > deadline)
      throw new Error(`not drained within ${timeoutMs} ms: ${queued} queued, ${owners} tenants active`);
    await sleep(100);
  }
}
