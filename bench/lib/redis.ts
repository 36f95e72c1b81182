// A redis-server of the benchmark's own: the project's redis.conf without persistence (so ours and
// the raw bound pay the same), a free loopback port, a temp dir; stopped at the end.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freeLoopbackPort, pingRedis, redisServerArgs } from "../../src/infra/embedded-redis.js";
import { PROJECT_ROOT, spawnChild, waitUntil } from "./proc.js";

export interface BenchRedis {
  readonly url: string;
  /** A client of the benchmark itself (commands queue while connecting). */
  readonly client: Redis;
  /** FLUSHALL and zeroed command statistics. */
  flush(): Promise<void>;
  /** `INFO commandstats` as command → {calls, usec}. */
  commandStats(): Promise<Map<string, { calls: number; usec: number }>>;
  usedMemoryBytes(): Promise<number>;
  /** Starts a cost measurement (zeroes command stats, notes Redis's CPU time). */
  markCost(): Promise<void>;
  /** Redis CPU and commands since markCost(), per unit of work. */
  costPer(units: number): Promise<RedisCost>;
  stop(): Promise<void>;
}

export interface RedisCost {
  /** Redis CPU (user + sys, INFO cpu) per unit of work, µs: what Redis takes from the shared cores. */
  readonly cpuUsPerUnit: number;
  /** Commands per unit by command (INFO commandstats; commands run inside scripts count too). */
  readonly byCommand: Record<string, number>;
  /** Redis time (µs) per unit by command; a script's time includes the commands it runs. */
  readonly usecByCommand: Record<string, number>;
}

/** Commands the benchmark itself sends (not part of the measured work). */
const BOOKKEEPING = new Set(["info", "config|resetstat", "config|get", "flushall", "ping"]);

export async function startRedis(dir: string): Promise<BenchRedis> {
  mkdirSync(dir, { recursive: true });
  const port = await freeLoopbackPort();
  // A child of the benchmark's own (its log, stopAll, the exit hook), so not spawnRedisServer.
  const child = spawnChild({
    name: "redis-server",
    command: "redis-server",
    args: redisServerArgs({
      confPath: join(PROJECT_ROOT, "redis.conf"),
      dir,
      port,
      extraArgs: ["--appendonly", "no", "--save", ""],
    }),
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    logDir: dir,
  });
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
  client.on("error", () => undefined);
  const commandStats = async () => {
    const info = await client.info("commandstats");
    const out = new Map<string, { calls: number; usec: number }>();
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
    }
    return out;
  };
  const cpuSeconds = async () => {
    const info = await client.info("cpu");
    const user = Number(/^used_cpu_user:([\d.]+)/m.exec(info)?.[1] ?? 0);
    const sys = Number(/^used_cpu_sys:([\d.]+)/m.exec(info)?.[1] ?? 0);
    return user + sys;
  };
  let cpuMark = 0;
  await waitUntil("redis-server", () => pingRedis(port), 10_000, 50, [child]);
  await client.connect();
  return {
    url,
    client,
    async flush() {
      await client.flushall();
      await client.config("RESETSTAT");
    },
    commandStats,
    async markCost() {
      await client.config("RESETSTAT");
      cpuMark = await cpuSeconds();
    },
    async costPer(units) {
      const cpu = (await cpuSeconds()) - cpuMark;
      const byCommand: Record<string, number> = {};
      const usecByCommand: Record<string, number> = {};
      for (const [cmd, st] of await commandStats()) {
        if (BOOKKEEPING.has(cmd)) continue;
        byCommand[cmd] = Math.round((st.calls / units) * 100) / 100;
        usecByCommand[cmd] = Math.round((st.usec / units) * 10) / 10;
      }
      return { cpuUsPerUnit: (cpu * 1e6) / units, byCommand, usecByCommand };
    },
    async usedMemoryBytes() {
      const info = await client.info("memory");
      return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0);
    },
    async stop() {
      client.disconnect();
      await child.stop(5_000);
    },
  };
}
