// The embedded redis-server of `render-gateway start` without REDIS_URL: the project's redis.conf
// (AOF, noeviction) with a maxmemory on a free loopback port, data under DATA_DIR/redis, port and pid under
// DATA_DIR/run, both 0700; the server runs with umask 077, so its AOF and log are the owner's alone.
// A server left running by an earlier start on the same DATA_DIR is reused, never
// doubled (two servers on one AOF would corrupt it): the check and the spawn happen under an O_EXCL
// lock file, so two starts at the same moment cannot both spawn one. The pieces it is made of (a
// free port, PING, a redis-server started and waited for) are exported: the tests and the benchmarks
// start theirs with them.
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { createServer, Socket } from "node:net";
import { totalmem } from "node:os";
import { join, resolve } from "node:path";
import { ensurePrivateDir } from "./private-dir.js";

export interface EmbeddedRedis {
  readonly url: string;
  /** Whether this process started the server (and so stops it). */
  readonly owned: boolean;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1, as the OS hands it out (nothing holds it once this resolves). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/**
 * Whether a Redis on 127.0.0.1:`port` answers PING within `timeoutMs` (`-NOAUTH` counts: a server is
 * there; `-LOADING` does not: it is still replaying its AOF).
 */
export async function pingRedis(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((res) => {
    const sock = new Socket();
    let buf = "";
    const done = (ok: boolean) => {
      sock.destroy();
      res(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once("error", () => done(false));
    sock.connect(port, "127.0.0.1", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG") || buf.startsWith("-NOAUTH"));
    });
  });
}

/** Whether a process with this pid exists (signal 0; EPERM means it exists but is not ours). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Options of {@link spawnRedisServer} and {@link redisServerArgs}. */
export interface RedisServerOptions {
  /** A config file, given first on the command line; without one, redis-server's own defaults apply. */
  readonly confPath?: string;
  /** The data directory (`--dir`): the AOF and RDB files go here. It must exist. */
  readonly dir: string;
  /** The port; default a free loopback port. */
  readonly port?: number;
  /** More arguments, after the port, bind address and dir (they override the config file). */
  readonly extraArgs?: readonly string[];
  /** The executable; default `redis-server` from the PATH. */
  readonly binary?: string;
  /**
   * Runs the server in a process group of its own (default false): a terminal's Ctrl-C (SIGINT to
   * the foreground group) or a group SIGTERM then reaches only its starter, which stops it last,
   * after its own connections are closed. In the starter's group it stopped first, and the
   * starter's shutdown hung on connections to a server that was gone.
   */
  readonly ownProcessGroup?: boolean;
}

/** A running redis-server of this process (see {@link spawnRedisServer}). */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Sends `signal` (default SIGKILL) unless the server has exited; resolves once it has. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the server has exited. Idempotent. */
  stop(): Promise<void>;
}

/** The command line of a redis-server bound to 127.0.0.1: config file, port, dir, then `extraArgs`. */
export function redisServerArgs(o: RedisServerOptions & { readonly port: number }): string[] {
  return [
    ...(o.confPath === undefined ? [] : [o.confPath]),
    "--port",
    String(o.port),
    "--bind",
    "127.0.0.1",
    "--dir",
    o.dir,
    ...(o.extraArgs ?? []),
  ];
}

const tail = (s: string, n = 4000) => (s.length > n ? s.slice(-n) : s);

/**
 * Starts a redis-server on 127.0.0.1 with umask 077 (files it creates are 0600) and resolves once it
 * answers PING (after replaying its AOF).
 * @throws Error when redis-server is missing, exits, or does not answer within 10 s (it is killed).
 */
export async function spawnRedisServer(opts: RedisServerOptions): Promise<RedisServer> {
  const port = opts.port ?? (await freeLoopbackPort());
  // The child inherits the umask at spawn (synchronously, inside spawn()): with 077 the AOF, RDB and
  // log it creates are 0600. Restored at once, so nothing else of this process is affected.
  const umask = process.umask(0o077);
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(opts.binary ?? "redis-server", redisServerArgs({ ...opts, port }), {
      stdio: ["ignore", "pipe", "pipe"],
      detached: opts.ownProcessGroup === true,
    });
  } finally {
    process.umask(umask);
  }
  // Read to the end (a full pipe would block the server); the last part goes into error messages.
  let output = "";
  const collect = (d: Buffer) => (output = tail(output + d.toString()));
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const spawnError = new Promise<Error>((res) => child.once("error", res));
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));

  const deadline = Date.now() + 10_000;
  for (;;) {
    const failed = await Promise.race([
      spawnError,
      exited.then((c) => new Error(`redis-server exited (${c}): ${output.trim()}`)),
      new Promise<undefined>((r) => setTimeout(r, 50, undefined)),
    ]);
    if (failed instanceof Error) {
      const hint =
        (failed as NodeJS.ErrnoException).code === "ENOENT"
          ? " (install it: apt-get install redis-server)"
          : "";
      throw new Error(`cannot start redis-server${hint}: ${failed.message}`);
    }
    if (await pingRedis(port)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      const said = output.trim();
      throw new Error(`redis-server did not answer within 10 s${said ? `: ${said}` : ""}`);
    }
  }

  const running = () => child.exitCode === null && child.signalCode === null;
  let stopped: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
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

/**
 * How long a start waits for another live process that holds the start lock: a little over the 10 s
 * that process gives its redis-server to answer.
 */
const LOCK_WAIT_MS = 12_000;
/**
 * A lock older than this is stale even if its pid is alive (the pid was reused): a holder keeps it
 * only while it checks for a server and spawns one, which gives up after 10 s.
 */
const LOCK_STALE_MS = 20_000;

/** The pid written in a lock file; undefined while it is being written (or unreadable). */
function lockHolder(lockFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockFile, "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the lock (O_EXCL); false when another holds it. */
function tryLock(lockFile: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockFile, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    writeSync(fd, String(process.pid));
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Removes the lock of a holder that is gone. It is first renamed aside and checked, so that of two
 * processes removing the same stale lock, the slower one cannot remove the lock the faster one has
 * just taken (it puts that one back).
 */
function removeStaleLock(lockFile: string, stalePid: number | undefined): void {
  const aside = `${lockFile}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try {
    renameSync(lockFile, aside);
  } catch {
    return; // already gone
  }
  if (lockHolder(aside) !== stalePid) {
    // A fresh lock taken since we looked: put it back unless a third process took the lock meanwhile.
    try {
      linkSync(aside, lockFile);
    } catch {
      // EEXIST: someone holds it now; the one we moved aside will find its lock gone on release.
    }
  }
  rmSync(aside, { force: true });
}

function lockAgeMs(lockFile: string): number {
  try {
    return Date.now() - statSync(lockFile).mtimeMs;
  } catch {
    return 0;
  }
}

const MIB = 1024 ** 2;
/** Share of the machine's memory the embedded Redis may use by default, and its floor and cap. */
const DEFAULT_MAXMEMORY_SHARE = 0.25;
const DEFAULT_MAXMEMORY_FLOOR = 256 * MIB;
const DEFAULT_MAXMEMORY_CAP = 8 * 1024 * MIB;

/**
 * The memory of the machine this process runs on, as far as it may use it: the smaller of the
 * host's memory (`os.totalmem()`) and the cgroup limit of its container (`process.constrainedMemory()`;
 * no limit reads as undefined, 0 or a huge number). In a container limited to 2 GiB on a 64 GiB host,
 * `totalmem()` alone says 64 GiB.
 */
export function machineMemoryBytes(
  total: number = totalmem(),
  constrained: number | undefined = process.constrainedMemory?.(),
): number {
  return constrained !== undefined && constrained > 0 && constrained < total ? constrained : total;
}

/**
 * The embedded Redis's maxmemory when REDIS_MAXMEMORY is unset: a quarter of the machine's memory,
 * at least 256 MiB and at most 8 GiB, in whole MiB. A quarter leaves room for the copy-on-write of an
 * AOF rewrite, the gateway's processes and the GPU backends' hosts; a machine that runs only Redis
 * sets REDIS_MAXMEMORY. `totalMemoryBytes`: {@link machineMemoryBytes}, a container's limit included.
 */
export function defaultRedisMaxmemory(totalMemoryBytes: number): number {
  const share = Math.floor((totalMemoryBytes * DEFAULT_MAXMEMORY_SHARE) / MIB) * MIB;
  return Math.min(DEFAULT_MAXMEMORY_CAP, Math.max(DEFAULT_MAXMEMORY_FLOOR, share));
}

/**
 * Starts (or reuses) the embedded server. Checking for a running server and spawning one happen
 * under the lock file `DATA_DIR/run/redis.lock` (O_EXCL, holding the pid): a start that finds the
 * lock held by a live process waits (up to 12 s) for that process's server to answer and reuses
 * it; a lock left by a dead process (or older than 20 s) is removed.
 * @throws Error when redis-server is missing or does not answer within 10 s, or when another process
 *   holds the lock for longer than that without a server answering.
 */
export async function startEmbeddedRedis(opts: {
  dataDir: string;
  confPath: string;
  binary?: string;
  /**
   * `maxmemory` of a server this call starts (bytes, given on the command line over redis.conf's);
   * a reused server keeps the limit it was started with. Default: redis.conf's.
   */
  maxmemoryBytes?: number;
}): Promise<EmbeddedRedis> {
  const runDir = resolve(opts.dataDir, "run");
  const dir = resolve(opts.dataDir, "redis");
  ensurePrivateDir(runDir);
  // 0700 also when an older version made it 0755: the AOF holds every job's request.
  ensurePrivateDir(dir);
  const pidFile = join(runDir, "redis.pid");
  const portFile = join(runDir, "redis.port");
  const lockFile = join(runDir, "redis.lock");

  /** The server an earlier (or concurrent) start left running on this DATA_DIR, if it answers. */
  const running = async (): Promise<EmbeddedRedis | undefined> => {
    if (!existsSync(pidFile) || !existsSync(portFile)) return undefined;
    const pid = Number(readFileSync(pidFile, "utf8"));
    const port = Number(readFileSync(portFile, "utf8"));
    if (pid > 0 && isAlive(pid) && (await pingRedis(port))) {
      return { url: `redis://127.0.0.1:${port}`, owned: false, stop: async () => undefined };
    }
    return undefined;
  };

  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    if (tryLock(lockFile)) {
      try {
        return (await running()) ?? (await spawnOwned());
      } finally {
        rmSync(lockFile, { force: true });
      }
    }
    const holder = lockHolder(lockFile);
    const age = lockAgeMs(lockFile);
    if ((holder !== undefined && !isAlive(holder)) || age > LOCK_STALE_MS) {
      removeStaleLock(lockFile, holder);
      continue;
    }
    // A live holder is starting the server (or checking for one): reuse it once it answers.
    const reused = await running();
    if (reused) return reused;
    if (Date.now() > deadline) {
      throw new Error(
        `another process (pid ${holder ?? "unknown"}) is starting redis-server on ${opts.dataDir} ` +
          `and it did not answer within ${LOCK_WAIT_MS / 1000} s (lock ${lockFile})`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  async function spawnOwned(): Promise<EmbeddedRedis> {
    const server = await spawnRedisServer({
      confPath: resolve(opts.confPath),
      dir,
      extraArgs: [
        "--logfile",
        join(dir, "redis.log"),
        ...(opts.maxmemoryBytes === undefined ? [] : ["--maxmemory", String(opts.maxmemoryBytes)]),
      ],
      ...(opts.binary === undefined ? {} : { binary: opts.binary }),
      ownProcessGroup: true,
    });
    writeFileSync(pidFile, String(server.pid), { mode: 0o600 });
    writeFileSync(portFile, String(server.port), { mode: 0o600 });

    let stopped: Promise<void> | undefined;
    return {
      url: server.url,
      owned: true,
      stop() {
        stopped ??= (async () => {
          await server.stop();
          rmSync(pidFile, { force: true });
          rmSync(portFile, { force: true });
        })();
        return stopped;
      },
    };
  }
}
