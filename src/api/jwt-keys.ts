// Public keys of JWTs (API.md §1): one algorithm per key type, the JWT_PUBLIC_KEYS file format.
import { createPublicKey } from "node:crypto";
import { importJWK, type CryptoKey, type JWK } from "jose";

/** The public-key algorithms accepted; each key type allows exactly one (see {@link algorithmOf}). */
export type PublicAlgorithm = "EdDSA" | "RS256" | "ES256";
export const PUBLIC_ALGORITHMS: readonly PublicAlgorithm[] = ["EdDSA", "RS256", "ES256"];

/** A verification key ready for jose, with the one algorithm its type allows. */
export interface PublicKey {
  /** The key id (`kid`); required for local keys, optional in a JWKS. */
  readonly kid: string | undefined;
  readonly alg: PublicAlgorithm;
  readonly key: CryptoKey;
  /** kid and key material: two keys with the same fingerprint verify the same tokens. */
  readonly fingerprint: string;
}

/** Longest `kid` accepted, in a file, a JWKS or a token header. */
export const MAX_KID_CHARS = 256;
/** Most keys one file or one JWKS may hold. */
export const MAX_KEYS = 100;
/** Smallest RSA modulus accepted (bits). */
const MIN_RSA_BITS = 2048;
const KID_RE = /^[\x21-\x7e]{1,256}$/;

/** Longest RSA modulus read (bits): jose's import does the rest; this bounds the decoding. */
const MAX_RSA_BITS = 16_384;

/** The bit length of an RSA modulus (`n`, base64url, leading zero bytes ignored); 0 if too long. */
function modulusBits(n: string): number {
  if (n.length > Math.ceil(MAX_RSA_BITS / 6) + 4) return 0;
  const bytes = Buffer.from(n, "base64url");
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}

/**
 * The one algorithm a public JWK may verify: RSA → RS256, EC P-256 → ES256, OKP Ed25519 → EdDSA.
 * An `HS256` token therefore never reaches a public key, and no key serves two algorithms.
 * @throws Error naming what is wrong: a private or symmetric key, another curve or key type, an RSA
 *   modulus under 2048 bits, an `alg` member naming another algorithm, a `use` other than `sig`.
 */
export function algorithmOf(jwk: Readonly<Record<string, unknown>>): PublicAlgorithm {
  if (jwk["d"] !== undefined || jwk["p"] !== undefined) throw new Error("a private key (public keys only)");
  let alg: PublicAlgorithm;
  const { kty, crv } = jwk;
  if (kty === "RSA") {
    const n = jwk["n"];
    if (typeof n !== "string" || modulusBits(n) < MIN_RSA_BITS)
      throw new Error(`an RSA key under ${MIN_RSA_BITS} bits`);
    alg = "RS256";
  } else if (kty === "EC" && crv === "P-256") alg = "ES256";
  else if (kty === "OKP" && crv === "Ed25519") alg = "EdDSA";
  else if (kty === "oct") throw new Error("a symmetric key (HS256 uses JWT_SECRET)");
  else throw new Error(`an unsupported key type ${JSON.stringify(kty)}/${JSON.stringify(crv)}`);
  if (jwk["alg"] !== undefined && jwk["alg"] !== alg)
    throw new Error(`alg ${JSON.stringify(jwk["alg"])} on a key that only allows ${alg}`);
  if (jwk["use"] !== undefined && jwk["use"] !== "sig") throw new Error(`use ${JSON.stringify(jwk["use"])}`);
  return alg;
}

const PUBLIC_MEMBERS = ["kty", "crv", "n", "e", "x", "y"] as const;

/**
 * One JWK (from a file or a JWKS) as a {@link PublicKey}; only its public members are imported.
 * @throws Error as {@link algorithmOf}, or when the kid is malformed or jose cannot import the key.
 */
export async function importPublicJwk(jwk: unknown): Promise<PublicKey> {
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) throw new Error("not a JSON object");
  const record = jwk as Record<string, unknown>;
  const kid = record["kid"];
  if (kid !== undefined && (typeof kid !== "string" || !KID_RE.test(kid)))
    throw new Error(`kid must be 1-${MAX_KID_CHARS} printable ASCII characters`);
  const alg = algorithmOf(record);
  const pub: Record<string, unknown> = {};
  for (const m of PUBLIC_MEMBERS) if (record[m] !== undefined) pub[m] = record[m];
  const key = await importJWK(pub as JWK, alg);
  if (key instanceof Uint8Array) throw new Error("not a public key");
  return Object.freeze({ kid, alg, key, fingerprint: JSON.stringify([kid, pub]) });
}

/**
 * The keys of a JWKS document (`{"keys": [...]}`): for a local file every key must import and carry
 * a unique kid (`strict`); from an endpoint, keys this gateway cannot use are left out and counted.
 * @throws Error when the document is not a JWKS, holds more than {@link MAX_KEYS} keys, or (strict)
 *   any key is refused or lacks a unique kid.
 */
export async function importJwks(
  doc: unknown,
  strict: boolean,
): Promise<{ keys: readonly PublicKey[]; skipped: number }> {
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (typeof doc !== "object" || doc === null || !Array.isArray(list))
    throw new Error('not a JWKS {"keys": [...]}');
  if (list.length > MAX_KEYS) throw new Error(`more than ${MAX_KEYS} keys`);
  const keys: PublicKey[] = [];
  let skipped = 0;
  for (const [i, jwk] of list.entries()) {
    try {
      const key = await importPublicJwk(jwk);
      if (strict && key.kid === undefined) throw new Error("no kid");
      if (strict && keys.some((k) => k.kid === key.kid)) throw new Error(`duplicate kid ${key.kid}`);
      keys.push(key);
    } catch (err) {
      if (strict) throw new Error(`key ${i}: ${(err as Error).message}`);
      skipped += 1;
    }
  }
  return { keys, skipped };
}

/**
 * The keys of a `JWT_PUBLIC_KEYS` file (README "Identity providers and public keys"), either
 *  - a JWKS JSON document `{"keys": [{"kid": …, "kty": …}, …]}`, every key with a unique kid, or
 *  - PEM SPKI public keys (`-----BEGIN PUBLIC KEY-----`), each preceded by a line `kid: <id>`;
 *    blank lines and lines starting with `#` are ignored.
 * @throws Error naming the file and the entry (or line) that is wrong; private keys are refused.
 */
export async function parsePublicKeyFile(text: string, where: string): Promise<readonly PublicKey[]> {
  try {
    if (text.trimStart().startsWith("{")) {
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (err) {
        throw new Error(`not valid JSON (${(err as Error).message})`);
      }
      return (await importJwks(doc, true)).keys;
    }
    return await parsePemEntries(text);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
}

async function parsePemEntries(text: string): Promise<readonly PublicKey[]> {
  const lines = text.split(/\r?\n/);
  const keys: PublicKey[] = [];
  let kid: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const at = `line ${i + 1}`;
    const kidMatch = /^kid:\s*(.*)$/.exec(line);
    if (kidMatch) {
      if (kid !== undefined) throw new Error(`${at}: a second kid before the key of kid ${kid}`);
      kid = kidMatch[1]!.trim();
      continue;
    }
    if (/^-----BEGIN [A-Z ]*PRIVATE KEY-----$/.test(line))
      throw new Error(`${at}: a private key (public keys only)`);
    if (line !== "-----BEGIN PUBLIC KEY-----")
      throw new Error(`${at}: expected "kid: <id>" or "-----BEGIN PUBLIC KEY-----"`);
    if (kid === undefined) throw new Error(`${at}: a PEM key without a "kid: <id>" line before it`);
    const end = lines.findIndex((l, j) => j > i && l.trim() === "-----END PUBLIC KEY-----");
    if (end < 0) throw new Error(`${at}: no -----END PUBLIC KEY----- line`);
    const pem = lines.slice(i, end + 1).join("\n");
    let jwk: Record<string, unknown>;
    try {
      jwk = createPublicKey({ key: pem, format: "pem" }).export({ format: "jwk" });
    } catch (err) {
      throw new Error(`${at}: not a PEM SPKI public key (${(err as Error).message})`);
    }
    const key = await importPublicJwk({ ...jwk, kid }).catch((err: unknown) => {
      throw new Error(`${at} (kid ${kid}): ${(err as Error).message}`);
    });
    if (keys.some((k) => k.kid === kid)) throw new Error(`${at}: duplicate kid ${kid}`);
    if (keys.length >= MAX_KEYS) throw new Error(`more than ${MAX_KEYS} keys`);
    keys.push(key);
    kid = undefined;
    i = end;
  }
  if (kid !== undefined) throw new Error(`kid ${kid} has no key after it`);
  if (keys.length === 0) throw new Error("no keys");
  return keys;
}
