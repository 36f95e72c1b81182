// `render-gateway keys create|list|revoke` (API.md §5, README "API keys"): API keys in the Redis the API
// uses — REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES, or the embedded server a `start` on the same DATA_DIR runs.
import { parseArgs } from "node:util";
import type { RedisClient } from "../infra/redis-client.js";
import { parseTtl } from "../api/auth.js";
import { systemClock } from "../core/time.js";
import { DEFAULT_TIER } from "../core/tiers.js";
import { pingRedis } from "../infra/embedded-redis.js";
import { closeRedis, createRedis, waitReady, type RedisTarget } from "../infra/redis.js";
import { createApiKeyStore, type ApiKeyInfo } from "../queues/api-key-store.js";
import { loadApiKeyPepper, NO_PEPPER_MESSAGE } from "./api-key-pepper.js";
import { configuredRedisTarget } from "./redis-target.js";
import { readRunFile } from "./run-files.js";
import { loadSettings, type Settings } from "./settings.js";

export const KEYS_USAGE = `  keys create --customer ID [--tier T] [--admin] [--name N] [--expires 90d]
                                   make an API key; prints only the key (once: it is stored hashed)
  keys list [--customer ID] [--json]
                                   the keys (prefix, customer, tier, dates, revoked); never a secret
  keys revoke PREFIX               revoke a key on every API process within API_KEY_RECHECK_MS
`;

/** Where the process writes: stdout carries only what scripts read (the key, the list). */
export interface KeysOutput {
  out(text: string): void;
  err(text: string): void;
}

const processOutput: KeysOutput = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/**
 * The Redis the API uses: REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES, else the embedded server of a `start` on this
 * DATA_DIR (its port under DATA_DIR/run, answering PING).
 * @throws Error saying what to do when there is neither.
 */
export async function cliRedisTarget(settings: Settings): Promise<RedisTarget> {
  const configured = configuredRedisTarget(settings.env);
  if (configured) return configured;
  const port = Number(readRunFile(settings.dataDir, "redis.port") ?? "");
  if (Number.isInteger(port) && port > 0 && (await pingRedis(port, 1_000)))
    return { kind: "url", url: `redis://127.0.0.1:${port}` };
  throw new Error(
    `no Redis to use: REDIS_URL is not set (nor REDIS_SENTINELS, REDIS_CLUSTER_NODES) and no embedded redis-server runs for DATA_DIR ${settings.dataDir} ` +
      "(start the gateway first with `render-gateway start`, or set REDIS_URL)",
  );
}

/** A stored time as ISO 8601 (a figure beyond what a Date holds, as it is: never an exception). */
const ISO = (ms: number | undefined) =>
  ms === undefined ? "-" : Number.isFinite(new Date(ms).getTime()) ? new Date(ms).toISOString() : String(ms);

function status(k: ApiKeyInfo, now: number): string {
  if (k.revokedAt !== undefined) return "revoked";
  if (k.expiresAt !== undefined && now >= k.expiresAt) return "expired";
  return "active";
}

/** The list as a table (one key per line, columns padded). */
function table(keys: readonly ApiKeyInfo[], now: number): string {
  const head = ["PREFIX", "CUSTOMER", "NAME", "TIER", "ADMIN", "CREATED", "LAST USED", "EXPIRES", "STATUS"];
  const rows = keys.map((k) => [
    k.prefix,
    k.customerId,
    k.name ?? "-",
    k.tier,
    k.admin ? "yes" : "no",
    ISO(k.createdAt),
    ISO(k.lastUsedAt),
    ISO(k.expiresAt),
    status(k, now) + (k.revokedAt === undefined ? "" : ` ${ISO(k.revokedAt)}`),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return (
    [head, ...rows]
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** One key as `keys list --json` prints it (snake_case, RFC 3339 times, absent fields omitted). */
function json(k: ApiKeyInfo, now: number): Record<string, unknown> {
  return {
    prefix: k.prefix,
    customer_id: k.customerId,
    ...(k.name === undefined ? {} : { name: k.name }),
    tier: k.tier,
    admin: k.admin,
    created_at: ISO(k.createdAt),
    ...(k.lastUsedAt === undefined ? {} : { last_used_at: ISO(k.lastUsedAt) }),
    ...(k.expiresAt === undefined ? {} : { expires_at: ISO(k.expiresAt) }),
    ...(k.revokedAt === undefined ? {} : { revoked_at: ISO(k.revokedAt) }),
    status: status(k, now),
  };
}

/**
 * Runs `keys <sub> …`. Returns the exit code: 0 done, 1 an unknown prefix to revoke, 2 bad usage.
 * @throws Error for anything that stops it (no Redis, no pepper to create with, bad option values).
 */
export async function runKeysCommand(
  argv: readonly string[],
  output: KeysOutput = processOutput,
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "create" && sub !== "list" && sub !== "revoke") {
    output.err(`keys: expected create, list or revoke\nusage:\n${KEYS_USAGE}`);
    return 2;
  }
  const settings = loadSettings();
  const tiers = Object.keys(settings.tiers);
  const clock = systemClock;

  // Options are checked before anything connects.
  let run: (store: ReturnType<typeof createApiKeyStore>) => Promise<number>;
  let pepper: Uint8Array | undefined;
  if (sub === "create") {
    const { values } = parseArgs({
      args: [...rest],
      options: {
        customer: { type: "string" },
        tier: { type: "string" },
        admin: { type: "boolean" },
        name: { type: "string" },
        expires: { type: "string" },
      },
      strict: true,
    });
    if (!values.customer) throw new Error("keys create: --customer is required");
    const tier = values.tier ?? DEFAULT_TIER;
    if (!tiers.includes(tier)) throw new Error(`keys create: --tier must be one of ${tiers.join(", ")}`);
    const ttlS = values.expires === undefined ? undefined : parseTtl(values.expires);
    pepper = await loadApiKeyPepper(settings);
    if (pepper === undefined) throw new Error(`keys create: ${NO_PEPPER_MESSAGE}`);
    run = async (store) => {
      const { key, info } = await store.create({
        customerId: values.customer!,
        tier,
        admin: values.admin === true,
        ...(values.name === undefined ? {} : { name: values.name }),
        ...(ttlS === undefined ? {} : { ttlMs: ttlS * 1000 }),
      });
      output.out(`${key}\n`);
      output.err(
        `created API key ${info.prefix} for ${info.customerId} (tier ${info.tier}); it is not shown again\n`,
      );
      return 0;
    };
  } else if (sub === "list") {
    const { values } = parseArgs({
      args: [...rest],
      options: { customer: { type: "string" }, json: { type: "boolean" } },
      strict: true,
    });
    run = async (store) => {
      const keys = await store.list(values.customer);
      const now = clock();
      output.out(
        values.json === true ? `${JSON.stringify(keys.map((k) => json(k, now)))}\n` : table(keys, now),
      );
      return 0;
    };
  } else {
    const { positionals } = parseArgs({ args: [...rest], allowPositionals: true, strict: true });
    const prefix = positionals[0];
    if (prefix === undefined || positionals.length > 1)
      throw new Error("keys revoke: give exactly one PREFIX");
    run = async (store) => {
      const outcome = await store.revoke(prefix);
      if (outcome === "unknown") {
        output.err(`keys revoke: no API key with prefix ${JSON.stringify(prefix.slice(0, 64))}\n`);
        return 1;
      }
      output.err(`${outcome === "revoked" ? "revoked" : "already revoked:"} ${prefix}\n`);
      return 0;
    };
  }

  const redis: RedisClient = createRedis(await cliRedisTarget(settings), "api", "rg-cli-keys", {
    commandTimeoutMs: settings.env.REDIS_COMMAND_TIMEOUT_MS,
  });
  try {
    await waitReady(redis, 5_000);
    return await run(
      createApiKeyStore({
        redis,
        prefix: settings.env.REDIS_PREFIX,
        clock,
        tiers,
        ...(pepper === undefined ? {} : { pepper }),
      }),
    );
  } finally {
    await closeRedis(redis);
  }
}
