// A JWKS endpoint on a loopback port for tests: serves whatever key set the test sets, counts its
// hits, and can go down (answers 503) or hang.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import type { CryptoKey, JWK, JWTPayload } from "jose";

export interface TestKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

/** An Ed25519 key pair whose public JWK carries `kid`. */
export async function edKey(kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" } };
}

/** An EdDSA JWT with `claims` (sub `cust` and exp in 10 minutes by default), its header naming `kid`. */
export function edToken(
  key: TestKey,
  claims: JWTPayload = {},
  kid: string | undefined = key.kid,
): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "cust", exp: nowS + 600, ...claims })
    .setProtectedHeader({ alg: "EdDSA", typ: "JWT", ...(kid === undefined ? {} : { kid }) })
    .sign(key.privateKey);
}

export interface JwksServer {
  readonly url: string;
  /** Requests answered (or refused) so far. */
  hits(): number;
  /** The keys served from now on. */
  serve(keys: readonly TestKey[]): void;
  /** While down, every request gets 503. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function startJwksServer(keys: readonly TestKey[] = []): Promise<JwksServer> {
  let body = JSON.stringify({ keys: keys.map((k) => k.jwk) });
  let down = false;
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits += 1;
    res.setHeader("connection", "close");
    if (down) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/jwk-set+json" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    hits: () => hits,
    serve(next) {
      body = JSON.stringify({ keys: next.map((k) => k.jwk) });
    },
    setDown(d) {
      down = d;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
