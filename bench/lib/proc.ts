// Child processes of a benchmark: spawned with a minimal environment, output to a log file, all
// stopped (SIGTERM, then SIGKILL) at the end, on errors and on ctrl-c.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The tree whose `bin/render-gateway.js` the benches run: this checkout, or BENCH_GATEWAY_ROOT (a
 * patched copy, to measure a proposed change against the same raw bound before it lands).
 */
export const GATEWAY_ROOT = process.env.BENCH_GATEWAY_ROOT || PROJECT_ROOT;

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly running: boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of its output (for error messages). */
  tail(lines?: number): string;
}

const children = new Set<Child>();
const processes = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Last resort when this process exits without the orderly stop (an uncaught error, EPIPE on a closed
 * stdout, process.exit from a signal handler): SIGKILL whatever child is still running, so no
 * redis-server or gateway outlives the benchmark.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const p of processes) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  });
}

/** The environment every child gets: nothing of the caller's configuration leaks in. */
export function baseEnv(extra: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "LANG", "TZ"]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return { ...env, NODE_ENV: "production", ...extra };
}

export function spawnChild(opts: {
  name: string;
  command: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  logDir: string;
  cwd?: string;
}): Child {
  const logFile = join(opts.logDir, `${opts.name}.log`);
  const log = createWriteStream(logFile, { flags: "a" });
  installExitHook();
  const proc: ChildProcess = spawn(opts.command, [...opts.args], {
    cwd: opts.cwd ?? PROJECT_ROOT,
    env: opts.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  processes.add(proc);
  proc.once("exit", () => processes.delete(proc));
  proc.stdout?.pipe(log, { end: false });
  proc.stderr?.pipe(log, { end: false });
  let running = proc.pid !== undefined;
  const exited = new Promise<number | string>((resolve) => {
    proc.once("error", (err) => {
      running = false;
      log.write(`\n[bench] spawn error: ${err.message}\n`);
      resolve(-1);
    });
    proc.once("exit", (code, signal) => {
      running = false;
      resolve(code ?? signal ?? -1);
    });
  });
  let stopping: Promise<void> | undefined;
  const child: Child = {
    name: opts.name,
    pid: proc.pid ?? -1,
    get running() {
      return running;
    },
    stop(graceMs = 10_000) {
      stopping ??= (async () => {
        if (running) {
          proc.kill("SIGTERM");
          const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
          await exited;
          clearTimeout(t);
        }
        await new Promise<void>((r) => log.end(() => r()));
        children.delete(child);
      })();
      return stopping;
    },
    tail(lines = 20) {
      if (!existsSync(logFile)) return "";
      return readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    },
  };
  children.add(child);
  return child;
}

/** Stops every child still running, newest first (servers after their clients). */
export async function stopAll(): Promise<void> {
  const list = [...children].reverse();
  for (const c of list) await c.stop(5_000);
}

/** A node process running a TypeScript file through tsx's loader (no build step). */
export function spawnTs(opts: {
  name: string;
  file: string;
  args?: readonly string[];
  env: Readonly<Record<string, string>>;
  logDir: string;
  nodeArgs?: readonly string[];
}): Child {
  return spawnChild({
    name: opts.name,
    command: process.execPath,
    args: [...(opts.nodeArgs ?? []), "--import", "tsx", opts.file, ...(opts.args ?? [])],
    env: opts.env,
    logDir: opts.logDir,
  });
}

/** Waits until `file` exists and is non-empty; fails early when `child` exits. */
export async function waitForFile(file: string, child: Child, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(file)) {
      const text = readFileSync(file, "utf8").trim();
      if (text) return text;
    }
    if (!child.running) throw new Error(`${child.name} exited before writing ${file}:\n${child.tail()}`);
    if (Date.now() > deadline)
      throw new Error(`${child.name}: ${file} not written in time:\n${child.tail()}`);
    await sleep(25);
  }
}

/** Polls `fn` until it returns a truthy value. */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined | false | 0>,
  timeoutMs: number,
  intervalMs = 25,
  watch?: readonly Child[],
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    for (const c of watch ?? []) {
      if (!c.running) throw new Error(`${c.name} exited while waiting for ${what}:\n${c.tail()}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; 0 elsewhere). */
export function processCpuSeconds(pid: number): number {
  try {
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** USER_HZ: 100 on every Linux this runs on (`getconf CLK_TCK`). */
const CLOCK_TICKS = 100;
