// The backends as the scheduler's scripts see them: one view per backend from its health, its model
// readiness and this process's breaker, built anew only when one of those changed (the scheduler
// encodes each new array once, so an unchanged one costs nothing per call).
import type { BackendView } from "../queues/scheduler.js";
import type { Breakers } from "./backends/breakers.js";
import type { Registry } from "./backends/registry.js";

/** Returns the current views: the same array as long as nothing changed. */
export function createBackendViews(
  registry: Pick<Registry, "list">,
  breakers?: Pick<Breakers, "admits">,
): () => readonly BackendView[] {
  let viewsKey = "";
  let viewsCache: BackendView[] = [];
  return () => {
    const entries = registry.list();
    const key = entries
      .map(
        (e) =>
          `${e.healthy ? 1 : 0}${breakers && !breakers.admits(e.config.id) ? 0 : 1}${[...e.notReady].join(",")}`,
      )
      .join("|");
    if (key !== viewsKey) {
      viewsKey = key;
      viewsCache = entries.map((e) => ({
        id: e.config.id,
        cap: e.config.capacity,
        engine: e.config.engine,
        models: e.notReady.size === 0 ? e.config.models : e.config.models.filter((m) => !e.notReady.has(m)),
        ok: e.healthy && (breakers ? breakers.admits(e.config.id) : true),
      }));
    }
    return viewsCache;
  };
}
