// One subscription per API process to the job event channel, fanned out to the SSE streams and
// sync waiters of this process. Messages only say "job X has a new event named N" ("<id> <name>",
// lib.lua add_event); readers fetch the events from the job's list in Redis, so a missed message
// costs latency, never an event.
import type { RedisClient } from "../infra/redis-client.js";
import type { SettleSignal } from "../core/settle-signal.js";
import { isTerminalEvent } from "../core/outbox.js";
import type { JobRecord } from "../core/job.js";

/**
 * What woke a listener: `ended` — the job reached a terminal state (a terminal event, or a terminal
 * settle by this process's worker); `event` — a job event that ends nothing (started, progress); `any`
 * — a message that does not say (a bare id: none on this channel today, read as "maybe ended").
 */
export type JobWake = "ended" | "event" | "any";

/** `job`: the job's record as a terminal settle of this process's worker left it (`ended` only). */
export type Listener = (wake: JobWake, job?: JobRecord) => void;

export interface EventHub {
  /** Calls `listener` whenever job `id` records an event; returns the unsubscribe function. */
  on(id: string, listener: Listener): () => void;
  /** Listeners registered (tests check that disconnects free them). */
  size(): number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** `channel`: the event channel, or one per pool (docs/decisions.md "Pools"; job ids differ across pools). */
export function createEventHub(
  subscriber: RedisClient,
  channel: string | readonly string[],
  settles?: Pick<SettleSignal, "subscribe">,
): EventHub {
  const channels: readonly string[] = typeof channel === "string" ? [channel] : channel;
  const listeners = new Map<string, Set<Listener>>();
  let unsubscribeSettles: (() => void) | undefined;
  const onMessage = (ch: string, message: string) => {
    if (!channels.includes(ch)) return;
    const space = message.indexOf(" ");
    if (space < 0) wake(message, "any");
    else wake(message.slice(0, space), isTerminalEvent(message.slice(space + 1)) ? "ended" : "event");
  };
  const wake = (id: string, why: JobWake, job?: JobRecord) => {
    const set = listeners.get(id);
    if (!set) return;
    for (const l of [...set]) l(why, job);
  };
  return {
    on(id, listener) {
      let set = listeners.get(id);
      if (!set) listeners.set(id, (set = new Set()));
      set.add(listener);
      return () => {
        const s = listeners.get(id);
        if (!s) return;
        s.delete(listener);
        if (s.size === 0) listeners.delete(id);
      };
    },
    size() {
      let n = 0;
      for (const s of listeners.values()) n += s.size;
      return n;
    },
    async start() {
      // A settle by this process's worker wakes its listeners before the message comes back.
      unsubscribeSettles ??= settles?.subscribe((id, job) => wake(id, "ended", job));
      subscriber.on("message", onMessage);
      await subscriber.subscribe(...channels);
    },
    async stop() {
      unsubscribeSettles?.();
      unsubscribeSettles = undefined;
      subscriber.off("message", onMessage);
      listeners.clear();
      // With Redis gone, the subscriber's offline queue would hold UNSUBSCRIBE (and the shutdown)
      // forever; the connection is closed right after this anyway.
      if (subscriber.status !== "ready") return;
      await Promise.race([
        subscriber.unsubscribe(...channels).catch(() => undefined),
        new Promise((r) => setTimeout(r, 1_000).unref()),
      ]);
    },
  };
}
