// Redis's memory use against its maxmemory, read from INFO memory on a timer (never per request), so
// the API can refuse admissions while Redis is near its limit and keep the rest for running jobs.
import { infoOfEach, type RedisClient } from "./redis-client.js";
import type { Logger } from "pino";

/** The figures of `INFO memory` the gateway uses. */
export interface RedisMemory {
  readonly usedBytes: number;
  /** 0: no limit. */
  readonly maxBytes: number;
  readonly policy: string | undefined;
}

/** Parses the reply of `INFO memory` (fields missing from it count as 0). */
export function parseMemoryInfo(info: string): RedisMemory {
  const field = (name: string) => new RegExp(`^${name}:(\\S+)`, "m").exec(info)?.[1];
  return {
    usedBytes: Number(field("used_memory") ?? 0),
    maxBytes: Number(field("maxmemory") ?? 0),
    policy: field("maxmemory_policy"),
  };
}

/**
 * Reads Redis's memory figures (INFO works where CONFIG is disabled, as on managed Redis). On a
 * Cluster, those of the fullest master: the nearest to its limit, or any without a limit.
 */
export async function readRedisMemory(client: RedisClient): Promise<RedisMemory> {
  const all = (await infoOfEach(client, "memory")).map(parseMemoryInfo);
  const fill = (m: RedisMemory) => (m.maxBytes === 0 ? Infinity : m.usedBytes / m.maxBytes);
  return all.reduce((a, b) => (fill(b) > fill(a) ? b : a));
}

/**
 * Reads Redis's memory figures at start and warns (once, on `logger`) when it has no maxmemory:
 * without a limit the near-limit 503 never comes, and a full Redis takes the machine down instead.
 * `where` names the server in the warning ("external", "embedded").
 */
export async function warnIfUnbounded(
  client: RedisClient,
  logger: Pick<Logger, "warn">,
  where: string,
): Promise<RedisMemory> {
  const memory = await readRedisMemory(client);
  if (memory.maxBytes === 0) {
    logger.warn(
      { redis: where, maxmemory: 0 },
      "Redis has no maxmemory: set one in its configuration (e.g. `maxmemory 4gb`); without it " +
        "admissions are never refused near the limit and Redis can exhaust the machine's memory",
    );
  }
  return memory;
}

export interface MemoryWatchOptions {
  /** Share of maxmemory in use from which {@link MemoryWatch.nearLimit} is true (REDIS_MEMORY_ADMIT_MAX). */
  readonly admitMax: number;
  /** Time between two reads (REDIS_MEMORY_CHECK_MS). */
  readonly intervalMs: number;
  readonly logger?: Pick<Logger, "warn" | "info">;
}

export interface MemoryWatch {
  /**
   * True while the last read found Redis at or above `admitMax` of its maxmemory; false without a
   * limit, and before the first read. Costs nothing: it answers from the last read.
   */
  nearLimit(): boolean;
  /** The last figures read, if any. */
  last(): RedisMemory | undefined;
  /** Reads now (the timer calls this). Errors are kept to the last figures: an outage shows elsewhere. */
  refresh(): Promise<void>;
  /** Stops the timer. Idempotent. */
  stop(): void;
}

/**
 * Watches `client`'s memory: one `INFO memory` now and every `intervalMs` (the timer does not keep the
 * process alive). Logs once when Redis crosses the mark and once when it is back below it.
 */
export function watchRedisMemory(client: RedisClient, opts: MemoryWatchOptions): MemoryWatch {
  let latest: RedisMemory | undefined;
  let near = false;
  let inFlight: Promise<void> | undefined;
  const refresh = () => {
    inFlight ??= readRedisMemory(client)
      .then(
        (m) => {
          latest = m;
          const now = m.maxBytes > 0 && m.usedBytes >= opts.admitMax * m.maxBytes;
          if (now !== near) {
            const fields = { usedBytes: m.usedBytes, maxBytes: m.maxBytes, admitMax: opts.admitMax };
            if (now) opts.logger?.warn(fields, "redis is near its memory limit: refusing new jobs (503)");
            else opts.logger?.info(fields, "redis memory back below the mark: admitting jobs again");
          }
          near = now;
        },
        () => undefined,
      )
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
  const timer = setInterval(() => void refresh(), opts.intervalMs);
  timer.unref();
  void refresh();
  return {
    nearLimit: () => near,
    last: () => latest,
    refresh,
    stop: () => clearInterval(timer),
  };
}
