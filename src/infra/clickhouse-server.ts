// The embedded clickhouse-server of `render-gateway start` without CLICKHOUSE_URL (README
// "Analytics"): a `clickhouse-server` found on the PATH or in the sbin folders (Debian installs it in
// /usr/sbin), its data, configuration and logs under DATA_DIR/clickhouse (0700, files 0600), listening
// on a free loopback port with HTTP only, its user `default` behind a random password kept in that
// folder. Port and pid go to DATA_DIR/run, so a second start on the same DATA_DIR reuses the server
// (ClickHouse itself refuses a second server on one data path: the loser of a race waits for the
// winner's). The pieces (find, configure, spawn and wait) are exported for the tests and benchmarks.
import { spawn } from "node:child_process";
import { randomBytes, createHash } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { delimiter, join, resolve } from "node:path";
import { freeLoopbackPort, isAlive } from "./embedded-redis.js";
import { ensurePrivateDir } from "./private-dir.js";

/** Folders searched after the PATH: Debian's package puts the server in /usr/sbin. */
const SBIN = ["/usr/sbin", "/usr/local/sbin", "/sbin"];
/** How long a spawned server has to answer /ping (it takes ~0.2 s; a slow disk, more). */
const READY_TIMEOUT_MS = 20_000;

/** The `clickhouse-server` executable on `pathEnv` or in the sbin folders; undefined when none. */
export function findClickHouseServer(pathEnv: string | undefined = process.env.PATH): string | undefined {
  const dirs = [...(pathEnv ?? "").split(delimiter).filter(Boolean), ...SBIN];
  for (const dir of dirs) {
    const candidate = join(dir, "clickhouse-server");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Whether a ClickHouse on 127.0.0.1:`port` answers `GET /ping` with `Ok.` within `timeoutMs`. */
export async function pingClickHouse(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((res) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/ping", method: "GET", timeout: timeoutMs },
      (r) => {
        let body = "";
        r.setEncoding("utf8");
        r.on("data", (d: string) => (body += d.slice(0, 64)));
        r.on("end", () => res(r.statusCode === 200 && body.startsWith("Ok.")));
        r.on("error", () => res(false));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => res(false));
    req.end();
  });
}

/** Escapes text for an XML element's content. */
const xml = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * config.xml and users.xml of a server in `dir` on `port` (HTTP only, loopback only). The root is
 * `<yandex>`: 18.16 knows no other, and current servers still accept it.
 */
export function clickHouseConfig(
  dir: string,
  port: number,
  password: string,
): { config: string; users: string } {
  const d = (sub: string) => xml(join(dir, sub) + "/");
  const config = `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>${xml(join(dir, "log", "server.log"))}</log>
    <errorlog>${xml(join(dir, "log", "error.log"))}</errorlog>
    <size>10M</size>
    <count>3</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${port}</http_port>
  <path>${d("data")}</path>
  <tmp_path>${d("tmp")}</tmp_path>
  <user_files_path>${d("user_files")}</user_files_path>
  <format_schema_path>${d("format_schemas")}</format_schema_path>
  <users_config>${xml(join(dir, "users.xml"))}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`;
  const sha = createHash("sha256").update(password).digest("hex");
  const users = `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password_sha256_hex>${sha}</password_sha256_hex>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`;
  return { config, users };
}

/** The password of the server in `dir`: made (random, 0600) on first use, then read. */
export function clickHousePassword(dir: string): string {
  const file = join(dir, "password");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const password = randomBytes(24).toString("base64url");
  writeFileSync(file, password, { mode: 0o600 });
  return password;
}

/** A running clickhouse-server of this process. */
export interface ClickHouseServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** The user `default`'s password. */
  readonly password: string;
  /** Sends `signal` (default SIGKILL) unless the server has exited; resolves once it has. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the server has exited. Idempotent. */
  stop(): Promise<void>;
}

export interface ClickHouseServerOptions {
  /** The server's folder (configuration, data, logs); made 0700 if missing. */
  readonly dir: string;
  /** Default: a free loopback port. */
  readonly port?: number;
  /** Default: {@link findClickHouseServer}. */
  readonly binary?: string;
  /** Runs the server in a process group of its own (see embedded-redis.ts `ownProcessGroup`). */
  readonly ownProcessGroup?: boolean;
}

const tailOf = (file: string, n = 2_000): string => {
  try {
    const text = readFileSync(file, "utf8");
    return text.length > n ? text.slice(-n) : text;
  } catch {
    return "";
  }
};

/**
 * Writes the configuration into `dir` and starts a clickhouse-server on it (umask 077: what it
 * creates is the owner's alone); resolves once it answers /ping.
 * @throws Error when no server binary is found, or it exits or does not answer within 20 s (killed).
 */
export async function spawnClickHouseServer(opts: ClickHouseServerOptions): Promise<ClickHouseServer> {
  const binary = opts.binary ?? findClickHouseServer();
  if (binary === undefined) {
    throw new Error("no clickhouse-server on the PATH or in /usr/sbin (apt-get install clickhouse-server)");
  }
  const dir = resolve(opts.dir);
  ensurePrivateDir(dir);
  for (const sub of ["data", "tmp", "user_files", "format_schemas", "log"]) ensurePrivateDir(join(dir, sub));
  const port = opts.port ?? (await freeLoopbackPort());
  const password = clickHousePassword(dir);
  const { config, users } = clickHouseConfig(dir, port, password);
  const configFile = join(dir, "config.xml");
  writeFileSync(configFile, config, { mode: 0o600 });
  writeFileSync(join(dir, "users.xml"), users, { mode: 0o600 });

  // Output to a file, not a pipe: a server left running by a killed parent must not die of SIGPIPE.
  const outFile = join(dir, "log", "stdout.log");
  const umask = process.umask(0o077);
  const out = openSync(outFile, "a", 0o600);
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(binary, [`--config-file=${configFile}`], {
      stdio: ["ignore", out, out],
      cwd: dir,
      detached: opts.ownProcessGroup === true,
    });
  } finally {
    process.umask(umask);
    closeSync(out);
  }
  const spawnError = new Promise<Error>((res) => child.once("error", res));
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  const said = () => `${tailOf(outFile)}${tailOf(join(dir, "log", "error.log"))}`.trim();

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const failed = await Promise.race([
      spawnError,
      exited.then((c) => new Error(`clickhouse-server exited (${c}): ${said()}`)),
      new Promise<undefined>((r) => setTimeout(r, 50, undefined)),
    ]);
    if (failed instanceof Error) throw new Error(`cannot start clickhouse-server: ${failed.message}`);
    if (await pingClickHouse(port, 500)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await exited;
      throw new Error(`clickhouse-server did not answer within ${READY_TIMEOUT_MS / 1000} s: ${said()}`);
    }
  }

  const running = () => child.exitCode === null && child.signalCode === null;
  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    password,
    async kill(signal = "SIGKILL") {
      if (running()) child.kill(signal);
      await exited;
    },
    stop() {
      stopped ??= (async () => {
        if (running()) {
          child.kill("SIGTERM");
          const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(t);
        }
      })();
      return stopped;
    },
  };
}

/** The embedded server as `start` uses it. */
export interface EmbeddedClickHouse {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  /** Whether this process started the server (and so stops it). */
  readonly owned: boolean;
  stop(): Promise<void>;
}

/**
 * The server another process runs for `dataDir` (its run files name a live pid and a port that
 * answers), if any.
 */
export async function runningEmbeddedClickHouse(dataDir: string): Promise<EmbeddedClickHouse | undefined> {
  const runDir = resolve(dataDir, "run");
  try {
    const pid = Number(readFileSync(join(runDir, "clickhouse.pid"), "utf8"));
    const port = Number(readFileSync(join(runDir, "clickhouse.port"), "utf8"));
    const password = readFileSync(join(resolve(dataDir, "clickhouse"), "password"), "utf8").trim();
    if (pid > 0 && isAlive(pid) && (await pingClickHouse(port))) {
      const url = `http://127.0.0.1:${port}`;
      return { url, username: "default", password, owned: false, stop: async () => undefined };
    }
  } catch {
    // no run files (or half-written ones): nothing to reuse
  }
  return undefined;
}

/**
 * Starts the embedded server for `dataDir`, or reuses the one a start on the same DATA_DIR runs.
 * @throws Error when the binary is missing, or the server neither starts nor turns up within 20 s.
 */
export async function startEmbeddedClickHouse(opts: {
  readonly dataDir: string;
  readonly binary: string;
}): Promise<EmbeddedClickHouse> {
  const runDir = resolve(opts.dataDir, "run");
  const pidFile = join(runDir, "clickhouse.pid");
  const portFile = join(runDir, "clickhouse.port");
  const ownerFile = join(runDir, "clickhouse.owner");
  const reused = await runningEmbeddedClickHouse(opts.dataDir);
  if (reused) {
    // Its starter stops it; a starter that died (kill -9) left it to whoever comes next.
    const owner = Number(readRunFileIfAny(ownerFile));
    if (owner > 0 && isAlive(owner)) return reused;
    return adoptClickHouse(reused, { pidFile, portFile, ownerFile });
  }
  ensurePrivateDir(runDir);
  let server: ClickHouseServer;
  try {
    server = await spawnClickHouseServer({
      dir: resolve(opts.dataDir, "clickhouse"),
      binary: opts.binary,
      ownProcessGroup: true,
    });
  } catch (err) {
    // A start on the same DATA_DIR at the same moment won the data folder's lock: use its server.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const theirs = await runningEmbeddedClickHouse(opts.dataDir);
      if (theirs) return theirs;
      if (!String((err as Error).message).includes("status")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw err;
  }
  writeFileSync(pidFile, String(server.pid), { mode: 0o600 });
  writeFileSync(portFile, String(server.port), { mode: 0o600 });
  writeFileSync(ownerFile, String(process.pid), { mode: 0o600 });
  let stopped: Promise<void> | undefined;
  return {
    url: server.url,
    username: "default",
    password: server.password,
    owned: true,
    stop() {
      stopped ??= (async () => {
        await server.stop();
        for (const f of [pidFile, portFile, ownerFile]) rmSync(f, { force: true });
      })();
      return stopped;
    },
  };
}

function readRunFileIfAny(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * Takes over a server whose starter died without stopping it: this process now stops it (SIGTERM,
 * SIGKILL after 10 s) with everything else, as if it had started it.
 */
function adoptClickHouse(
  found: EmbeddedClickHouse,
  files: { readonly pidFile: string; readonly portFile: string; readonly ownerFile: string },
): EmbeddedClickHouse {
  const pid = Number(readRunFileIfAny(files.pidFile));
  writeFileSync(files.ownerFile, String(process.pid), { mode: 0o600 });
  let stopped: Promise<void> | undefined;
  return {
    ...found,
    owned: true,
    stop() {
      stopped ??= (async () => {
        if (pid > 0 && isAlive(pid)) {
          process.kill(pid, "SIGTERM");
          const deadline = Date.now() + 10_000;
          while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
          if (isAlive(pid)) process.kill(pid, "SIGKILL");
          while (isAlive(pid)) await new Promise((r) => setTimeout(r, 50));
        }
        for (const f of [files.pidFile, files.portFile, files.ownerFile]) rmSync(f, { force: true });
      })();
      return stopped;
    },
  };
}
