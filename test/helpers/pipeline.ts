// The pipeline role in this test process beside a TestSystem (system.ts): the same role function as
// `start --roles pipeline`, on the system's settings, Redis and DATA_DIR, with its own runtime (closed
// before the system).
import { join } from "node:path";
import { pino } from "pino";
import { createRedisConnector } from "../../src/infra/redis-connector.js";
import { systemClock } from "../../src/core/time.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { loadSettings } from "../../src/main/settings.js";
import { processMetricsFor } from "../../src/main/metrics.js";
import { startPipelineRole } from "../../src/main/pipeline-role.js";
import { createRuntime } from "../../src/main/runtime.js";
import type { TestSystem } from "./system.js";

export interface TestPipeline {
  close(): Promise<void>;
}

/**
 * Starts a pipeline role on `sys`'s Redis and DATA_DIR; `env` adds to (or overrides) the settings the
 * system was started with (`source`: the same variables startSystem was given).
 */
export async function startTestPipeline(
  sys: TestSystem,
  source: Readonly<Record<string, string>>,
): Promise<TestPipeline> {
  const settings = loadSettings({
    DATA_DIR: sys.dataDir,
    REDIS_URL: sys.settings.env.REDIS_URL,
    REDIS_PREFIX: sys.redis.prefix,
    LOG_LEVEL: "silent",
    ...source,
  });
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const runtime = createRuntime(logger);
  try {
    await startPipelineRole({
      settings,
      keys: sys.keys,
      redisConnector: createRedisConnector(
        { kind: "url", url: settings.env.REDIS_URL! },
        { commandTimeoutMs: settings.env.REDIS_COMMAND_TIMEOUT_MS, logger },
      ),
      runtime,
      logger,
      clock: systemClock,
      blobs: createFsBlobStore({ root: join(sys.dataDir, "cas") }),
      metrics: processMetricsFor(["pipeline"]),
    });
  } catch (err) {
    await runtime.shutdown("pipeline setup failed");
    throw err;
  }
  return { close: () => runtime.shutdown("test done") };
}
