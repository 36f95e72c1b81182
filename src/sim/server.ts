// Starts and stops the simulated GPU backend: a KServe v2 HTTP server on a loopback port.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import type { Logger } from "pino";
import { createSimApp, type WorkTracker } from "./app.js";
import { applyConfigPatch, type SimConfig } from "./config.js";
import { createMediaCache } from "./media-cache.js";
import { createStatsRecorder, type SimStats } from "./stats.js";

export type { SimStats } from "./stats.js";

/** A running simulated backend. */
export interface SimServer {
  /** Base URL, e.g. `http://127.0.0.1:38111` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** The current settings. */
  config(): SimConfig;
  /**
   * Changes some settings; calls admitted from now on use them (running ones keep their latency).
   * @throws RangeError on an out-of-range value (the config is then unchanged).
   */
  setConfig(patch: Partial<SimConfig>): void;
  /** A snapshot of the counters. */
  stats(): SimStats;
  /** Zeroes the counters (`active` is live and stays). */
  resetStats(): void;
  /**
   * Stops listening, aborts every generation (hung ones included), kills any ffmpeg, drops every
   * connection and resolves when all of it is gone. Idempotent: later calls return the same promise.
   */
  close(): Promise<void>;
}

/** Options of {@link startSimServer}. */
export interface SimServerOptions {
  readonly config: SimConfig;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Calls at info (never prompts; those go to debug), failures at error. */
  readonly logger?: Logger;
  /** Uniform [0, 1) source for fault injection; default Math.random. */
  readonly random?: () => number;
  /**
   * Bearer token for `PUT /sim/config` and `POST /sim/stats/reset` (SIM_CONFIG_TOKEN); without it
   * those answer loopback clients only, whatever `host` is.
   */
  readonly controlToken?: string;
}

/**
 * Starts the simulated backend (API.md §4–5).
 * @throws RangeError on an invalid config; the listen error (e.g. EADDRINUSE) when the port is taken.
 */
export async function startSimServer(opts: SimServerOptions): Promise<SimServer> {
  let config = applyConfigPatch(opts.config, {});
  const host = opts.host ?? "127.0.0.1";
  const logger = opts.logger;
  const stats = createStatsRecorder();
  const cache = createMediaCache();
  const controllers = new Set<AbortController>();
  const pending = new Set<Promise<unknown>>();
  let closing = false;

  const tracker: WorkTracker = {
    closing: () => closing,
    open() {
      const controller = new AbortController();
      if (closing) controller.abort(new Error("sim server closing"));
      controllers.add(controller);
      return controller;
    },
    release(controller) {
      controllers.delete(controller);
    },
    hold(work) {
      const settled = work.then(
        () => undefined,
        () => undefined,
      );
      pending.add(settled);
      void settled.then(() => pending.delete(settled));
    },
  };

  const setConfig = (patch: Partial<SimConfig>): void => {
    config = applyConfigPatch(config, patch);
  };
  const app = createSimApp({
    config: () => config,
    setConfig,
    stats,
    cache,
    random: opts.random ?? Math.random,
    tracker,
    logger,
    ...(opts.controlToken === undefined ? {} : { controlToken: opts.controlToken }),
  });

  const server = createAdaptorServer({ fetch: app.fetch, hostname: host }) as Server;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  server.on("error", (err) => logger?.error({ err }, "sim server error"));
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  logger?.info({ url, config }, "sim backend listening");

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    closing = true;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const controller of controllers) controller.abort(new Error("sim server closing"));
    while (pending.size > 0) await Promise.all([...pending]);
    // One turn of the event loop lets the answers of the ended calls reach their sockets.
    await new Promise((resolve) => setImmediate(resolve));
    server.closeAllConnections();
    await stopped;
    cache.clear();
    logger?.info({ url }, "sim backend closed");
  };

  return {
    url,
    port,
    config: () => config,
    setConfig,
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),
    close: () => (closed ??= close()),
  };
}
