// Sentinel's failover announcement (`+switch-master`) for one process: every connection still on the
// replaced primary is dropped and made again, so it asks the sentinels for the new one. Without it a
// connection to a primary that hangs rather than dies (a frozen VM, a paused container) would wait on
// it for ever: its socket stays open and nothing closes it (docs/decisions.md "Redis high availability").
import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { keepSubscriptions } from "./kept-subscriptions.js";
import type { HostPort } from "./redis.js";

export interface FailoverWatchOptions {
  readonly sentinels: readonly HostPort[];
  /** The primary's name (`sentinel monitor <name> …`). */
  readonly name: string;
  readonly sentinelPassword?: string;
  /** TLS options of the sentinel connections (undefined: plain TCP). */
  readonly sentinelTls?: RedisOptions["tls"];
  /** The connections to watch over: those of the process that are open now. */
  readonly clients: () => Iterable<Redis>;
  readonly retryStrategy: (times: number) => number;
  readonly logger?: Logger;
}

export interface FailoverWatch {
  close(): Promise<void>;
}

/** `+switch-master` message: `<name> <old ip> <old port> <new ip> <new port>`. */
export function parseSwitchMaster(message: string): { name: string; to: HostPort } | undefined {
  const [name, , , ip, port] = message.split(" ");
  if (name === undefined || ip === undefined || port === undefined || !/^\d+$/.test(port)) return undefined;
  return { name, to: { host: ip, port: Number(port) } };
}

/**
 * Subscribes to `+switch-master` on every sentinel (any one that is up suffices; duplicates change
 * nothing). On a failover of `name`, each watched connection that is connected (`ready` or in its
 * handshake) to another server than the new primary is dropped with a reconnect. A connection that is
 * resolving the primary through the sentinels (`connecting`) is left alone: it will reach the new one,
 * and dropping it there would end it for good (an ioredis quirk: its SentinelConnector gives up a
 * connect that was disconnected midway).
 */
export function watchFailovers(o: FailoverWatchOptions): FailoverWatch {
  const subscribers = o.sentinels.map((s) => {
    const c = new Redis({
      host: s.host,
      port: s.port,
      ...(o.sentinelPassword === undefined ? {} : { password: o.sentinelPassword }),
      ...(o.sentinelTls === undefined ? {} : { tls: o.sentinelTls }),
      connectionName: "rg-failover-watch",
      retryStrategy: o.retryStrategy,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      // A sentinel has no INFO keyspace to wait for; its replies are plain.
      enableReadyCheck: false,
      // subscribed again after a reconnect by keepSubscriptions (observed), not by ioredis
      autoResubscribe: false,
    });
    c.on("error", () => undefined);
    keepSubscriptions(c);
    c.on("message", (_channel: string, message: string) => onSwitch(message));
    c.subscribe("+switch-master").catch(() => undefined);
    return c;
  });
  const onSwitch = (message: string) => {
    const sw = parseSwitchMaster(message);
    if (sw?.name !== o.name) return;
    let dropped = 0;
    for (const client of o.clients()) {
      if (client.status !== "ready" && client.status !== "connect") continue;
      const stream = (client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } })
        .stream;
      if (stream?.remoteAddress === sw.to.host && stream.remotePort === sw.to.port) continue;
      client.disconnect(true);
      dropped++;
    }
    if (dropped > 0) {
      o.logger?.warn(
        { primary: `${sw.to.host}:${sw.to.port}`, connections: dropped },
        "redis failover announced by sentinel: reconnecting to the new primary",
      );
    }
  };
  return {
    async close() {
      await Promise.all(
        subscribers.map(async (c) => {
          try {
            if (c.status === "ready") await c.quit();
          } catch {
            // already gone
          }
          c.disconnect();
        }),
      );
    },
  };
}
