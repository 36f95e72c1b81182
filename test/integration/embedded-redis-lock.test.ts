// Two starts on one DATA_DIR at the same moment share one embedded redis-server: the check and the
// spawn happen under an O_EXCL lock file (DATA_DIR/run/redis.lock). A lock left by a dead process is
// taken over.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  isAlive,
  pingRedis,
  startEmbeddedRedis,
  type EmbeddedRedis,
} from "../../src/infra/embedded-redis.js";

const CONF = resolve("redis.conf");
const FIXTURE = resolve("test/integration/fixtures/start-embedded-redis.ts");
let dataDir: string;
const started: EmbeddedRedis[] = [];
const children: ChildProcessWithoutNullStreams[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    c.stdin.end();
    if (c.exitCode === null) await new Promise((r) => c.once("exit", r));
  }
  await Promise.all(started.splice(0).map((r) => r.stop()));
  rmSync(dataDir, { recursive: true, force: true });
});

const portOf = (url: string) => Number(new URL(url).port);

describe("embedded redis start lock", () => {
  it("gives two concurrent starts in one process one server: one owns it, the other reuses it", async () => {
    dataDir = mkdtempSync(join(tmpdir(), "rg-lock-"));
    const both = await Promise.all([
      startEmbeddedRedis({ dataDir, confPath: CONF }),
      startEmbeddedRedis({ dataDir, confPath: CONF }),
    ]);
    started.push(...both);
    expect(both.map((r) => r.owned).sort()).toEqual([false, true]);
    expect(both[0].url).toBe(both[1].url);
    expect(await pingRedis(portOf(both[0].url))).toBe(true);
    expect(existsSync(join(dataDir, "run", "redis.lock"))).toBe(false);
  });

  it("gives two concurrent start processes one server", async () => {
    dataDir = mkdtempSync(join(tmpdir(), "rg-lock-"));
    const answers = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<{ url: string; owned: boolean }>((done, fail) => {
            const child = spawn(process.execPath, ["--import", "tsx", FIXTURE, dataDir, CONF], {
              stdio: ["pipe", "pipe", "pipe"],
            });
            children.push(child);
            let out = "";
            let err = "";
            child.stderr.on("data", (d: Buffer) => (err += d.toString()));
            child.stdout.on("data", (d: Buffer) => {
              out += d.toString();
              if (out.includes("\n")) done(JSON.parse(out) as { url: string; owned: boolean });
            });
            child.once("exit", (code) => fail(new Error(`child exited ${code}: ${err}`)));
          }),
      ),
    );
    expect(answers.map((a) => a.owned).sort()).toEqual([false, true]);
    expect(answers[0]!.url).toBe(answers[1]!.url);
    expect(await pingRedis(portOf(answers[0]!.url))).toBe(true);
  }, 30_000);

  it("takes over a lock left by a process that is gone", async () => {
    dataDir = mkdtempSync(join(tmpdir(), "rg-lock-"));
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((r) => dead.once("exit", r));
    expect(isAlive(dead.pid!)).toBe(false);
    const run = join(dataDir, "run");
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, "redis.lock"), String(dead.pid));
    const redis = await startEmbeddedRedis({ dataDir, confPath: CONF });
    started.push(redis);
    expect(redis.owned).toBe(true);
    expect(existsSync(join(run, "redis.lock"))).toBe(false);
  });
});
