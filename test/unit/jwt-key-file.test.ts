// The JWT_PUBLIC_KEYS file: JWKS JSON or `kid:` + PEM SPKI entries; anything else stops the start.
import { generateKeyPairSync } from "node:crypto";
import { exportJWK, exportSPKI, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { algorithmOf, parsePublicKeyFile } from "../../src/api/jwt-keys.js";

const pemOf = (type: "ed25519" | "rsa" | "ec", opts: Record<string, unknown> = {}) =>
  generateKeyPairSync(type as "ed25519", opts as object).publicKey.export({
    type: "spki",
    format: "pem",
  }) as string;

describe("parsePublicKeyFile", () => {
  it("reads PEM entries, each after its kid line, with comments and blank lines", async () => {
    const file = [
      "# identity provider keys",
      "kid: ed-1",
      pemOf("ed25519"),
      "",
      "kid:   rsa-2026",
      pemOf("rsa", { modulusLength: 2048 }),
      "kid: ec-1",
      pemOf("ec", { namedCurve: "P-256" }),
    ].join("\n");
    const keys = await parsePublicKeyFile(file, "f");
    expect(keys.map((k) => [k.kid, k.alg])).toEqual([
      ["ed-1", "EdDSA"],
      ["rsa-2026", "RS256"],
      ["ec-1", "ES256"],
    ]);
  });

  it("reads a JWKS document", async () => {
    const { publicKey } = await generateKeyPair("EdDSA", { extractable: true });
    const keys = await parsePublicKeyFile(
      JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "a", alg: "EdDSA" }] }),
      "f",
    );
    expect(keys.map((k) => [k.kid, k.alg])).toEqual([["a", "EdDSA"]]);
  });

  it.each([
    ["a PEM key without a kid line", () => pemOf("ed25519"), /without a "kid/],
    ["a kid without a key", () => "kid: lonely\n", /no key after it/],
    ["a duplicate kid", () => `kid: a\n${pemOf("ed25519")}kid: a\n${pemOf("ed25519")}`, /duplicate kid a/],
    [
      "an RSA key under 2048 bits",
      () => `kid: r\n${pemOf("rsa", { modulusLength: 1024 })}`,
      /under 2048 bits/,
    ],
    ["a P-384 key", () => `kid: e\n${pemOf("ec", { namedCurve: "P-384" })}`, /unsupported key type/],
    [
      "a private key",
      () =>
        `kid: p\n${generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }) as string}`,
      /private key/,
    ],
    ["garbage", () => "hello", /line 1/],
    ["an empty file", () => "\n# nothing\n", /no keys/],
    ["broken JSON", () => "{ nope", /not valid JSON/],
    [
      "a JWKS key without kid",
      () => JSON.stringify({ keys: [{ kty: "OKP", crv: "Ed25519", x: "" }] }),
      /key 0/,
    ],
  ])("refuses %s, naming the file", async (_name, text, message) => {
    await expect(parsePublicKeyFile(text(), "JWT_PUBLIC_KEYS keys.pem")).rejects.toThrow(message);
    await expect(parsePublicKeyFile(text(), "JWT_PUBLIC_KEYS keys.pem")).rejects.toThrow(
      /JWT_PUBLIC_KEYS keys\.pem/,
    );
  });

  it("measures an RSA modulus by its bits, not by its length in characters", () => {
    const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" });
    const n = Buffer.from(jwk.n!, "base64url");
    expect(n.length).toBe(256);
    expect(algorithmOf({ ...jwk })).toBe("RS256");
    // The same 256 bytes with the top bit clear: a 2047-bit modulus, as many characters as before.
    n[0] = 0x7f;
    expect(() => algorithmOf({ ...jwk, n: n.toString("base64url") })).toThrow(/under 2048 bits/);
    // Leading zero bytes add characters, not bits.
    const padded = Buffer.concat([Buffer.alloc(8), n]).toString("base64url");
    expect(() => algorithmOf({ ...jwk, n: padded })).toThrow(/under 2048 bits/);
  });

  it("refuses a JWKS key with a symmetric key or an alg its type does not allow", async () => {
    const { publicKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = await exportJWK(publicKey);
    await expect(
      parsePublicKeyFile(JSON.stringify({ keys: [{ ...jwk, kid: "e", alg: "ES384" }] }), "f"),
    ).rejects.toThrow(/only allows ES256/);
    await expect(
      parsePublicKeyFile(JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0", kid: "s" }] }), "f"),
    ).rejects.toThrow(/symmetric/);
  });

  it("allows one algorithm per key type", async () => {
    const { publicKey } = await generateKeyPair("RS256", { extractable: true });
    expect(algorithmOf({ ...(await exportJWK(publicKey)) })).toBe("RS256");
    await expect(exportSPKI(publicKey)).resolves.toContain("BEGIN PUBLIC KEY");
    expect(() => algorithmOf({ kty: "OKP", crv: "Ed448", x: "" })).toThrow(/unsupported/);
    expect(() => algorithmOf({ kty: "OKP", crv: "Ed25519", x: "", use: "enc" })).toThrow(/use/);
  });
});
