// A pub/sub connection's channels, subscribed again after every reconnect by us instead of by ioredis:
// its own resubscription (`autoResubscribe`) sends SUBSCRIBE without observing the promise. When the
// connection is closed while the ready check of a reconnect is being answered, the client still turns
// ready on that answer, the SUBSCRIBE waits in the offline queue and is rejected "Connection is
// closed." with nobody listening: an unhandled rejection (a process exit on Node's default). ioredis
// 6.1.0 observes it (redis/ioredis#2187); this project pins 6.0.0.
import type { Redis } from "ioredis";

type Send = (...channels: string[]) => Promise<unknown>;

/** The (un)subscribe pairs kept: channels and patterns. Shard channels (SSUBSCRIBE) are not used. */
const KINDS = [
  ["subscribe", "unsubscribe"],
  ["psubscribe", "punsubscribe"],
] as const;

/**
 * Keeps `client`'s subscriptions across lost connections: every channel and pattern it subscribed to
 * and did not unsubscribe from is subscribed to again each time it is ready after a closed
 * connection, with the outcome observed. A resubscription that fails because the connection was lost
 * again is made again on the next ready; a connection closed for good rejects it, and that rejection
 * is dropped here. `client` must be made with `autoResubscribe: false` (else both subscribe).
 *
 * Only string arguments are tracked (no Buffers, no callbacks: this codebase uses neither); a call
 * without channels unsubscribes from all.
 */
export function keepSubscriptions(client: Redis): void {
  let lost = false;
  const kept: (readonly [Send, Set<string>])[] = [];
  for (const [on, off] of KINDS) {
    const wanted = new Set<string>();
    const subscribe = (client[on] as Send).bind(client);
    const unsubscribe = (client[off] as Send).bind(client);
    Object.assign(client, {
      [on]: (...channels: string[]) => {
        for (const c of channels) wanted.add(c);
        return subscribe(...channels);
      },
      [off]: (...channels: string[]) => {
        if (channels.length === 0) wanted.clear();
        for (const c of channels) wanted.delete(c);
        return unsubscribe(...channels);
      },
    });
    kept.push([subscribe, wanted]);
  }
  client.on("close", () => {
    lost = true;
  });
  client.on("ready", () => {
    if (!lost) return;
    lost = false;
    for (const [subscribe, wanted] of kept) {
      if (wanted.size > 0) subscribe(...wanted).catch(() => undefined);
    }
  });
}
