// One rollup refresh at a time per analytics worker, shared by the batches that ask meanwhile
// (docs/decisions.md "Analytics", "Cost"). A refresh reads every stored row of its keys' hours, so
// its cost grows through the hour; one per batch would cost the square of an hour's batches. Here a
// batch that asks while a refresh runs waits for the next one, which starts when the running one
// ends — after the batch's insert, so it counts the batch's rows (a refresh already running may have
// started before that insert ended, so it cannot stand in) — and takes every key asked for since.
import { toError } from "../core/errors.js";
import type { AnalyticsSink, RollupKey } from "../core/analytics-event.js";

/** Resolves once a refresh of `keys` that started after the call has succeeded; rejects with its error. */
export type RollupRefresh = (keys: readonly RollupKey[]) => Promise<void>;

export function coalescedRefresh(sink: Pick<AnalyticsSink, "refreshRollup">): RollupRefresh {
  type Round = { keys: Map<string, RollupKey>; waiters: { done: () => void; failed: (e: Error) => void }[] };
  let next: Round | undefined;
  let running = false;

  async function drain(): Promise<void> {
    running = true;
    while (next !== undefined) {
      const round = next;
      next = undefined;
      try {
        await sink.refreshRollup([...round.keys.values()]);
        for (const w of round.waiters) w.done();
      } catch (err) {
        const error = toError(err);
        for (const w of round.waiters) w.failed(error);
      }
    }
    running = false;
  }

  return (keys) => {
    if (keys.length === 0) return Promise.resolve();
    return new Promise<void>((done, failed) => {
      next ??= { keys: new Map(), waiters: [] };
      for (const k of keys) next.keys.set(JSON.stringify([k.hour_ms, k.customer_id, k.model]), k);
      next.waiters.push({ done, failed });
      if (!running) void drain();
    });
  };
}
