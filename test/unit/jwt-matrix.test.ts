// The JWT matrix for every accepted algorithm (HS256, EdDSA, RS256, ES256), all key sources at once:
// each refusal row must fail for each algorithm, each acceptance row must pass.
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";
import type { CryptoKey, JWTPayload } from "jose";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAuthenticator, type Authenticator } from "../../src/api/auth.js";
import { parsePublicKeyFile, type PublicKey } from "../../src/api/jwt-keys.js";
import { isAppError } from "../../src/core/errors.js";

const SECRET = new TextEncoder().encode("a test secret that is at least 32 bytes long");
const T0 = 1_800_000_000_000;
const T0_S = T0 / 1000;
const ISS = "https://issuer.example";
const AUD = "render-gateway";
const MAX_TTL_S = 3_600;
let now = T0;
const clock = (): number => now;
beforeEach(() => {
  now = T0;
});

type Alg = "HS256" | "EdDSA" | "RS256" | "ES256";
const PUBLIC: readonly Exclude<Alg, "HS256">[] = ["EdDSA", "RS256", "ES256"];

interface Signer {
  readonly alg: Alg;
  readonly kid: string | undefined;
  readonly key: CryptoKey | Uint8Array;
  /** A key of the same type that the gateway does not know. */
  readonly wrong: CryptoKey | Uint8Array;
  /** SPKI PEM text of the public key (for HS256: the RSA key's). */
  readonly pem: string;
}

const signers = new Map<Alg, Signer>();
let publicKeys: readonly PublicKey[];

async function pair(alg: Exclude<Alg, "HS256">) {
  return generateKeyPair(alg, { extractable: true });
}

beforeAll(async () => {
  let file = "# kid lines, then SPKI PEM keys\n";
  const jwks: unknown[] = [];
  for (const alg of PUBLIC) {
    const { privateKey, publicKey } = await pair(alg);
    const { privateKey: wrong } = await pair(alg);
    const kid = `${alg.toLowerCase()}-1`;
    const pem = await exportSPKI(publicKey);
    signers.set(alg, { alg, kid, key: privateKey, wrong, pem });
    // EdDSA and RS256 come from the PEM form, ES256 from the JWKS form: both formats in the matrix.
    if (alg === "ES256") jwks.push({ ...(await exportJWK(publicKey)), kid, use: "sig" });
    else file += `kid: ${kid}\n${pem}\n`;
  }
  publicKeys = [
    ...(await parsePublicKeyFile(file, "pem file")),
    ...(await parsePublicKeyFile(JSON.stringify({ keys: jwks }), "jwks file")),
  ];
  const rsa = signers.get("RS256")!;
  signers.set("HS256", {
    alg: "HS256",
    kid: undefined,
    key: SECRET,
    wrong: new TextEncoder().encode("another secret, also at least 32 bytes long!"),
    pem: rsa.pem,
  });
});

function auth(): Authenticator {
  return createAuthenticator({
    secret: SECRET,
    publicKeys,
    tiers: ["free", "pro"],
    clock,
    maxTtlS: MAX_TTL_S,
    issuer: ISS,
    audience: AUD,
  });
}

const exp = (deltaS: number): number => T0_S + deltaS;
const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");

interface Variant {
  readonly claims?: JWTPayload;
  readonly drop?: readonly string[];
  readonly key?: CryptoKey | Uint8Array;
  readonly header?: Record<string, unknown>;
}

async function token(s: Signer, v: Variant = {}): Promise<string> {
  const claims: JWTPayload = { sub: "cust", iss: ISS, aud: AUD, exp: exp(600), ...v.claims };
  for (const d of v.drop ?? []) delete claims[d];
  const header = { alg: s.alg, typ: "JWT", ...(s.kid === undefined ? {} : { kid: s.kid }), ...v.header };
  return new SignJWT(claims).setProtectedHeader(header).sign(v.key ?? s.key);
}

async function outcome(a: Authenticator, t: string): Promise<"accepted" | "refused"> {
  try {
    await a.authenticate(`Bearer ${t}`);
    return "accepted";
  } catch (err) {
    if (!isAppError(err) || err.status !== 401) throw err;
    expect(err.message).not.toContain(t);
    return "refused";
  }
}

const ALGS: readonly Alg[] = ["HS256", "EdDSA", "RS256", "ES256"];

describe.each(ALGS)("%s", (alg) => {
  const s = () => signers.get(alg)!;

  it("accepts a valid token, with customer, tier and exp", async () => {
    const a = auth();
    const t = await token(s(), { claims: { tier: "pro" } });
    expect(await a.authenticate(`Bearer ${t}`)).toEqual({
      customerId: "cust",
      tier: "pro",
      admin: false,
      expiresAt: exp(600) * 1000,
    });
  });

  it("serves a repeated token from the verified-token cache (peek too)", async () => {
    const a = auth();
    const h = `Bearer ${await token(s())}`;
    expect(a.peek(h)).toBeUndefined();
    const p = await a.authenticate(h);
    expect(a.peek(h)).toBe(p);
    expect(await a.authenticate(h)).toBe(p);
    expect(a.stats()).toMatchObject({ verifications: 1, cached: 1 });
  });

  it("refuses alg none", async () => {
    const claims = { sub: "cust", iss: ISS, aud: AUD, exp: exp(600) };
    const kid = s().kid === undefined ? {} : { kid: s().kid };
    const t = `${b64url({ alg: "none", typ: "JWT", ...kid })}.${b64url(claims)}.`;
    expect(await outcome(auth(), t)).toBe("refused");
  });

  it("refuses a token signed with the wrong key", async () => {
    expect(await outcome(auth(), await token(s(), { key: s().wrong }))).toBe("refused");
  });

  it("refuses HS256 signed with the public key's PEM text as the secret (with and without its kid)", async () => {
    const pemSecret = new TextEncoder().encode(s().pem);
    const kid = signers.get(alg === "HS256" ? "RS256" : alg)!.kid;
    for (const header of [{ alg: "HS256", kid }, { alg: "HS256" }]) {
      const t = await token(s(), { key: pemSecret, header });
      expect(await outcome(auth(), t)).toBe("refused");
    }
  });

  it("refuses a wrong iss and a wrong aud", async () => {
    expect(await outcome(auth(), await token(s(), { claims: { iss: "https://evil.example" } }))).toBe(
      "refused",
    );
    expect(await outcome(auth(), await token(s(), { claims: { aud: "someone-else" } }))).toBe("refused");
    expect(await outcome(auth(), await token(s(), { drop: ["iss"] }))).toBe("refused");
  });

  it("refuses a token expired beyond the 30 s tolerance and accepts one within it", async () => {
    expect(await outcome(auth(), await token(s(), { claims: { exp: exp(-31) } }))).toBe("refused");
    expect(await outcome(auth(), await token(s(), { claims: { exp: exp(-29) } }))).toBe("accepted");
  });

  it("refuses an nbf in the future beyond the tolerance", async () => {
    expect(await outcome(auth(), await token(s(), { claims: { nbf: exp(31) } }))).toBe("refused");
    expect(await outcome(auth(), await token(s(), { claims: { nbf: exp(29) } }))).toBe("accepted");
  });

  it("refuses a token without exp", async () => {
    expect(await outcome(auth(), await token(s(), { drop: ["exp"] }))).toBe("refused");
  });

  it(alg === "HS256" ? "ignores a kid (one secret)" : "refuses an unknown kid", async () => {
    const t = await token(s(), { header: { kid: "no-such-kid" } });
    expect(await outcome(auth(), t)).toBe(alg === "HS256" ? "accepted" : "refused");
  });

  it("refuses a lifetime above JWT_MAX_TTL_S", async () => {
    expect(await outcome(auth(), await token(s(), { claims: { exp: exp(MAX_TTL_S + 31) } }))).toBe("refused");
    expect(await outcome(auth(), await token(s(), { claims: { exp: exp(MAX_TTL_S + 30) } }))).toBe(
      "accepted",
    );
  });
});

describe("algorithm per key type", () => {
  it("refuses a token whose alg differs from the type of its kid's key", async () => {
    const ed = signers.get("EdDSA")!;
    for (const other of ["RS256", "ES256"] as const) {
      const s = signers.get(other)!;
      expect(await outcome(auth(), await token(s, { header: { kid: ed.kid } }))).toBe("refused");
    }
  });

  it("takes the only local key of the token's algorithm when there is no kid", async () => {
    for (const alg of PUBLIC) {
      const s = signers.get(alg)!;
      expect(await outcome(auth(), await token({ ...s, kid: undefined }))).toBe("accepted");
    }
  });

  it("refuses HS384, RS512, ES384 and PS256 headers", async () => {
    const payload = b64url({ sub: "cust", iss: ISS, aud: AUD, exp: exp(600) });
    for (const alg of ["HS384", "RS512", "ES384", "PS256", "Ed25519", "EdDSA "]) {
      const t = `${b64url({ alg, kid: "eddsa-1" })}.${payload}.c2ln`;
      expect(await outcome(auth(), t)).toBe("refused");
    }
  });

  it("refuses HS256 tokens when no secret is configured", async () => {
    const a = createAuthenticator({ publicKeys, tiers: ["free"], clock, maxTtlS: MAX_TTL_S });
    const hs = signers.get("HS256")!;
    expect(await outcome(a, await token(hs, { drop: ["iss", "aud"] }))).toBe("refused");
    const ed = signers.get("EdDSA")!;
    expect(await outcome(a, await token(ed, { drop: ["iss", "aud"] }))).toBe("accepted");
    expect(a.sources()).toEqual({
      hs256: false,
      public_keys: [
        { kid: "eddsa-1", alg: "EdDSA" },
        { kid: "rs256-1", alg: "RS256" },
        { kid: "es256-1", alg: "ES256" },
      ],
      jwks: null,
    });
  });

  it("needs at least one key source", () => {
    expect(() => createAuthenticator({ tiers: ["free"], clock, maxTtlS: MAX_TTL_S })).toThrow(TypeError);
  });
});
