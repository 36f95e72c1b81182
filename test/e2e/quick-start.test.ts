// The README's first minute as a user lives it: `render-gateway start` with nothing configured (no
// REDIS_URL, no JWT_SECRET) embeds a redis-server from the project's redis.conf, prints the URL, a dev
// token and a curl command; that exact command produces a 1024×1024 PNG; SIGTERM stops everything.
import { execFile } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultRedisMaxmemory, isAlive, machineMemoryBytes } from "../../src/infra/embedded-redis.js";
import { E2eHarness, pngDimensions, until, type Gateway } from "../helpers/processes.js";

const exec = promisify(execFile);

let h: E2eHarness;
let gw: Gateway;

beforeAll(async () => {
  h = new E2eHarness({ redis: "none" });
  // Nothing configured but a data dir, a free port and quiet logs.
  gw = await h.start(undefined, { env: { JWT_SECRET: undefined, REDIS_PREFIX: undefined } });
});
afterAll(async () => {
  await h?.cleanup();
});

/** Every file under `dir`, recursively. */
function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** The shell command that starts at the line after `heading` (continuation lines joined by the shell). */
function commandAfter(stdout: string, heading: string): string {
  const lines = stdout.split("\n");
  const at = lines.findIndex((l) => l.trim() === heading);
  expect(at, `"${heading}" in the banner:\n${stdout}`).toBeGreaterThanOrEqual(0);
  const out: string[] = [];
  for (let i = at + 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    out.push(line);
    if (!line.endsWith("\\")) break;
  }
  return out.join("\n");
}

describe("quick start: `render-gateway start` with no configuration", () => {
  it("prints the URL, the playground, a dev token and a curl command that produces a 1024x1024 PNG", async () => {
    const stdout = gw.proc.stdout;
    expect(stdout).toContain(`render-gateway is up at ${gw.url}`);
    expect(gw.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const tokenLine = /dev token: (\S+)/.exec(stdout);
    expect(tokenLine?.[1]).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    // the playground it names is served (with the built-in page: the package's files were found)
    expect(stdout).toContain(`playground: ${gw.url}/ `);
    const page = await fetch(`${gw.url}/`);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await page.text()).toContain("render-gateway playground");

    const curl = commandAfter(stdout, "Generate an image:");
    expect(curl.startsWith(`curl -sS -X POST ${gw.url}/image/`)).toBe(true);
    expect(curl).toContain(`Bearer ${tokenLine![1]!}`);
    expect(curl).toMatch(/-o image\.png$/);

    // Run the printed command line as a user would paste it, in an empty directory.
    const cwd = h.tempDir();
    const res = await exec("sh", ["-c", curl], { cwd, timeout: 60_000 });
    expect(res.stderr).toBe("");
    const png = readFileSync(join(cwd, "image.png"));
    expect(pngDimensions(png)).toEqual({ width: 1024, height: 1024 });

    // The second printed command queues a job.
    const queue = commandAfter(stdout, "Queue one and follow it:");
    const queued = await exec("sh", ["-c", queue], { cwd, timeout: 60_000 });
    const created = JSON.parse(queued.stdout) as Record<string, unknown>;
    expect(created.status).toBe("queued");
    expect(created.id).toMatch(/^j_[A-Za-z0-9]{20,}$/);
    expect(created.events_url).toBe(`${gw.url}/jobs/${String(created.id)}/events`);
  });

  it("runs an embedded redis-server from redis.conf with its AOF under DATA_DIR/redis", async () => {
    const run = join(h.dataDir, "run");
    const pid = Number(readFileSync(join(run, "redis.pid"), "utf8"));
    const port = Number(readFileSync(join(run, "redis.port"), "utf8"));
    expect(pid).toBeGreaterThan(0);
    expect(isAlive(pid)).toBe(true);

    const client = new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 1 });
    try {
      expect(await client.config("GET", "appendonly")).toEqual(["appendonly", "yes"]);
      expect(await client.config("GET", "maxmemory-policy")).toEqual(["maxmemory-policy", "noeviction"]);
      expect(await client.config("GET", "dir")).toEqual(["dir", join(h.dataDir, "redis")]);
      expect(await client.config("GET", "bind")).toEqual(["bind", "127.0.0.1"]);
      // Bounded memory, sized from the machine when REDIS_MAXMEMORY is unset.
      expect(await client.config("GET", "maxmemory")).toEqual([
        "maxmemory",
        String(defaultRedisMaxmemory(machineMemoryBytes())),
      ]);
    } finally {
      client.disconnect();
    }
    // redis.conf names the file "appendonly.aof" (Redis 7 keeps it as appendonlydir/appendonly.aof.*).
    const aof = walk(join(h.dataDir, "redis")).filter((f) => /appendonly\.aof/.test(f));
    expect(aof.length, `AOF files under ${h.dataDir}/redis`).toBeGreaterThan(0);
    // The job queued above is in the append-only file.
    const text = aof.map((f) => readFileSync(f, "latin1")).join("");
    expect(text).toContain("a red fox");
  });

  it("keeps DATA_DIR from other users: folders 0700, the CAS objects, AOF, log and run files 0600", async () => {
    const entries = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => {
        const p = join(dir, n);
        return statSync(p).isDirectory() ? [p, ...entries(p)] : [p];
      });
    const all = [h.dataDir, ...entries(h.dataDir)];
    // The curl above stored its output in the CAS; the AOF and log exist.
    expect(all.filter((p) => /\/cas\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(p)).length).toBeGreaterThan(0);
    expect(all.some((p) => /appendonly\.aof/.test(p)) && all.some((p) => p.endsWith("redis.log"))).toBe(true);
    const open = all
      .filter((p) => (statSync(p).mode & 0o077) !== 0)
      .map((p) => `${p} ${(statSync(p).mode & 0o777).toString(8)}`);
    expect(open).toEqual([]);
  });

  it("stops everything on SIGTERM, including the embedded redis-server", async () => {
    const run = join(h.dataDir, "run");
    const pid = Number(readFileSync(join(run, "redis.pid"), "utf8"));
    expect(isAlive(pid)).toBe(true);
    const exit = await gw.proc.stop(20_000);
    expect(exit, gw.proc.describe()).toEqual({ code: 0, signal: null, forced: false });
    // The redis-server was our child: once we exited cleanly it must be gone (no zombie: init reaps
    // it, which takes a moment after our exit).
    await until("the embedded redis-server is gone", async () => !isAlive(pid), 10_000, 20);
    expect(existsSync(join(run, "redis.pid"))).toBe(false);
    expect(existsSync(join(run, "api.url"))).toBe(false);
    expect(existsSync(join(run, "sim.url"))).toBe(false);
  });
});

describe("quick start: Ctrl-C in the terminal", () => {
  let own: E2eHarness | undefined;
  afterAll(async () => {
    await own?.cleanup();
  });

  it("stops at once and cleanly when the whole process group gets SIGINT, the embedded redis-server last", async () => {
    own = new E2eHarness({ redis: "none" });
    // As a shell runs `npm start`: the leader of its own process group, which Ctrl-C signals whole.
    const started = await own.start(undefined, {
      group: true,
      env: { JWT_SECRET: undefined, REDIS_PREFIX: undefined },
    });
    const proc = started.proc;
    proc.awaited = true;
    const pid = Number(readFileSync(join(own.dataDir, "run", "redis.pid"), "utf8"));
    expect(isAlive(pid)).toBe(true);
    proc.signalGroup("SIGINT");
    // The embedded redis-server used to be in the group: it quit on the same Ctrl-C, and the
    // gateway's shutdown then hung on connections refused (still running after 40 s).
    const exit = await proc.wait(15_000);
    expect(exit, proc.describe()).toEqual({ code: 0, signal: null });
    expect(proc.stderr).not.toContain("ECONNREFUSED");
    await until("the embedded redis-server is gone", async () => !isAlive(pid), 10_000, 20);
    expect(existsSync(join(own.dataDir, "run", "redis.pid"))).toBe(false);
  });
});
