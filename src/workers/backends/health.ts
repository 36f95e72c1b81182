// Health polling of the backends: GET /v2/health/ready, then /v2/models/{m}/ready for each served
// model. A backend that is not ready gets no work from this process until a later poll says so;
// per-model readiness narrows what it is offered.
import type { Logger } from "pino";
import { kserveModelName, parseFamilyModel } from "../../core/model-route.js";
import type { Registry } from "./registry.js";

export interface HealthPoller {
  /** One round over every backend (also run at start). */
  checkAll(): Promise<void>;
  start(intervalMs: number): void;
  stop(): void;
  /** Marks a backend unhealthy at once (e.g. a refused connection) until the next successful poll. */
  markDown(backendId: string): void;
  onRecovered(listener: (backendId: string) => void): void;
}

export function createHealthPoller(registry: Registry, logger: Logger, timeoutMs: number): HealthPoller {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const recovered: ((id: string) => void)[] = [];

  async function check(id: string): Promise<void> {
    const entry = registry.get(id);
    if (!entry) return;
    const signal = AbortSignal.timeout(timeoutMs);
    let ready = false;
    const notReady = new Set<string>();
    try {
      ready = await entry.client.ready({ signal });
      if (ready) {
        for (const m of entry.config.models) {
          if (m === "*") continue;
          const { family = "", model = "" } = parseFamilyModel(m) ?? {};
          const ok = await entry.client
            .modelReady(kserveModelName(family, model), { signal })
            .catch(() => false);
          if (!ok) notReady.add(m);
        }
      }
    } catch {
      ready = false;
    }
    const was = entry.healthy;
    entry.healthy = ready;
    entry.notReady = notReady;
    if (was !== ready) {
      logger[ready ? "info" : "warn"](
        { backend: id, healthy: ready },
        ready ? "backend ready" : "backend not ready",
      );
      if (ready) for (const l of recovered) l(id);
    }
  }

  const checkAll = () => {
    running ??= Promise.all(registry.list().map((e) => check(e.config.id))).then(
      () => {
        running = undefined;
      },
      () => {
        running = undefined;
      },
    );
    return running;
  };

  return {
    checkAll,
    start(intervalMs) {
      timer = setInterval(() => void checkAll(), intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
    markDown(id) {
      const e = registry.get(id);
      if (e?.healthy) {
        e.healthy = false;
        logger.warn({ backend: id }, "backend unreachable; paused until the next health check");
      }
    },
    onRecovered(listener) {
      recovered.push(listener);
    },
  };
}
