// What a Redis connection of the gateway is — one server's (`Redis`, also behind Sentinel) or a Redis
// Cluster's (`Cluster`) — and the few operations that differ between them: server-wide reads go to
// every master of a Cluster, not to one node picked at random (docs/decisions.md "Redis Cluster").
import type { Cluster, Redis } from "ioredis";

/**
 * A connection as every store, queue and role is given it. Both kinds take the same commands, scripts
 * and pipelines; a Cluster routes each by its key's slot (every key of ours carries the prefix's
 * hash tag, so one prefix is one slot).
 */
export type RedisClient = Redis | Cluster;

/** True for a Cluster connection. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/**
 * The servers that hold data: the one server, or every master of a Cluster as the client last read
 * the slot table (connections the Cluster client made and owns: never close them).
 */
export function dataNodes(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes("master") : [client];
}

/**
 * `INFO <section>` of every data node (one reply for a single server), in {@link dataNodes} order.
 * @throws the first node's error when any fails.
 */
export async function infoOfEach(client: RedisClient, section: string): Promise<string[]> {
  const nodes = dataNodes(client);
  if (nodes.length === 0) throw new Error("Redis Cluster: no master known (cluster unreachable)");
  return Promise.all(nodes.map((n) => n.info(section)));
}
