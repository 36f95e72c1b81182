// CPU per request of the authentication a cached credential costs (the token router's `peek`, what
// the authenticate middleware runs on every request once a credential is known): an API key, an
// HS256 JWT and an EdDSA JWT, in one process, interleaved repetitions, medians. `--base <dir>` adds
// the API-key verifier of another tree (a copy of another commit) for a before/after.
//   npx tsx bench/tools/auth-cached.ts [--base /tmp/base] [--reps 7] [--n 100000]
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { createApiKeyVerifier, type ApiKeyVerifier } from "../../src/api/api-key-auth.js";
import { createAuthenticator, signToken } from "../../src/api/auth.js";
import { parsePublicKeyFile } from "../../src/api/jwt-keys.js";
import { createTokenRouter } from "../../src/api/token-router.js";
import { createApiKeyStore } from "../../src/queues/api-key-store.js";
import { startRedis } from "../lib/redis.js";
import { fmt, median } from "../lib/report.js";
import { stopAll } from "../lib/proc.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const base = arg("base", "");
const reps = Number(arg("reps", "7"));
const n = Number(arg("n", "100000"));
const TIERS = ["free", "pro"];
const PEPPER = new TextEncoder().encode("auth-cached-bench-pepper-0123456789-abcd");

const dir = mkdtempSync(join(tmpdir(), "rg-auth-cached-"));
const redis = await startRedis(join(dir, "redis"));
try {
  const clock = () => Date.now();
  const store = createApiKeyStore({
    redis: redis.client,
    prefix: "{auth}",
    clock,
    tiers: TIERS,
    pepper: PEPPER,
  });
  const { key } = await store.create({ customerId: "bench", tier: "pro" });
  const secret = new TextEncoder().encode("auth-cached-bench-secret-0123456789-abcdef");
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { extractable: true });
  const publicKeys = await parsePublicKeyFile(`kid: ed\n${await exportSPKI(publicKey)}`, "bench");
  const jwt = createAuthenticator({ secret, publicKeys, tiers: TIERS, clock, maxTtlS: 86_400 });
  const verifierOpts = {
    store,
    pepper: PEPPER,
    tiers: TIERS,
    clock,
    recheckMs: 1_000,
    trustMs: 60_000,
    lastUsedMs: 60_000,
  };
  const verifiers: Record<string, ApiKeyVerifier> = { "API key": createApiKeyVerifier(verifierOpts) };
  if (base) {
    const url = pathToFileURL(join(base, "src/api/api-key-auth.ts")).href;
    const mod = (await import(url)) as { createApiKeyVerifier: typeof createApiKeyVerifier };
    verifiers["API key (base)"] = mod.createApiKeyVerifier(verifierOpts);
  }
  const nowS = Math.floor(Date.now() / 1000);
  const hs = await signToken({ secret, customerId: "bench", tier: "pro", ttlS: 3_600, clock, tiers: TIERS });
  const ed = await new SignJWT({ customer_id: "bench", tier: "pro" })
    .setProtectedHeader({ alg: "EdDSA", kid: "ed" })
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + 3_600)
    .sign(privateKey);
  const cases: [string, ReturnType<typeof createTokenRouter>, string][] = [
    ...Object.entries(verifiers).map(
      ([name, v]) =>
        [name, createTokenRouter(jwt, v), `Bearer ${key}`] as [
          string,
          ReturnType<typeof createTokenRouter>,
          string,
        ],
    ),
    ["HS256 JWT", createTokenRouter(jwt, verifiers["API key"]!), `Bearer ${hs}`],
    ["EdDSA JWT", createTokenRouter(jwt, verifiers["API key"]!), `Bearer ${ed}`],
  ];
  // The revocation channel is up in a running API (the long cache age); verified once, then cached.
  for (const v of Object.values(verifiers)) v.channel(true);
  for (const [name, router, header] of cases) {
    await router.authenticate(header);
    if (router.peek(header) === undefined) throw new Error(`${name}: not cached after a verification`);
  }
  const us: Record<string, number[]> = {};
  for (let r = 0; r < reps; r++) {
    for (const [name, router, header] of cases) {
      const before = process.cpuUsage();
      for (let i = 0; i < n; i++) if (router.peek(header) === undefined) throw new Error(`${name}: miss`);
      const used = process.cpuUsage(before);
      (us[name] ??= []).push((used.user + used.system) / n);
    }
  }
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}; ${reps} × ${n} cached uses each`,
  );
  for (const [name, xs] of Object.entries(us))
    console.log(
      `${name.padEnd(16)} ${fmt(median(xs), 2)} µs CPU per use [${xs.map((x) => fmt(x, 2)).join(" ")}]`,
    );
} finally {
  await stopAll();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
