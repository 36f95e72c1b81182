// Which key verifies a JWT: the selection rule over HS256, local public keys and a JWKS endpoint
// (docs/decisions.md "Identity").
import type { CryptoKey, ProtectedHeaderParameters } from "jose";
import { MAX_KID_CHARS, PUBLIC_ALGORITHMS, type PublicAlgorithm, type PublicKey } from "./jwt-keys.js";
import type { RemoteKeySet, RemoteKeySetStatus } from "./jwks-remote.js";

/** The key sources as GET /ready shows them to admins; never a secret. */
export interface AuthSources {
  /** Whether HS256 tokens are accepted (JWT_SECRET or the dev secret). */
  readonly hs256: boolean;
  /** The keys of JWT_PUBLIC_KEYS. */
  readonly public_keys: readonly { kid: string | null; alg: PublicAlgorithm }[];
  /** The JWKS_URL source, or null. */
  readonly jwks: RemoteKeySetStatus | null;
}

/** A key and the single algorithm it may verify. */
export interface Selected {
  readonly key: Uint8Array | CryptoKey;
  readonly algorithms: readonly string[];
}

/** Where tokens' keys come from. */
export interface TokenKeys {
  /**
   * The key for a token's protected header.
   * @throws Error whose message says why none fits (kept as the 401's logged cause, never sent).
   */
  select(header: ProtectedHeaderParameters): Promise<Selected>;
  sources(): AuthSources;
  /** Called when keys were removed from a source (cached verifications must go). */
  onKeysRemoved(listener: () => void): void;
}

/** Options of {@link createTokenKeys}. */
export interface TokenKeysOptions {
  /** The HS256 key; absent: HS256 tokens are refused. */
  readonly secret?: Uint8Array;
  /** Keys of JWT_PUBLIC_KEYS, each with a unique kid. */
  readonly publicKeys?: readonly PublicKey[];
  /** The JWKS_URL key set. */
  readonly remote?: RemoteKeySet;
}

const isPublicAlgorithm = (alg: unknown): alg is PublicAlgorithm =>
  typeof alg === "string" && (PUBLIC_ALGORITHMS as readonly string[]).includes(alg);

/**
 * The selection rule. The header's `alg` picks the kind of key first, so a token can never choose
 * a key of another type: `HS256` → the shared secret only; `EdDSA`/`RS256`/`ES256` → public keys
 * only, each of which allows exactly its own algorithm; anything else (`none`, HS384, PS256…) is
 * refused. A public-key token with a `kid` takes the local key of that kid, else the JWKS endpoint's
 * (fetched when new, see createRemoteKeySet); without a `kid` it takes the only local key of its
 * algorithm, else the only JWKS key of it.
 */
export function createTokenKeys(opts: TokenKeysOptions): TokenKeys {
  const secret = opts.secret === undefined ? undefined : new Uint8Array(opts.secret);
  const local = opts.publicKeys ?? [];
  const { remote } = opts;
  const byKid = new Map(local.map((k) => [k.kid, k]));

  async function publicKey(alg: PublicAlgorithm, kid: string | undefined): Promise<PublicKey> {
    if (kid !== undefined) {
      const key = byKid.get(kid);
      if (key !== undefined) {
        if (key.alg !== alg) throw new Error(`kid ${kid} is a ${key.alg} key, the token says ${alg}`);
        return key;
      }
    } else {
      const ofAlg = local.filter((k) => k.alg === alg);
      if (ofAlg.length === 1) return ofAlg[0]!;
      if (ofAlg.length > 1) throw new Error(`no kid and ${ofAlg.length} local ${alg} keys`);
    }
    const found = await remote?.resolve(alg, kid);
    if (found === undefined) throw new Error(kid === undefined ? `no single ${alg} key` : "unknown kid");
    return found;
  }

  return {
    async select(header) {
      const { alg, kid } = header;
      if (kid !== undefined && (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_CHARS))
        throw new Error("malformed kid");
      if (alg === "HS256") {
        if (secret === undefined) throw new Error("HS256 tokens are not accepted");
        return { key: secret, algorithms: ["HS256"] };
      }
      if (!isPublicAlgorithm(alg)) throw new Error("algorithm not allowed");
      if (local.length === 0 && remote === undefined) throw new Error(`no ${alg} keys configured`);
      const { key } = await publicKey(alg, kid);
      return { key, algorithms: [alg] };
    },
    sources() {
      return {
        hs256: secret !== undefined,
        public_keys: local.map((k) => ({ kid: k.kid ?? null, alg: k.alg })),
        jwks: remote?.status() ?? null,
      };
    },
    onKeysRemoved(listener) {
      remote?.onKeysRemoved(listener);
    },
  };
}
