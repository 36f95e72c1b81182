// A/B of the API's CPU per `POST /queue` between two trees (`--base <dir>`, a copy of another
// commit with node_modules, against this checkout), with the raw bound beside them: the servers
// run at once as separate processes, wrk loads one at a time in interleaved rounds (A B raw, B raw A,
// …), and each round reports the loaded server's CPU (/proc) per answered request. The ratio of
// interest is the median of the per-round base/this pairs: both measured under the same load.
// `--side name=<dir>[,K=V…]` (repeatable) adds more API processes (a tree and extra settings; `auth=X`
// among them sets that side's credentials). `--auth hs256|eddsa|apikey` chooses the credentials of
// this checkout and the added sides, `--base-auth` the base's (default `--auth`): `--base . --base-auth
// hs256 --auth apikey` compares two kinds of credential on one tree in the same run.
//   npx tsx bench/tools/enqueue-ab.ts --base /tmp/base [--rounds 6] [--seconds 4] [--tenants 1]
//     [--auth hs256|eddsa|apikey] [--base-auth hs256|eddsa|apikey]
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { TYPICAL_BODY } from "../lib/admit.js";
import { BENCH_API_KEY_PEPPER, createBenchApiKeys, type BenchApiKeys } from "../lib/api-keys.js";
import { benchSigner, JWT_SECRET, writeBenchTiers } from "../lib/gateway.js";
import { chooseTool, postLoad } from "../lib/load.js";
import { baseEnv, PROJECT_ROOT, processCpuSeconds, spawnChild, stopAll, waitForFile } from "../lib/proc.js";
import { startRawEnqueue } from "../lib/raw.js";
import { startRedis } from "../lib/redis.js";
import { fmt, median, printTable } from "../lib/report.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const baseRoot = arg("base", "");
if (!baseRoot) throw new Error("--base <dir>: the tree to compare with");
const rounds = Number(arg("rounds", "6"));
const seconds = Number(arg("seconds", "4"));
const tenants = Number(arg("tenants", "1"));
const connections = 32;
const auth = arg("auth", "hs256");
const baseAuth = arg("base-auth", auth);

const dir = mkdtempSync(join(tmpdir(), "rg-enqueue-ab-"));
const logDir = join(dir, "logs");
mkdirSync(logDir, { recursive: true });
const redis = await startRedis(join(dir, "redis"));
try {
  const tiers = writeBenchTiers(dir);
  const customers = Array.from({ length: tenants }, (_, i) => (tenants === 1 ? "ab" : `ab-${i}`));
  /** Each side's credentials (API keys live under a side's prefix) and the keys to put back after a flush. */
  const tokensOf = new Map<string, readonly string[]>();
  const keySets: BenchApiKeys[] = [];
  const startApi = async (
    name: string,
    root: string,
    prefix: string,
    extra: Readonly<Record<string, string>> = {},
    sideAuth = auth,
  ) => {
    let authEnv: Record<string, string> = {};
    if (sideAuth === "apikey") {
      const keys = await createBenchApiKeys(redis.client, prefix, customers, "pro");
      keySets.push(keys);
      tokensOf.set(name, keys.tokens);
      authEnv = { API_KEY_PEPPER: BENCH_API_KEY_PEPPER };
    } else {
      const signer = await benchSigner(sideAuth, join(dir, name));
      tokensOf.set(name, await Promise.all(customers.map((c) => signer.mint(c, "pro"))));
      authEnv = signer.env;
    }
    const dataDir = join(dir, name);
    mkdirSync(dataDir, { recursive: true });
    const env = baseEnv({
      REDIS_URL: redis.url,
      REDIS_PREFIX: prefix,
      DATA_DIR: dataDir,
      HOST: "127.0.0.1",
      PORT: "0",
      JWT_SECRET,
      LOG_LEVEL: "warn",
      SHUTDOWN_GRACE_MS: "2000",
      TIERS_FILE: tiers,
      ...authEnv,
      ...extra,
    });
    const child = spawnChild({
      name,
      command: process.execPath,
      args: [join(root, "bin/render-gateway.js"), "start", "--roles", "api"],
      env,
      logDir,
      cwd: root,
    });
    return { child, url: await waitForFile(join(dataDir, "run", "api.url"), child) };
  };
  const sides: Record<string, { child: { pid: number }; url: string }> = {
    base: await startApi("base", baseRoot, "{base}", {}, baseAuth),
    this: await startApi("this", PROJECT_ROOT, "{this}"),
    raw: await startRawEnqueue({ redisUrl: redis.url, prefix: "rawq", dir, logDir }),
  };
  for (let i = 0; i < process.argv.length; i++) {
    if (process.argv[i] !== "--side") continue;
    const [name, spec] = process.argv[i + 1]!.split("=", 2) as [string, string];
    const [root, ...settings] = spec.split(",");
    const { auth: sideAuth = auth, ...extra } = Object.fromEntries(
      settings.map((kv) => kv.split("=", 2) as [string, string]),
    );
    sides[name] = await startApi(name, root!, `{${name}}`, extra, sideAuth);
  }
  // The raw bound ignores the token: it gets this checkout's.
  tokensOf.set("raw", tokensOf.get("this")!);
  const tokens = (name: string) => tokensOf.get(name)!;
  console.log(
    `auth: base ${baseAuth}, this ${auth}; ${tenants} tenant(s); load average ${loadavg()[0]!.toFixed(2)}`,
  );
  for (const [name, s] of Object.entries(sides)) {
    const res = await fetch(`${s.url}/queue`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens(name)[0]!}` },
      body: JSON.stringify(TYPICAL_BODY),
    });
    if (res.status !== 202) throw new Error(`${name}: ${res.status} ${await res.text()}`);
  }
  const tool = chooseTool(undefined);
  const order = Object.keys(sides);
  for (const name of order) await postLoad(tool, dir, sides[name]!.url, tokens(name), 2, connections);
  const rows: { round: number; side: string; reqPerS: number; cpuUs: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < order.length; k++) {
      const name = order[(r + k) % order.length]!;
      await redis.flush();
      for (const keys of keySets) await keys.restore();
      const side = sides[name]!;
      const pid = side.child.pid;
      const before = processCpuSeconds(pid);
      const res = await postLoad(tool, dir, side.url, tokens(name), seconds, connections);
      const cpu = processCpuSeconds(pid) - before;
      rows.push({
        round: r + 1,
        side: name,
        reqPerS: res.reqPerS,
        cpuUs: (cpu * 1e6) / Math.max(1, res.accepted202),
      });
      console.log(`round ${r + 1} ${name}: ${fmt(res.reqPerS)} req/s, ${fmt(rows.at(-1)!.cpuUs, 1)} µs/req`);
    }
  }
  printTable(
    ["round", "side", "req/s", "CPU µs/req"],
    rows.map((x) => [String(x.round), x.side, fmt(x.reqPerS), fmt(x.cpuUs, 1)]),
  );
  const of = (side: string, r: number) => rows.find((x) => x.side === side && x.round === r)!;
  const per = (f: (r: number) => number) => Array.from({ length: rounds }, (_, i) => f(i + 1));
  const cpuThis = per((r) => of("this", r).cpuUs);
  const cpuBase = per((r) => of("base", r).cpuUs);
  const cpuRaw = per((r) => of("raw", r).cpuUs);
  console.log(
    `CPU µs/req medians: base ${fmt(median(cpuBase), 1)}, this ${fmt(median(cpuThis), 1)}, raw ${fmt(median(cpuRaw), 1)}`,
  );
  const ratios = (a: number[], b: number[]) => a.map((x, i) => x / b[i]!);
  const show = (xs: number[]) => `${fmt(median(xs), 3)} [${xs.map((x) => fmt(x, 2)).join(" ")}]`;
  console.log(`this/base CPU per round: ${show(ratios(cpuThis, cpuBase))}`);
  console.log(`raw/this CPU per round: ${show(ratios(cpuRaw, cpuThis))}`);
  console.log(`raw/base CPU per round: ${show(ratios(cpuRaw, cpuBase))}`);
  const rate = (s: string) => per((r) => of(s, r).reqPerS);
  console.log(`this/raw req/s per round: ${show(ratios(rate("this"), rate("raw")))}`);
  console.log(`base/raw req/s per round: ${show(ratios(rate("base"), rate("raw")))}`);
  console.log(
    `load average at the end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  for (const name of order.slice(3)) {
    const cpu = per((r) => of(name, r).cpuUs);
    console.log(
      `${name}: CPU ${fmt(median(cpu), 1)} µs/req; ${name}/this per round ${show(ratios(cpu, cpuThis))}`,
    );
  }
} finally {
  await stopAll();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
