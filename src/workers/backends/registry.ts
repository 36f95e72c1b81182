// The configured backends of this worker process, each with its KServe client and health state.
import type { BackendConfig } from "../../config/backends.js";
import { createKserveClient, type KserveClient } from "./kserve-client.js";

export interface BackendEntry {
  readonly config: BackendConfig;
  readonly client: KserveClient;
  /** Last health check: the server and the models it serves answered ready. */
  healthy: boolean;
  /** Models (family/model) found not ready at the last check. */
  notReady: ReadonlySet<string>;
}

export interface Registry {
  list(): readonly BackendEntry[];
  get(id: string): BackendEntry | undefined;
  /** Execution timeout of a model on a backend: its per-model timeout, else the backend's. */
  timeoutFor(id: string, familyModel: string): number;
  close(): Promise<void>;
}

export function createRegistry(
  configs: readonly BackendConfig[],
  makeClient: (c: BackendConfig) => KserveClient = (c) =>
    createKserveClient(c.url, { connections: c.capacity + 4 }),
): Registry {
  const entries = configs.map<BackendEntry>((config) => ({
    config,
    client: makeClient(config),
    healthy: true,
    notReady: new Set(),
  }));
  const byId = new Map(entries.map((e) => [e.config.id, e]));
  return {
    list: () => entries,
    get: (id) => byId.get(id),
    timeoutFor(id, familyModel) {
      const c = byId.get(id)?.config;
      if (!c) return 120_000;
      return c.timeouts[familyModel] ?? c.timeout_ms;
    },
    async close() {
      await Promise.all(entries.map((e) => e.client.close()));
    },
  };
}
