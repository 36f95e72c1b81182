// Unknown setting names: a variable that looks like ours but is not one stops the start; the rest of
// a real environment (PATH, HOME, proxies, Kubernetes service links, npm's variables) passes.
import { describe, expect, it } from "vitest";
import { KNOWN_NAMES, parseEnv } from "../../src/config/env.js";
import { editDistance, familiesOf, unknownSettings } from "../../src/config/env-names.js";

function refusal(source: Record<string, string>): string {
  try {
    parseEnv(source);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("parseEnv accepted the environment");
}

describe("unknown setting names", () => {
  it("refuses a near miss with one error naming it and the name meant", () => {
    expect(refusal({ JWT_PUBLIC_KEY: "/keys.pem" })).toBe(
      "invalid environment:\n  JWT_PUBLIC_KEY: not a render-gateway setting (did you mean JWT_PUBLIC_KEYS?)",
    );
    expect(refusal({ JWKS_URI: "https://idp.example/jwks" })).toContain("did you mean JWKS_URL?");
    expect(refusal({ REDIS_ULR: "redis://x" })).toContain("did you mean REDIS_URL?");
    expect(refusal({ LOGLEVEL: "debug" })).toContain("did you mean LOG_LEVEL?");
    expect(refusal({ jwt_secret: "x".repeat(40) })).toContain("did you mean JWT_SECRET?");
  });

  it("refuses any name of one of our families, even far from every known name", () => {
    for (const name of ["JWT_KEYS_FILE", "JWKS_ENDPOINT", "SIM_URL", "REDIS_DB", "WORKER_THREADS", "CAS_DIR"])
      expect(refusal({ [name]: "x" })).toContain(`${name}: not a render-gateway setting`);
  });

  it("refuses the API key settings' family, a family's word alone and names past the compared length", () => {
    for (const name of ["API_KEY_PEPPER_FILE", "API_KEY_RECHECK_SECONDS", "JWKS", `JWT_${"X".repeat(70)}`])
      expect(refusal({ [name]: "x" })).toContain(`${name}: not a render-gateway setting`);
    const families = familiesOf(KNOWN_NAMES);
    for (const f of ["API_KEY", "INPUT_IMAGE", "SYNC_OUTPUT"]) expect(families.has(f), f).toBe(true);
  });

  it("knows the pool and Cluster settings API.md names", () => {
    for (const name of ["POOLS_FILE", "WORKER_POOL", "REDIS_CLUSTER_NODES"])
      expect(unknownSettings([name], KNOWN_NAMES)).toEqual([]);
  });

  it("leaves other software's common names alone unless close to one of ours", () => {
    const names = ["API_URL", "API_TOKEN", "HTTP_PORT", "INPUT_NAME", "JOB_NAME", "DEFAULT_REGION"];
    expect(unknownSettings(names, KNOWN_NAMES)).toEqual([]);
  });

  it("lists every unknown name at once", () => {
    const message = refusal({ JWT_PUBLIC_KEY: "a", JWKS_COOLDOWN: "1", PORT: "8080" });
    expect(message.split("\n")).toHaveLength(3);
    expect(message).toContain("JWKS_COOLDOWN: not a render-gateway setting (did you mean JWKS_COOLDOWN_MS?)");
  });

  it("accepts this process's real environment and what a shell, npm, a proxy or Kubernetes set", () => {
    expect(() => parseEnv(process.env)).not.toThrow();
    const foreign = {
      PATH: "/usr/bin",
      HOME: "/root",
      HOSTNAME: "pod-1",
      PWD: "/app",
      LANG: "C.UTF-8",
      TERM: "xterm",
      NODE_OPTIONS: "--enable-source-maps",
      NODE_ENV: "production",
      CI: "true",
      TZ: "UTC",
      npm_config_cache: "/root/.npm",
      npm_lifecycle_event: "start",
      INIT_CWD: "/app",
      HTTP_PROXY: "http://proxy:3128",
      HTTPS_PROXY: "http://proxy:3128",
      NO_PROXY: "localhost",
      http_proxy: "http://proxy:3128",
      REDIS_SERVICE_HOST: "10.0.0.7",
      REDIS_SERVICE_PORT: "6379",
      REDIS_SERVICE_PORT_REDIS: "6379",
      REDIS_PORT: "tcp://10.0.0.7:6379",
      REDIS_PORT_6379_TCP: "tcp://10.0.0.7:6379",
      REDIS_PORT_6379_TCP_ADDR: "10.0.0.7",
      REDIS_PORT_6379_TCP_PROTO: "tcp",
      REDIS_PORT_6379_TCP_PORT: "6379",
    };
    expect(unknownSettings(Object.keys(foreign), KNOWN_NAMES)).toEqual([]);
    expect(parseEnv(foreign).PORT).toBe(8080);
  });

  it("derives the families from the schema's own names", () => {
    const families = familiesOf(KNOWN_NAMES);
    for (const f of ["JWT", "JWKS", "REDIS", "SIM", "CAS", "OUTBOUND", "BREAKER"])
      expect(families.has(f), f).toBe(true);
    for (const f of ["PORT", "HOST", "LOG", "DATA", "PUBLIC", "API", "HTTP", "INPUT", "JOB", "SYNC"])
      expect(families.has(f), f).toBe(false);
  });

  it("measures edit distance, giving up beyond the bound", () => {
    expect(editDistance("JWT_PUBLIC_KEY", "JWT_PUBLIC_KEYS", 2)).toBe(1);
    expect(editDistance("REDIS_ULR", "REDIS_URL", 2)).toBe(2);
    expect(editDistance("HOME", "HOST", 1)).toBe(2);
    expect(editDistance("A".repeat(60), "B", 2)).toBe(3);
  });
});

describe("JWKS settings", () => {
  it("takes the defaults of the cool-down, cache age and timeout", () => {
    const env = parseEnv({});
    expect([env.JWKS_COOLDOWN_MS, env.JWKS_CACHE_MAX_AGE_MS, env.JWKS_TIMEOUT_MS]).toEqual([
      30_000, 600_000, 5_000,
    ]);
    expect(env.JWKS_URL).toBeUndefined();
    expect(env.JWT_PUBLIC_KEYS).toBeUndefined();
  });

  it("allows https anywhere and plain http to loopback only", () => {
    for (const url of [
      "https://idp.example/.well-known/jwks.json",
      "http://127.0.0.1:9000/jwks",
      "http://localhost/j",
      "http://[::1]:80/j",
    ])
      expect(parseEnv({ JWKS_URL: url }).JWKS_URL).toBe(url);
    for (const url of [
      "http://idp.example/jwks",
      "ftp://idp.example/jwks",
      "file:///etc/jwks.json",
      "not a url",
    ])
      expect(() => parseEnv({ JWKS_URL: url }), url).toThrow(/JWKS_URL/);
  });

  it("refuses credentials in the URL (fetch sends none; the error text would carry them)", () => {
    for (const url of ["https://user:pw@idp.example/jwks", "https://token@idp.example/jwks"])
      expect(() => parseEnv({ JWKS_URL: url }), url).toThrow(/JWKS_URL must not hold credentials/);
    // a query (a provider's own token) is fine: /ready and the errors show the URL without it
    expect(parseEnv({ JWKS_URL: "https://idp.example/jwks?k=1" }).JWKS_URL).toBe(
      "https://idp.example/jwks?k=1",
    );
  });
});
