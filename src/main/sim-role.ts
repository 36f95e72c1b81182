// The sim role: the simulated GPU backend (KServe v2) configured from SIM_* variables.
import { mkdirSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { startSimServer, type SimServer } from "../sim/server.js";
import type { Env } from "../config/env.js";
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
    logger: ctx.logger.child({ role: "sim" }),
  });
  const runDir = join(ctx.dataDir, "run");
  mkdirSync(runDir, { recursive: true });
  const urlFile = join(runDir, "sim.url");
  writeFileSync(urlFile, sim.url);
  ctx.runtime.defer("simulated backend", async () => {
    rmSync(urlFile, { force: true });
    await sim.close();
  });
  return sim;
}
