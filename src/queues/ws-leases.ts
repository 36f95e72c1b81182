// The per-tenant WebSocket connection limit across API processes: each open connection holds a lease
// in its customer's set (ws_lease.lua takes and renews it atomically against the limit), renewed by
// the process that holds the connection and dropped when it closes; a process that dies leaves leases
// that lapse within one lease time.
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys } from "./keys.js";
import { defineScripts, type ScriptOptions } from "./scripts.js";

export interface WsLeaseResult {
  /** The lease is held (taken, or renewed). */
  readonly held: boolean;
  /** The customer's live connections (this one included when held). */
  readonly live: number;
}

export interface WsLeases {
  /**
   * Takes or renews connection `connId`'s lease for `leaseMs` from `nowMs`, unless the customer
   * already holds `limit` live connections without it.
   */
  hold(
    customer: string,
    connId: string,
    nowMs: number,
    leaseMs: number,
    limit: number,
  ): Promise<WsLeaseResult>;
  /** Gives the lease back (the connection closed). */
  release(customer: string, connId: string): Promise<void>;
}

export function createWsLeases(redis: RedisClient, prefix: string, scripts: ScriptOptions = {}): WsLeases {
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix, scripts);
  return {
    async hold(customer, connId, nowMs, leaseMs, limit) {
      const [held, live] = (await run("ws_lease", keys.wsConnections(customer), [
        customer,
        connId,
        nowMs,
        Math.max(1, Math.ceil(leaseMs)),
        limit,
      ])) as [number, number];
      return { held: Number(held) === 1, live: Number(live) };
    },
    async release(customer, connId) {
      await redis.zrem(keys.wsConnections(customer), connId);
    },
  };
}
