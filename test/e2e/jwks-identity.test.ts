// An identity provider's keys through a real API process: JWKS_URL on a loopback endpoint (EdDSA)
// and a JWT_PUBLIC_KEYS file (RS256) beside the HS256 secret; /ready shows the sources to admins;
// a misspelt setting stops `start` with a suggestion.
import { SignJWT, exportSPKI, generateKeyPair, type CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eHarness, call, foxRequest, submitJob, token, type Gateway } from "../helpers/processes.js";
import { edKey, edToken, startJwksServer, type JwksServer, type TestKey } from "../helpers/jwks-server.js";

let h: E2eHarness;
let idp: JwksServer;
let api: Gateway;
let key: TestKey;
let rsaPrivate: CryptoKey;

beforeAll(async () => {
  h = new E2eHarness();
  key = await edKey("idp-2026-01");
  idp = await startJwksServer([key]);
  const rsa = await generateKeyPair("RS256", { extractable: true });
  rsaPrivate = rsa.privateKey;
  const keyFile = h.writeFile("keys.pem", `kid: partner-rsa\n${await exportSPKI(rsa.publicKey)}`);
  api = await h.start("api", {
    env: { JWKS_URL: idp.url, JWKS_COOLDOWN_MS: "100", JWKS_TIMEOUT_MS: "2000", JWT_PUBLIC_KEYS: keyFile },
  });
});
afterAll(async () => {
  await h?.cleanup();
  await idp?.close();
});

describe("public-key JWTs through the API process", () => {
  it("admits a job with an EdDSA token from the JWKS endpoint (202)", async () => {
    const bearer = await edToken(key, { sub: "idp-customer", tier: "pro" });
    const { id } = await submitJob(api.url, bearer, foxRequest("a fox", 4));
    expect(id).toBeTruthy();
  });

  it("admits RS256 tokens of the key file and HS256 tokens alongside", async () => {
    const rs = await new SignJWT({ sub: "partner", exp: Math.floor(Date.now() / 1000) + 600 })
      .setProtectedHeader({ alg: "RS256", kid: "partner-rsa" })
      .sign(rsaPrivate);
    expect((await submitJob(api.url, rs, foxRequest("an owl", 4))).id).toBeTruthy();
    expect((await submitJob(api.url, await token("hs-customer"), foxRequest("a cat", 4))).id).toBeTruthy();
  });

  it("answers 401 for a token of a key the provider does not publish", async () => {
    const stranger = await edKey("idp-2026-01");
    const res = await call(api.url, "/queue", {
      method: "POST",
      token: await edToken(stranger),
      body: foxRequest("a fox", 4),
    });
    expect(res.status).toBe(401);
  });

  it("shows admins the key sources on /ready, never the secret", async () => {
    const admin = await edToken(key, { sub: "ops", scope: "admin" });
    const res = await call(api.url, "/ready", { token: admin });
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text) as { auth: Record<string, unknown> };
    expect(body.auth).toMatchObject({
      hs256: true,
      public_keys: [{ kid: "partner-rsa", alg: "RS256" }],
      jwks: { url: idp.url, last_error: null, keys: [{ kid: "idp-2026-01", alg: "EdDSA" }] },
    });
    expect((body.auth.jwks as { last_refresh: string }).last_refresh).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(text).not.toContain("e2e-secret");
    // Not for everyone.
    const plain = await call(api.url, "/ready", { token: await edToken(key, { sub: "someone" }) });
    expect(await plain.json()).not.toHaveProperty("auth");
  });

  it("takes no HS256 token of a key made up on the host when the provider's keys come without JWT_SECRET", async () => {
    const dataDir = h.tempDir();
    const provider = { JWT_SECRET: undefined, JWKS_URL: idp.url, JWKS_COOLDOWN_MS: "100" };
    // what the dev secret under this DATA_DIR signs (as a deployment without any identity setting would)
    const dev = await h.run(["token", "--customer", "mallory", "--scope", "admin"], {
      env: { JWT_SECRET: undefined },
      dataDir,
    });
    expect(dev.code, dev.stderr).toBe(0);
    const own = await h.start("api", { env: provider, dataDir, name: "api (provider only)" });
    expect(own.proc.stdout).not.toMatch(/dev token:/);
    expect(own.proc.stdout).toContain("tokens come from it");
    const refused = await call(own.url, "/ready", { token: dev.stdout.trim() });
    expect(await refused.json()).not.toHaveProperty("auth");
    const queued = await call(own.url, "/queue", {
      method: "POST",
      token: dev.stdout.trim(),
      body: foxRequest("a fox", 4),
    });
    expect(queued.status).toBe(401);
    await queued.arrayBuffer();
    // the provider's tokens work there, and the token command says why it makes none
    expect(
      (await submitJob(own.url, await edToken(key, { sub: "idp" }), foxRequest("an owl", 4))).id,
    ).toBeTruthy();
    const cli = await h.run(["token", "--customer", "c1"], { env: provider, dataDir });
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("this deployment takes no HS256 tokens");
  });

  it("refuses to start with a misspelt setting, suggesting the right name", async () => {
    const r = await h.run(["start", "--roles", "api"], {
      env: { JWT_PUBLIC_KEY: "/etc/keys.pem" },
      dataDir: h.tempDir(),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain(
      "JWT_PUBLIC_KEY: not a render-gateway setting (did you mean JWT_PUBLIC_KEYS?)",
    );
  });
});
