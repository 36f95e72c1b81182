// Every API process listens on the revocation channel and drops a revoked key from its cache at once.
// While the channel is known to deliver (subscribed, and answering a ping within API_KEY_RECHECK_MS),
// the verifier may serve cached answers for API_KEY_TRUST_MS; otherwise for API_KEY_RECHECK_MS.
import type { RedisClient } from "../infra/redis-client.js";
import { API_KEY_PREFIX_RE } from "../core/api-key.js";
import type { Clock } from "../core/time.js";
import type { ApiKeyVerifier } from "./api-key-auth.js";

export interface RevocationListener {
  /** Subscribes; resolves once Redis confirmed the subscription. */
  start(): Promise<void>;
  /** Stops listening (bounded: never waits on a Redis that is gone). Idempotent. */
  stop(): Promise<void>;
}

export interface RevocationListenerOptions {
  /** A connection of its own (in subscriber mode from then on). */
  readonly subscriber: RedisClient;
  readonly channel: string;
  readonly verifier: Pick<ApiKeyVerifier, "revoked" | "clear" | "channel">;
  readonly clock: Clock;
  /**
   * The channel counts as up only while a ping came back less than this ago (API_KEY_RECHECK_MS);
   * pings go out every half of it.
   */
  readonly recheckMs: number;
}

/**
 * Listens on `channel`: each message is a key prefix, dropped from the verifier's cache. The channel
 * is up (the verifier's long cache age) from a confirmed subscription while pings keep coming back;
 * it goes down when the connection closes or a ping has not come back within `recheckMs`, so a
 * connection that died silently costs at most 1.5 × `recheckMs` before answers are read again. Going
 * up again drops the whole cache: messages sent while it was down may be lost.
 */
export function listenForRevocations(o: RevocationListenerOptions): RevocationListener {
  const { subscriber, channel, verifier, clock, recheckMs } = o;
  let started = false;
  let stopped = false;
  let up = false;
  let subscribed = false;
  let lastPong = 0;
  let pinging = false;
  let timer: NodeJS.Timeout | undefined;

  /** Whether the channel was down since it was first up (messages may have been lost meanwhile). */
  let lapsed = false;
  const setUp = (next: boolean): void => {
    if (next === up) return;
    up = next;
    if (!next && started) lapsed = true;
    // Back up after a lapse: what was cached while messages could be lost is read again.
    if (next && lapsed) verifier.clear();
    verifier.channel(next);
  };
  const onMessage = (ch: string, message: string) => {
    if (ch === channel && API_KEY_PREFIX_RE.test(message)) verifier.revoked(message);
  };
  const onClose = () => {
    subscribed = false;
    setUp(false);
  };
  const onReady = () => {
    if (!started || stopped) return;
    // The connection subscribes again by itself (infra/kept-subscriptions.ts); this waits for Redis
    // to confirm it before trusting it.
    verifier.clear();
    subscriber.subscribe(channel).then(
      () => {
        subscribed = true;
        lastPong = clock();
        setUp(true);
      },
      () => undefined,
    );
  };
  const beat = () => {
    if (clock() - lastPong > recheckMs) setUp(false);
    if (pinging || subscriber.status !== "ready") return;
    pinging = true;
    subscriber.ping().then(
      () => {
        pinging = false;
        lastPong = clock();
        if (subscribed && !stopped) setUp(true);
      },
      () => {
        pinging = false;
      },
    );
  };

  return {
    async start() {
      subscriber.on("message", onMessage);
      subscriber.on("ready", onReady);
      subscriber.on("close", onClose);
      await subscriber.subscribe(channel);
      started = true;
      subscribed = true;
      lastPong = clock();
      setUp(true);
      timer = setInterval(beat, Math.max(10, Math.floor(recheckMs / 2)));
      timer.unref();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      setUp(false);
      subscriber.off("message", onMessage);
      subscriber.off("ready", onReady);
      subscriber.off("close", onClose);
      if (subscriber.status !== "ready") return;
      await Promise.race([
        subscriber.unsubscribe(channel).catch(() => undefined),
        new Promise((r) => setTimeout(r, 1_000).unref()),
      ]);
    },
  };
}
