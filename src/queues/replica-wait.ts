// Redis WAIT for the API's acknowledgements (REDIS_WAIT_REPLICAS, REDIS_WAIT_MS; docs/decisions.md
// "Redis high availability"): how many replicas hold everything this primary had written when the
// caller asked.
import type { RedisClient } from "../infra/redis-client.js";
import { createKeys } from "./keys.js";

/**
 * Resolves with the number of replicas (at most the number asked for) that acknowledged every write
 * the primary had applied when it was called, within the timeout; rejects when Redis cannot be asked
 * (disconnected, timed out).
 */
export type ReplicaWait = () => Promise<number>;

export interface ReplicaWaitOptions {
  /**
   * A connection of its own: WAIT blocks its connection until the replicas answer or the timeout
   * passes, so it must not hold up the API's other commands.
   */
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Replicas to wait for (WAIT numreplicas), at least 1. */
  readonly replicas: number;
  /** WAIT's timeout (ms), at least 1 (WAIT 0 would block for ever). */
  readonly timeoutMs: number;
}

/**
 * WAIT counts the replication of the writes made on its own connection, so each WAIT here follows a
 * write of its own on that connection (INCR of `replicaMark`, sent with it): replication is one
 * ordered stream, so a replica that has that write has every write the primary applied before it —
 * the jobs of every caller whose admission had been answered when it called. Callers that arrive while
 * a WAIT is out share the next one: one WAIT in flight at a time, however many admissions it covers.
 */
export function createReplicaWait(o: ReplicaWaitOptions): ReplicaWait {
  if (!Number.isInteger(o.replicas) || o.replicas < 1) throw new Error("replicas: an integer ≥ 1");
  if (!Number.isInteger(o.timeoutMs) || o.timeoutMs < 1) throw new Error("timeoutMs: an integer ≥ 1");
  const mark = createKeys(o.prefix).replicaMark;
  let inFlight = false;
  let waiting: { resolve: (n: number) => void; reject: (err: unknown) => void }[] = [];

  const send = () => {
    const batch = waiting;
    waiting = [];
    inFlight = true;
    // One pipeline: both commands go out in one write, on one socket, in this order.
    const replies = o.redis.pipeline().incr(mark).wait(o.replicas, o.timeoutMs).exec();
    replies
      .then((r) => {
        const [markReply, waitReply] = r ?? [];
        const err = markReply?.[0] ?? waitReply?.[0];
        if (err) throw err;
        if (waitReply === undefined) throw new Error("WAIT reply missing");
        const acked = Number(waitReply[1]);
        for (const c of batch) c.resolve(acked);
      })
      .catch((err: unknown) => {
        for (const c of batch) c.reject(err);
      })
      .finally(() => {
        inFlight = false;
        if (waiting.length > 0) send();
      });
  };

  return () =>
    new Promise<number>((resolve, reject) => {
      waiting.push({ resolve, reject });
      if (!inFlight) send();
    });
}
