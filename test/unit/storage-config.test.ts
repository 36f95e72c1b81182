// The storage bounds' configuration: REDIS_MAXMEMORY in Redis's units, the embedded server's default
// maxmemory from the machine's memory, the CAS and ttl defaults, and INFO memory parsing.
import { describe, expect, it } from "vitest";
import { parseEnv } from "../../src/config/env.js";
import { defaultRedisMaxmemory, machineMemoryBytes } from "../../src/infra/embedded-redis.js";
import { parseMemoryInfo } from "../../src/infra/redis-memory.js";

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

describe("storage configuration", () => {
  it("reads REDIS_MAXMEMORY as bytes or with Redis's units", () => {
    const bytes = (v: string) => parseEnv({ REDIS_MAXMEMORY: v }).REDIS_MAXMEMORY;
    expect(bytes("536870912")).toBe(512 * MIB);
    expect(bytes("512mb")).toBe(512 * MIB);
    expect(bytes("2GB")).toBe(2 * GIB);
    expect(bytes("1.5gb")).toBe(1.5 * GIB);
    expect(bytes("100m")).toBe(100e6);
    expect(bytes("4g")).toBe(4e9);
    expect(parseEnv({ REDIS_MAXMEMORY: "" }).REDIS_MAXMEMORY).toBeUndefined();
    for (const bad of ["lots", "0", "512kb", "-1gb", "1tb"]) {
      expect(() => parseEnv({ REDIS_MAXMEMORY: bad }), bad).toThrow(/REDIS_MAXMEMORY/);
    }
  });

  it("sizes the embedded Redis at a quarter of the machine's memory, between 256 MiB and 8 GiB", () => {
    expect(defaultRedisMaxmemory(16 * GIB)).toBe(4 * GIB);
    expect(defaultRedisMaxmemory(24 * GIB + 12345)).toBe(6 * GIB);
    expect(defaultRedisMaxmemory(512 * MIB)).toBe(256 * MIB);
    expect(defaultRedisMaxmemory(256 * GIB)).toBe(8 * GIB);
    expect(defaultRedisMaxmemory(10 * GIB + 3) % MIB).toBe(0);
  });

  it("sizes it from a container's memory limit, not the host's, when the container has one", () => {
    // A container limited to 2 GiB on a 64 GiB host: a quarter of 2 GiB, not 8 GiB.
    expect(defaultRedisMaxmemory(machineMemoryBytes(64 * GIB, 2 * GIB))).toBe(512 * MIB);
    // No limit: undefined (Node 20), 0, or the cgroup's "max" as a huge number.
    expect(machineMemoryBytes(64 * GIB, undefined)).toBe(64 * GIB);
    expect(machineMemoryBytes(64 * GIB, 0)).toBe(64 * GIB);
    expect(machineMemoryBytes(64 * GIB, 2 ** 64)).toBe(64 * GIB);
  });

  it("defaults the queued-job ttl to the highest ttl and the CAS retention past signed URLs", () => {
    const env = parseEnv({});
    expect(env.DEFAULT_TTL_S).toBe(86_400);
    expect(env.CAS_RETENTION_S).toBe(86_400 + 3_600);
    expect(parseEnv({ OUTPUT_URL_TTL_S: "600" }).CAS_RETENTION_S).toBe(4_200);
    expect(parseEnv({ CAS_RETENTION_S: "0" }).CAS_RETENTION_S).toBe(0);
    expect(env.CAS_GC_GRACE_S).toBe(3_600);
    expect(env.REDIS_MEMORY_ADMIT_MAX).toBe(0.9);
    expect(() => parseEnv({ DEFAULT_TTL_S: "86401" })).toThrow(/DEFAULT_TTL_S/);
    expect(() => parseEnv({ REDIS_MEMORY_ADMIT_MAX: "0" })).toThrow(/REDIS_MEMORY_ADMIT_MAX/);
    expect(() => parseEnv({ CAS_GC_BATCH: "5000" })).toThrow(/CAS_GC_BATCH/);
  });

  it("parses used_memory, maxmemory and the policy from INFO memory", () => {
    const info =
      "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:16777216\r\nmaxmemory_policy:noeviction\r\n";
    expect(parseMemoryInfo(info)).toEqual({ usedBytes: MIB, maxBytes: 16 * MIB, policy: "noeviction" });
    expect(parseMemoryInfo("# Memory\r\n").maxBytes).toBe(0);
  });
});
