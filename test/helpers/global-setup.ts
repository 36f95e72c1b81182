// Starts one real redis-server for the whole test run (project redis.conf, free loopback port,
// throwaway data dir) and stops it afterwards. Tests isolate themselves by key prefix.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { spawnRedisServer, type RedisServer } from "../../src/infra/embedded-redis.js";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

let server: RedisServer | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), "rg-test-redis-"));
  server = await spawnRedisServer({
    confPath: resolve("redis.conf"),
    dir,
    extraArgs: ["--appendfsync", "no"],
  });
  project.provide("redisUrl", server.url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
