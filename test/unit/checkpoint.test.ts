// Signed checkpoints (src/core/checkpoint.ts): RFC 8032 Ed25519 vectors through @noble/ed25519 and
// node:crypto, each side verifying the other's signatures, and the RFC 8037 JWK thumbprint vector.
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import * as ed from "@noble/ed25519";
import { describe, expect, it } from "vitest";
import { canonicalBytes } from "../../src/core/canonical-json.js";
import {
  checkpointProblem,
  findPublicKey,
  publicJwk,
  publicKeyOf,
  signCheckpoint,
  verifyCheckpoint,
  type CheckpointBody,
  type SignedCheckpoint,
} from "../../src/core/checkpoint.js";

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));
const b64u = (b: Uint8Array): string => Buffer.from(b).toString("base64url");

// RFC 8032 §7.1
const RFC8032 = [
  {
    name: "TEST 1",
    secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2",
    secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3",
    secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
  {
    name: "TEST SHA(abc)",
    secret: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
    public: "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    message:
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    signature:
      "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
  },
];

/** node:crypto key objects of a raw seed and public key, through their JWKs. */
function nodeKeys(seed: Uint8Array, pub: Uint8Array) {
  const jwk = { kty: "OKP", crv: "Ed25519", x: b64u(pub) };
  return {
    privateKey: createPrivateKey({ key: { ...jwk, d: b64u(seed) }, format: "jwk" }),
    publicKey: createPublicKey({ key: jwk, format: "jwk" }),
  };
}

describe("RFC 8032 Ed25519 vectors", () => {
  for (const v of RFC8032) {
    it(`${v.name}: @noble/ed25519 and node:crypto both give the published key and signature`, async () => {
      const seed = hex(v.secret);
      const msg = hex(v.message);
      const pub = await publicKeyOf(seed);
      expect(Buffer.from(pub).toString("hex")).toBe(v.public);
      expect(Buffer.from(await ed.signAsync(msg, seed)).toString("hex")).toBe(v.signature);
      expect(await ed.verifyAsync(hex(v.signature), msg, pub, { zip215: false })).toBe(true);
      const { privateKey, publicKey } = nodeKeys(seed, pub);
      expect(sign(null, msg, privateKey).toString("hex")).toBe(v.signature);
      expect(verify(null, msg, publicKey, hex(v.signature))).toBe(true);
      // and a changed message fails on both sides
      const other = Uint8Array.from([...msg, 0]);
      expect(await ed.verifyAsync(hex(v.signature), other, pub)).toBe(false);
      expect(verify(null, other, publicKey, hex(v.signature))).toBe(false);
    });
  }
});

const seed = hex(RFC8032[1]?.secret ?? "");
const body = async (over: Partial<CheckpointBody> = {}): Promise<CheckpointBody> => ({
  log_id: "rg-0123456789abcdef",
  tree_size: 42,
  root_hash: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
  timestamp: "2026-12-07T01:02:03.456Z",
  key_id: (await publicJwk(await publicKeyOf(seed))).kid,
  ...over,
});

describe("checkpoints", () => {
  it("are signed over the RFC 8785 bytes of the body, verifiably by node:crypto", async () => {
    const pub = await publicKeyOf(seed);
    const cp = await signCheckpoint(await body(), seed);
    expect(await verifyCheckpoint(cp, pub)).toBe(true);
    const { signature, ...rest } = cp;
    const jwkKey = createPublicKey({ key: { ...(await publicJwk(pub)) }, format: "jwk" });
    expect(verify(null, canonicalBytes(rest), jwkKey, Buffer.from(signature, "base64url"))).toBe(true);
    // the signed text is exactly the canonical form: members sorted, no spaces
    expect(Buffer.from(canonicalBytes(rest)).toString()).toBe(
      `{"key_id":"${cp.key_id}","log_id":"rg-0123456789abcdef","root_hash":"${cp.root_hash}","timestamp":"2026-12-07T01:02:03.456Z","tree_size":42}`,
    );
  });

  it("made by node:crypto verify here", async () => {
    const pub = await publicKeyOf(seed);
    const b = await body({ tree_size: 7 });
    const sig = sign(null, canonicalBytes(b), nodeKeys(seed, pub).privateKey);
    expect(await verifyCheckpoint({ ...b, signature: sig.toString("base64url") }, pub)).toBe(true);
  });

  it("fail with any member changed, another key, or a malformed signature", async () => {
    const pub = await publicKeyOf(seed);
    const cp = await signCheckpoint(await body(), seed);
    const changed: SignedCheckpoint[] = [
      { ...cp, tree_size: 43 },
      { ...cp, root_hash: `${cp.root_hash.slice(0, -1)}9` },
      { ...cp, log_id: "rg-other" },
      { ...cp, timestamp: "2026-12-07T01:02:03.457Z" },
      { ...cp, key_id: "another" },
      { ...cp, signature: `${cp.signature.slice(0, -2)}AA` },
      { ...cp, signature: cp.signature.slice(1) },
      { ...cp, signature: `${cp.signature}=` },
      { ...cp, extra: 1 } as SignedCheckpoint,
    ];
    for (const c of changed) expect(await verifyCheckpoint(c, pub)).toBe(false);
    expect(await verifyCheckpoint(cp, await publicKeyOf(hex(RFC8032[0]?.secret ?? "")))).toBe(false);
    expect(await verifyCheckpoint(cp, new Uint8Array(32).fill(0xff))).toBe(false);
    expect(await verifyCheckpoint(cp, new Uint8Array(31))).toBe(false);
  });

  it("refuse to sign a malformed body", async () => {
    await expect(signCheckpoint(await body({ tree_size: -1 }), seed)).rejects.toThrow(/tree_size/);
    await expect(signCheckpoint(await body({ root_hash: "AB".repeat(32) }), seed)).rejects.toThrow(
      /root_hash/,
    );
    await expect(signCheckpoint(await body({ timestamp: "2026-12-07T01:02:03Z" }), seed)).rejects.toThrow(
      /timestamp/,
    );
    await expect(signCheckpoint(await body(), new Uint8Array(16))).rejects.toThrow(/32 bytes/);
    expect(checkpointProblem({ ...(await body()) }, false)).toBeUndefined();
    expect(checkpointProblem(await body())).toBe("missing signature");
  });
});

describe("public keys as JWKs", () => {
  it("take the RFC 7638 thumbprint as kid (RFC 8037 Appendix A.3's vector)", async () => {
    const jwk = await publicJwk(hex(RFC8032[0]?.public ?? ""));
    expect(jwk).toEqual({
      kty: "OKP",
      crv: "Ed25519",
      x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
      kid: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
      alg: "EdDSA",
      use: "sig",
    });
    // the thumbprint by hand: SHA-256 of the required members in lexicographic order
    const manual = createHash("sha256")
      .update(`{"crv":"Ed25519","kty":"OKP","x":"${jwk.x}"}`)
      .digest("base64url");
    expect(manual).toBe(jwk.kid);
  });

  it("are found by kid, and only as Ed25519 keys", async () => {
    const jwk = await publicJwk(await publicKeyOf(seed));
    const jwks = { keys: [{ kid: jwk.kid, kty: "RSA", n: "x", e: "AQAB" }, jwk] };
    expect(findPublicKey(jwks, jwk.kid)).toEqual(await publicKeyOf(seed));
    expect(findPublicKey(jwks, "nope")).toBeUndefined();
    expect(findPublicKey({ keys: [{ ...jwk, x: "short" }] }, jwk.kid)).toBeUndefined();
    expect(findPublicKey(null, jwk.kid)).toBeUndefined();
    expect(findPublicKey({ keys: "no" }, jwk.kid)).toBeUndefined();
  });
});
