// A real clickhouse-server for one test file (the Debian 18.16 package in CI, found as `start` finds
// it): a free loopback port, a throwaway folder, killed by the file's afterAll (and by this process's
// exit at the latest). Tests isolate themselves by database name. `kill` and `restart` keep the port
// and the data, as a server that goes away for a while and comes back.
import { mkdtempSync, rmSync } from "node:fs";
import { createClient } from "@clickhouse/client";
import type { InferenceEvent } from "../../src/core/analytics-event.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomAlnum } from "../../src/core/ids.js";
import { createAnalyticsStore, type AnalyticsStore } from "../../src/infra/clickhouse-analytics.js";
import { EVENTS_TABLE } from "../../src/infra/clickhouse-schema.js";
import { spawnClickHouseServer, type ClickHouseServer } from "../../src/infra/clickhouse-server.js";

export interface TestClickHouse {
  readonly url: string;
  readonly port: number;
  readonly username: "default";
  readonly password: string;
  /** The current server's pid (changes after {@link TestClickHouse.restart}). */
  readonly pid: number;
  /** A database name no other test uses. */
  uniqueDatabase(): string;
  /** A store on this server (closed by {@link TestClickHouse.stop}). */
  store(database: string): AnalyticsStore;
  /** The environment a gateway process needs to use this server. */
  env(database: string): Record<string, string>;
  /**
   * Stores `rows` in `database`'s events table as an insert a kill cut short can leave them: in the
   * table, and nothing after the table's own write has run (no materialized view saw them, no rollup
   * refresh followed). The rows go into a copy of the table, whose partitions are then attached to
   * it (`ATTACH PARTITION … FROM`: parts added as they are, no insert, so nothing is triggered).
   */
  storeCutShort(database: string, rows: readonly InferenceEvent[]): Promise<void>;
  /**
   * {@link TestClickHouse.storeCutShort} while the server is away (after {@link TestClickHouse.kill}):
   * through a server started on the same data on another port for the purpose and stopped again, so
   * processes using `url` never see it answer.
   */
  storeCutShortWhileAway(database: string, rows: readonly InferenceEvent[]): Promise<void>;
  /** SIGKILL: the server is gone, its port closed, its data kept. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data (after a kill); resolves once it answers. */
  restart(): Promise<void>;
  /** Closes the stores, stops the server and removes its folder. */
  stop(): Promise<void>;
}

const live = new Set<ClickHouseServer>();

/** See {@link TestClickHouse.storeCutShort}. */
async function cutShort(
  server: Pick<ClickHouseServer, "url" | "password">,
  database: string,
  rows: readonly InferenceEvent[],
): Promise<void> {
  const raw = createClient({ url: server.url, username: "default", password: server.password });
  const staging = `${database}.cut_${randomAlnum(8).toLowerCase()}`;
  try {
    await raw.command({ query: `CREATE TABLE ${staging} AS ${database}.${EVENTS_TABLE}` });
    await raw.insert({
      table: staging,
      values: rows.map((r) => ({ ...r, inserted_at: r.completed_at })),
      format: "JSONEachRow",
    });
    const months = new Set(rows.map((r) => new Date(r.completed_at * 1000).toISOString().slice(0, 7)));
    for (const month of months) {
      await raw.command({
        query: `ALTER TABLE ${database}.${EVENTS_TABLE} ATTACH PARTITION ${month.replace("-", "")} FROM ${staging}`,
      });
    }
    await raw.command({ query: `DROP TABLE ${staging}` });
  } finally {
    await raw.close();
  }
}
let exitHook = false;

export async function startTestClickHouse(): Promise<TestClickHouse> {
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const s of live) void s.kill("SIGKILL");
    });
  }
  const dir = mkdtempSync(join(tmpdir(), "rg-test-ch-"));
  const launch = async (port?: number) => {
    const s = await spawnClickHouseServer({ dir, ...(port === undefined ? {} : { port }) });
    live.add(s);
    return s;
  };
  let server = await launch();
  const stores: AnalyticsStore[] = [];
  const kill = async () => {
    await server.kill("SIGKILL");
    live.delete(server);
  };
  return {
    url: server.url,
    port: server.port,
    username: "default",
    password: server.password,
    get pid() {
      return server.pid;
    },
    uniqueDatabase: () => `t_${randomAlnum(10).toLowerCase()}`,
    store(database) {
      const s = createAnalyticsStore({
        url: server.url,
        username: "default",
        password: server.password,
        database,
        requestTimeoutMs: 5_000,
      });
      stores.push(s);
      return s;
    },
    env(database) {
      return {
        CLICKHOUSE_URL: server.url,
        CLICKHOUSE_USER: "default",
        CLICKHOUSE_PASSWORD: server.password,
        CLICKHOUSE_DATABASE: database,
      };
    },
    storeCutShort: (database, rows) => cutShort(server, database, rows),
    async storeCutShortWhileAway(database, rows) {
      const elsewhere = await spawnClickHouseServer({ dir });
      live.add(elsewhere);
      try {
        await cutShort(elsewhere, database, rows);
      } finally {
        await elsewhere.stop();
        live.delete(elsewhere);
      }
    },
    kill,
    async restart() {
      await kill();
      server = await launch(server.port);
    },
    async stop() {
      await Promise.all(stores.map((s) => s.close()));
      await server.stop();
      live.delete(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
