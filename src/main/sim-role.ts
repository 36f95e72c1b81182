// The sim role: the simulated GPU backend (KServe v2) configured from SIM_* variables.
import type { Logger } from "pino";
import { startSimServer, type SimServer } from "../sim/server.js";
import type { Env } from "../config/env.js";
import { publishRunFile } from "./run-files.js";
import type { Runtime } from "./runtime.js";

export async function startSimRole(ctx: {
  env: Env;
  dataDir: string;
  runtime: Runtime;
  logger: Logger;
  /** Port when SIM_PORT is unset: 0 (free) inside `start`, 8001 standalone. */
  defaultPort: number;
}): Promise<SimServer> {
  const sim = await startSimServer({
    config: {
      stepMs: ctx.env.SIM_STEP_MS,
      capacity: ctx.env.SIM_CAPACITY,
      failRate: ctx.env.SIM_FAIL_RATE,
      hangRate: ctx.env.SIM_HANG_RATE,
      down: false,
    },
    port: ctx.env.SIM_PORT ?? ctx.defaultPort,
    host: ctx.env.HOST,
    ...(ctx.env.SIM_CONFIG_TOKEN === undefined ? {} : { controlToken: ctx.env.SIM_CONFIG_TOKEN }),
    logger: ctx.logger.child({ role: "sim" }),
  });
  ctx.runtime.defer("simulated backend", () => sim.close());
  // Released first: the url file goes before the server does.
  publishRunFile(ctx.runtime, ctx.dataDir, "sim.url", sim.url);
  return sim;
}
