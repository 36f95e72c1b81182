// The embedded redis-server of `render-gateway start` without REDIS_URL: the project's redis.conf
// (AOF, noeviction) on a free loopback port, data under DATA_DIR/redis, port and pid under
// DATA_DIR/run. A server left running by an earlier start on the same DATA_DIR is reused, never
// doubled (two servers on one AOF would corrupt it).
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { join, resolve } from "node:path";

export interface EmbeddedRedis {
  readonly url: string;
  /** Whether this process started the server (and so stops it). */
  readonly owned: boolean;
  stop(): Promise<void>;
}

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

async function pong(port: number, timeoutMs = 500): Promise<boolean> {
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts (or reuses) the embedded server.
 * @throws Error when redis-server is missing or does not answer within 10 s.
 */
export async function startEmbeddedRedis(opts: {
  dataDir: string;
  confPath: string;
  binary?: string;
}): Promise<EmbeddedRedis> {
  const runDir = resolve(opts.dataDir, "run");
  const dir = resolve(opts.dataDir, "redis");
  mkdirSync(runDir, { recursive: true });
  mkdirSync(dir, { recursive: true });
  const pidFile = join(runDir, "redis.pid");
  const portFile = join(runDir, "redis.port");

  if (existsSync(pidFile) && existsSync(portFile)) {
    const pid = Number(readFileSync(pidFile, "utf8"));
    const port = Number(readFileSync(portFile, "utf8"));
    if (pid > 0 && alive(pid) && (await pong(port))) {
      return { url: `redis://127.0.0.1:${port}`, owned: false, stop: async () => undefined };
    }
  }

  const port = await freeLoopbackPort();
  const child = spawn(
    opts.binary ?? "redis-server",
    [
      resolve(opts.confPath),
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--logfile",
      join(dir, "redis.log"),
    ],
    { stdio: ["ignore", "ignore", "pipe"], detached: false },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const spawnError = new Promise<Error>((res) => child.once("error", res));
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));

  const deadline = Date.now() + 10_000;
  for (;;) {
    const failed = await Promise.race([
      spawnError,
      exited.then((c) => new Error(`redis-server exited (${c}): ${stderr.trim()}`)),
      new Promise<undefined>((r) => setTimeout(r, 50, undefined)),
    ]);
    if (failed instanceof Error) {
      const hint =
        (failed as NodeJS.ErrnoException).code === "ENOENT"
          ? " (install it: apt-get install redis-server)"
          : "";
      throw new Error(`cannot start redis-server${hint}: ${failed.message}`);
    }
    if (await pong(port)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error("redis-server did not answer within 10 s");
    }
  }
  writeFileSync(pidFile, String(child.pid));
  writeFileSync(portFile, String(port));

  let stopped: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    owned: true,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null) {
          child.kill("SIGTERM");
          const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(t);
        }
        rmSync(pidFile, { force: true });
        rmSync(portFile, { force: true });
      })();
      return stopped;
    },
  };
}
