// The whole environment as one zod schema, parsed once at start and frozen (STYLE.md habit 3).
import { z } from "zod";

/**
 * An empty (or blank) value counts as unset, as it does for the string variables: `PORT=` must mean
 * "the default", not `Number("")` = 0 (a random port).
 */
const unsetIfBlank = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(unsetIfBlank, z.coerce.number().int().min(min).max(max).default(def));
const optionalInt = (min: number, max: number) =>
  z.preprocess(unsetIfBlank, z.coerce.number().int().min(min).max(max).optional());
const rate = (def: number) => z.preprocess(unsetIfBlank, z.coerce.number().min(0).max(1).default(def));
const bool = (def: boolean) =>
  z.preprocess(
    unsetIfBlank,
    z
      .enum(["true", "false", "1", "0", "yes", "no"])
      .default(def ? "true" : "false")
      .transform((v) => v === "true" || v === "1" || v === "yes"),
  );
/** The highest `ttl` API.md allows, so also the highest `MIN_TTL_S`. */
const MAX_TTL_S = 86_400;
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

const variables = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().min(1).default("127.0.0.1"),
  DATA_DIR: z.string().min(1).default("./data"),
  PUBLIC_URL: optionalString.pipe(z.url().optional()),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),

  REDIS_URL: optionalString.pipe(z.url().optional()),
  /** Key prefix of every Redis key; the braces make it a Redis Cluster hash tag. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9{}_-]{1,32}$/)
    .default("{rg}"),
  /** Scheduler script calls per Redis pipeline (docs/decisions.md "Script pipelines"); 0 = off. */
  REDIS_PIPELINE_MAX: int(16, 0, 1024),
  CLICKHOUSE_URL: optionalString,

  BACKENDS_FILE: optionalString,
  CATALOG_FILE: optionalString,
  TIERS_FILE: optionalString,

  JWT_SECRET: optionalString.pipe(
    z.string().min(32, "JWT_SECRET must have at least 32 characters").optional(),
  ),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,

  SYNC_BUDGET_MS: int(60_000, 100),
  JOB_ATTEMPTS: int(5, 1, 100),
  LOCK_MS: int(30_000, 200),
  STALLED_INTERVAL_MS: int(5_000, 50),
  WORKER_CONCURRENCY: optionalInt(1, 1024),
  OUTPUT_URL_TTL_S: int(86_400, 0),
  MIN_TTL_S: int(60, 1, MAX_TTL_S),
  JOB_RETENTION_S: int(86_400, 1),
  JOB_RETENTION_COUNT: int(100_000, 10),
  BACKOFF_BASE_MS: int(1_000, 1),
  BACKOFF_MAX_MS: int(30_000, 1),
  BUSY_COOLDOWN_MS: int(500, 0),
  DEFAULT_SERVICE_MS: int(5_000, 1),
  SSE_HEARTBEAT_MS: int(15_000, 100),
  SHUTDOWN_GRACE_MS: int(30_000, 0),
  HEALTH_INTERVAL_MS: int(2_000, 50),
  BREAKER_WINDOW_MS: int(10_000, 100),
  BREAKER_VOLUME: int(5, 1),
  BREAKER_ERROR_PERCENT: int(50, 1, 100),
  BREAKER_RESET_MS: int(5_000, 50),
  /** Bytes all request bodies being read at once may hold in one API process (503 beyond). */
  BODY_BUDGET_BYTES: int(64 * 1024 * 1024, 1024),
  WEBHOOK_ALLOW_PRIVATE: bool(false),
  METRICS_TOKEN: optionalString,

  SIM_PORT: optionalInt(0, 65535),
  SIM_STEP_MS: int(20, 0),
  SIM_CAPACITY: int(16, 1),
  SIM_FAIL_RATE: rate(0),
  SIM_HANG_RATE: rate(0),
});

/** The environment schema: each variable, then the rules that tie several together. */
export const envSchema = variables.superRefine((env, ctx) => {
  if (env.BACKOFF_BASE_MS > env.BACKOFF_MAX_MS) {
    ctx.addIssue({
      code: "custom",
      path: ["BACKOFF_BASE_MS"],
      message: `BACKOFF_BASE_MS (${env.BACKOFF_BASE_MS}) must not exceed BACKOFF_MAX_MS (${env.BACKOFF_MAX_MS})`,
    });
  }
});

export type Env = Readonly<z.infer<typeof envSchema>>;

/**
 * Parses the environment. A bad value throws one error whose message names every offending
 * variable, before any connection is opened.
 */
export function parseEnv(source: Readonly<Record<string, string | undefined>>): Env {
  const result = envSchema.safeParse(source);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid environment:\n${lines.join("\n")}`);
  }
  return Object.freeze(result.data);
}
