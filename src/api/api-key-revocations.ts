// Every API process listens on the revocation channel and drops a revoked key from its cache at once;
// the verifier's re-check bounds what a lost message can cost (API_KEY_RECHECK_MS).
import type { Redis } from "ioredis";
import { API_KEY_PREFIX_RE } from "../core/api-key.js";
import type { ApiKeyVerifier } from "./api-key-auth.js";

export interface RevocationListener {
  /** Subscribes; resolves once Redis confirmed the subscription. */
  start(): Promise<void>;
  /** Stops listening (bounded: never waits on a Redis that is gone). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Listens on `channel` with `subscriber` (a connection of its own, in subscriber mode from then on):
 * each message is a key prefix, dropped from `verifier`'s cache. When the connection comes back after
 * a loss, the whole cache is dropped, since messages sent meanwhile are gone.
 */
export function listenForRevocations(
  subscriber: Redis,
  channel: string,
  verifier: Pick<ApiKeyVerifier, "revoked" | "clear">,
): RevocationListener {
  let started = false;
  let stopped = false;
  const onMessage = (ch: string, message: string) => {
    if (ch === channel && API_KEY_PREFIX_RE.test(message)) verifier.revoked(message);
  };
  const onReady = () => {
    if (started) verifier.clear();
  };
  return {
    async start() {
      subscriber.on("message", onMessage);
      subscriber.on("ready", onReady);
      await subscriber.subscribe(channel);
      started = true;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      subscriber.off("message", onMessage);
      subscriber.off("ready", onReady);
      if (subscriber.status !== "ready") return;
      await Promise.race([
        subscriber.unsubscribe(channel).catch(() => undefined),
        new Promise((r) => setTimeout(r, 1_000).unref()),
      ]);
    },
  };
}
