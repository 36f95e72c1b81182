// `render-gateway start [--roles ...]`: runs the chosen roles in this process on embedded defaults.
import { createSettleSignal } from "../core/settle-signal.js";
import { createHeadSignal } from "../core/head-signal.js";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { systemClock } from "../core/time.js";
import { DEFAULT_TIER } from "../core/tiers.js";
import { createLogger } from "../infra/logger.js";
import {
  assertNoEviction,
  closeRedis,
  connectedReplicas,
  describeTarget,
  waitReady,
  type RedisTarget,
} from "../infra/redis.js";
import { createRedisConnector, type RedisConnector } from "../infra/redis-connector.js";
import { defaultRedisMaxmemory, machineMemoryBytes, startEmbeddedRedis } from "../infra/embedded-redis.js";
import { createFsBlobStore } from "../infra/fs-blob-store.js";
import { createOutputHandover, OUTPUT_HANDOVER_BOUNDS } from "../core/output-handover.js";
import { ensurePrivateDataDir } from "../infra/private-dir.js";
import { warnIfUnbounded } from "../infra/redis-memory.js";
import { signToken } from "../api/auth.js";
import { readRunFile } from "./run-files.js";
import { configuredRedisTarget } from "./redis-target.js";
import { processMetricsFor, startMetricsPublisher } from "./metrics.js";
import { createRuntime, type Runtime } from "./runtime.js";
import { defaultSimBackends, loadKeys, loadSettings, PROJECT_ROOT, type Settings } from "./settings.js";

const ROLES = ["api", "worker", "pipeline", "admin", "sim"] as const;
export type Role = (typeof ROLES)[number];
/**
 * Roles run when none are named. `admin` is not among them: the api role serves the board itself;
 * `admin` alone serves only the board (and its login) on PORT.
 */
const DEFAULT_ROLES: readonly Role[] = ["api", "worker", "pipeline", "sim"];

export function parseRoles(raw: string | undefined): Role[] {
  if (raw === undefined || raw.trim() === "") return [...DEFAULT_ROLES];
  const roles = raw
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  for (const r of roles) {
    if (!(ROLES as readonly string[]).includes(r))
      throw new Error(`unknown role "${r}" (roles: ${ROLES.join(", ")})`);
  }
  return [...new Set(roles)] as Role[];
}

/**
 * The process's Redis connector: to REDIS_URL, through REDIS_SENTINELS or REDIS_CLUSTER_NODES, else to the embedded
 * server (started or reused). One probe connection checks the (primary) server first: no eviction,
 * a memory limit, and replicas enough for REDIS_WAIT_REPLICAS (a warning: they may still attach).
 */
async function ensureRedis(settings: Settings, runtime: Runtime, logger: Logger): Promise<RedisConnector> {
  const { env } = settings;
  let target: RedisTarget | undefined = configuredRedisTarget(env);
  const external = target !== undefined;
  if (!target) {
    const embedded = await startEmbeddedRedis({
      dataDir: settings.dataDir,
      confPath: resolve(PROJECT_ROOT, "redis.conf"),
      maxmemoryBytes: env.REDIS_MAXMEMORY ?? defaultRedisMaxmemory(machineMemoryBytes()),
    });
    runtime.defer("embedded redis", () => embedded.stop());
    target = { kind: "url", url: embedded.url };
    logger.info({ url: embedded.url, reused: !embedded.owned }, "embedded redis-server");
  }
  const connector = createRedisConnector(target, {
    commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS,
    reconnectMaxMs: env.REDIS_RECONNECT_MAX_MS,
    logger,
  });
  // Registered before any role opens a connection: released after every one of them is closed.
  runtime.defer("redis failover watch", () => connector.close());
  const probe = connector.connect("api", "rg-probe");
  try {
    await waitReady(probe, 10_000);
    await assertNoEviction(probe);
    // Once per start (README "Storage").
    await warnIfUnbounded(probe, logger, external ? "external" : "embedded");
    if (env.REDIS_WAIT_REPLICAS > 0) {
      const replicas = await connectedReplicas(probe);
      if (replicas < env.REDIS_WAIT_REPLICAS) {
        logger.warn(
          { redis: describeTarget(target), replicas, wanted: env.REDIS_WAIT_REPLICAS },
          "fewer replicas than REDIS_WAIT_REPLICAS: submits answer 503 until enough acknowledge",
        );
      }
    }
  } finally {
    await closeRedis(probe);
  }
  return connector;
}

export async function runStart(roles: Role[]): Promise<void> {
  const settings = loadSettings();
  const { env } = settings;
  const logger = createLogger({ level: env.LOG_LEVEL });
  const runtime = createRuntime(logger);
  runtime.handleSignals((code) => process.exit(code));
  try {
    // DATA_DIR holds the AOF (every job's request), the CAS and secrets: only its owner may enter.
    const tightened = ensurePrivateDataDir(settings.dataDir);
    if (tightened.length > 0) logger.info({ dirs: tightened }, "closed data folders to other users (0700)");
    // Every role but the simulator uses Redis.
    const needsRedis = roles.some((r) => r !== "sim");
    const redisConnector = needsRedis ? await ensureRedis(settings, runtime, logger) : undefined;
    const metrics = processMetricsFor(roles);
    const blobs = createFsBlobStore({
      root: join(settings.dataDir, "cas"),
      // A put refreshes an object older than half the grace: it is then safe for at least that long.
      refreshAfterMs: (env.CAS_GC_GRACE_S * 1000) / 2,
    });

    // What every Redis-using role of this process shares.
    const shared = {
      settings,
      // Only the simulator runs without Redis, and it never reads this.
      redisConnector: redisConnector ?? noRedis,
      runtime,
      logger,
      clock: systemClock,
      blobs,
      handover: createOutputHandover({ clock: systemClock, ...OUTPUT_HANDOVER_BOUNDS }),
      // The api and worker roles of one process tell each other of terminal settles and of admissions
      // at the head of the queue (none to tell without both).
      ...(roles.includes("api") && roles.includes("worker")
        ? { settles: createSettleSignal(), heads: createHeadSignal() }
        : {}),
      metrics,
    };
    let simUrl: string | undefined;
    // Roles are loaded on demand: an API process never loads the simulator's image and video encoders.
    if (roles.includes("sim")) {
      const { startSimRole } = await import("./sim-role.js");
      const sim = await startSimRole({ env, dataDir: settings.dataDir, runtime, logger, defaultPort: 0 });
      simUrl = sim.url;
      logger.info({ url: sim.url }, "simulated GPU backend listening");
    }
    if (roles.includes("worker")) {
      let backends = settings.backendsFile;
      if (!backends) {
        simUrl ??= readRunFile(settings.dataDir, "sim.url");
        if (!simUrl) {
          throw new Error("no BACKENDS_FILE and no simulated backend: add the sim role or set BACKENDS_FILE");
        }
        backends = defaultSimBackends(settings.catalog, simUrl, env.SIM_CAPACITY);
      }
      const { startWorkerRole } = await import("./worker-role.js");
      await startWorkerRole({ ...shared, backends });
    }
    if (roles.includes("pipeline")) {
      const { startPipelineRole } = await import("./pipeline-role.js");
      await startPipelineRole({ ...shared, keys: await loadKeys(settings) });
    }
    if (roles.includes("api")) {
      const keys = await loadKeys(settings);
      const { startApiRole } = await import("./api-role.js");
      const api = await startApiRole({ ...shared, keys });
      // A token is printed only for the dev secret: with JWT_SECRET or an identity provider's keys
      // (a real deployment) nothing dev-only happens, and the banner says how to get one.
      const token =
        settings.env.JWT_SECRET || keys.jwt === undefined
          ? undefined
          : await signToken({
              secret: keys.jwt,
              customerId: "dev",
              // A TIERS_FILE need not define "pro"; it always defines "free".
              tier: Object.hasOwn(settings.tiers, "pro") ? "pro" : DEFAULT_TIER,
              tiers: Object.keys(settings.tiers),
              ttlS: Math.min(DEV_TOKEN_TTL_S, env.JWT_MAX_TTL_S),
              clock: systemClock,
              ...(env.JWT_ISSUER ? { issuer: env.JWT_ISSUER } : {}),
              ...(env.JWT_AUDIENCE ? { audience: env.JWT_AUDIENCE } : {}),
            });
      printBanner(api.url, token, settings);
    } else if (roles.includes("admin")) {
      // With the api role the board is in the API's app; alone, it has a server of its own.
      const keys = await loadKeys(settings);
      const { startAdminRole } = await import("./admin-role.js");
      const admin = await startAdminRole({ ...shared, keys });
      process.stdout.write(`\nrender-gateway admin board at ${admin.url}/admin/queues\n\n`);
    }
    // Every process with Redis publishes its metrics; any API process serves them (GET /metrics).
    if (redisConnector) {
      await startMetricsPublisher({
        metrics,
        redisConnector,
        prefix: env.REDIS_PREFIX,
        intervalMs: env.METRICS_INTERVAL_MS,
        runtime,
        logger,
        clock: systemClock,
      });
    }
  } catch (err) {
    logger.error({ err }, "start failed");
    await runtime.shutdown("start failed");
    throw err;
  }
}

/** The connector of a process that runs no role needing Redis (the simulator alone). */
const noRedis: RedisConnector = {
  target: { kind: "url", url: "redis://127.0.0.1:0" },
  connect() {
    throw new Error("this process runs no role that uses Redis");
  },
  close: () => Promise.resolve(),
};

/** Lifetime of the printed dev token, when JWT_MAX_TTL_S allows it (docs/decisions.md "Identity"). */
const DEV_TOKEN_TTL_S = 7 * 86_400;

/** The start banner; `token` is the dev token, undefined when JWT_SECRET is set. */
function printBanner(url: string, token: string | undefined, settings: Settings): void {
  const bearer = token ?? "$TOKEN";
  const lines = [
    "",
    `render-gateway is up at ${url}`,
    `  playground: ${url}/ (paste the token there)`,
    `  admin:      ${url}/admin/queues (Bull Board; sign in with an admin token)`,
    `  data:       ${settings.dataDir}`,
    ...(token !== undefined
      ? [`  dev token: ${token}`]
      : settings.env.JWT_SECRET
        ? [
            "  JWT_SECRET is set, so no dev token is printed. Mint a token (same environment):",
            "  TOKEN=$(npx render-gateway token --customer CUSTOMER_ID --ttl 1h)",
          ]
        : [
            "  An identity provider's keys are set (JWT_PUBLIC_KEYS or JWKS_URL): tokens come from it,",
            "  API keys from `npx render-gateway keys create --customer CUSTOMER_ID` (API_KEY_PEPPER set).",
          ]),
    "",
    "Generate an image:",
    `  curl -sS -X POST ${url}/image/flux/schnell/t2i \\`,
    `    -H "Authorization: Bearer ${bearer}" -H "Content-Type: application/json" \\`,
    `    -d '{"prompt":"a lighthouse at dawn, watercolor"}' -o image.png`,
    "",
    "Queue one and follow it:",
    `  curl -sS -X POST ${url}/queue -H "Authorization: Bearer ${bearer}" -H "Content-Type: application/json" \\`,
    `    -d '{"modality":"image","family":"flux","model":"schnell","task":"t2i","prompt":"a red fox"}'`,
    "",
  ];
  process.stdout.write(lines.join("\n") + "\n");
}
