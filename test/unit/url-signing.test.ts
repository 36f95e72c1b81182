import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  deriveKey,
  outputExpiry,
  signObjectPath,
  verifyObjectSignature,
} from "../../src/core/url-signing.js";

const KEY = new Uint8Array(
  Buffer.from("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hex"),
);
const DIGEST = "sha256-" + "ab".repeat(32);
const BLAKE = "blake3-" + "0f".repeat(32);
/** The output URL lifetime in force in most cases below (OUTPUT_URL_TTL_S). */
const TTL = 86_400;

function parse(path: string): { digest: string; exp: string; sig: string } {
  const url = new URL(path, "http://x");
  const digest = url.pathname.replace(/^\/objects\//, "");
  return { digest, exp: url.searchParams.get("exp") ?? "", sig: url.searchParams.get("sig") ?? "" };
}

describe("deriveKey", () => {
  it("is HMAC-SHA256(secret, 'render-gateway/' + purpose)", () => {
    const secret = new TextEncoder().encode("root secret of thirty-two bytes!");
    const expected = createHmac("sha256", secret).update("render-gateway/object-url").digest();
    expect(Buffer.from(deriveKey(secret, "object-url"))).toEqual(expected);
  });
  it("matches a fixed known answer computed with openssl", () => {
    // printf 'render-gateway/jwt' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001…1f
    expect(Buffer.from(deriveKey(KEY, "jwt")).toString("hex")).toBe(
      "6345a205f937242a7a71009036dfe20836347edd5e63add69e91b8a0fc3d4672",
    );
  });
  it("gives unrelated 32-byte keys for different purposes", () => {
    const jwt = deriveKey(KEY, "jwt");
    const url = deriveKey(KEY, "object-url");
    expect(jwt).toHaveLength(32);
    expect(Buffer.from(jwt).equals(Buffer.from(url))).toBe(false);
  });
  it("refuses an empty secret or purpose", () => {
    expect(() => deriveKey(new Uint8Array(0), "jwt")).toThrow(TypeError);
    expect(() => deriveKey(KEY, "")).toThrow(TypeError);
  });
});

describe("signObjectPath", () => {
  it("matches an independently computed HMAC over '<digest>\\n<exp>'", () => {
    const exp = 1_795_000_000;
    const sig = createHmac("sha256", KEY).update(`${DIGEST}\n${exp}`).digest("base64url");
    expect(signObjectPath(KEY, DIGEST, exp)).toBe(`/objects/${DIGEST}?exp=${exp}&sig=${sig}`);
  });
  it("matches a fixed known answer computed with openssl", () => {
    // printf 'sha256-abab…ab\n0' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001…1f -binary | basenc --base64url
    expect(parse(signObjectPath(KEY, DIGEST, 0)).sig).toBe("WUx4y-dNZUQQ_Qc-i_JE49ESblsSJPUptIzLEk_TTYk");
  });
  it("signs blake3 digests too", () => {
    const path = signObjectPath(KEY, BLAKE, 10);
    const { exp, sig } = parse(path);
    expect(verifyObjectSignature(KEY, BLAKE, exp, sig, 10, TTL)).toBe(true);
  });
  it("refuses malformed digests and expiries", () => {
    expect(() => signObjectPath(KEY, "../etc/passwd", 1)).toThrow(TypeError);
    expect(() => signObjectPath(KEY, DIGEST.toUpperCase(), 1)).toThrow(TypeError);
    expect(() => signObjectPath(KEY, DIGEST, -1)).toThrow(RangeError);
    expect(() => signObjectPath(KEY, DIGEST, 1.5)).toThrow(RangeError);
    expect(() => signObjectPath(new Uint8Array(0), DIGEST, 1)).toThrow(TypeError);
  });
});

describe("verifyObjectSignature", () => {
  const now = 1_800_000_000;
  const { exp, sig } = parse(signObjectPath(KEY, DIGEST, now + 60));

  it("accepts a valid, unexpired signature (including exp == now)", () => {
    expect(verifyObjectSignature(KEY, DIGEST, exp, sig, now, TTL)).toBe(true);
    expect(verifyObjectSignature(KEY, DIGEST, exp, sig, now + 60, TTL)).toBe(true);
  });
  it("rejects an expired signature", () => {
    expect(verifyObjectSignature(KEY, DIGEST, exp, sig, now + 61, TTL)).toBe(false);
  });
  it("treats exp=0 as never expiring while the lifetime is 0 (OUTPUT_URL_TTL_S=0)", () => {
    const forever = parse(signObjectPath(KEY, DIGEST, 0));
    expect(forever.exp).toBe("0");
    expect(verifyObjectSignature(KEY, DIGEST, "0", forever.sig, Number.MAX_SAFE_INTEGER, 0)).toBe(true);
  });
  it("rejects a tampered digest, expiry, signature or key", () => {
    const other = "sha256-" + "ac".repeat(32);
    expect(verifyObjectSignature(KEY, other, exp, sig, now, TTL)).toBe(false);
    expect(verifyObjectSignature(KEY, DIGEST, String(now + 61), sig, now, TTL)).toBe(false);
    expect(verifyObjectSignature(KEY, DIGEST, "0", sig, now, TTL)).toBe(false);
    const flipped = (sig.startsWith("A") ? "B" : "A") + sig.slice(1);
    expect(verifyObjectSignature(KEY, DIGEST, exp, flipped, now, TTL)).toBe(false);
    expect(verifyObjectSignature(deriveKey(KEY, "other"), DIGEST, exp, sig, now, TTL)).toBe(false);
  });
  it("rejects a non-canonical spelling of the same signature's last character", () => {
    // The 43rd base64url character carries 2 padding bits: variants decode to the same bytes.
    const last = sig.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const idx = alphabet.indexOf(last);
    const variant = sig.slice(0, -1) + alphabet[idx ^ 1]!;
    expect(Buffer.from(variant, "base64url").equals(Buffer.from(sig, "base64url"))).toBe(true);
    expect(verifyObjectSignature(KEY, DIGEST, exp, variant, now, TTL)).toBe(false);
  });
  it("rejects missing and malformed values without throwing", () => {
    const cases: Array<[string, string | undefined, string | undefined]> = [
      [DIGEST, undefined, sig],
      [DIGEST, exp, undefined],
      [DIGEST, "", sig],
      [DIGEST, `0${exp}`, sig],
      [DIGEST, `+${exp}`, sig],
      [DIGEST, "1.8e9", sig],
      [DIGEST, "-1", sig],
      [DIGEST, "99999999999999999999", sig],
      [DIGEST, exp, `${sig}=`],
      [DIGEST, exp, sig.slice(1)],
      [DIGEST, exp, `${sig.slice(1)}+`],
      ["sha256-../../etc", exp, sig],
      ["", exp, sig],
    ];
    for (const [d, e, s] of cases) expect(verifyObjectSignature(KEY, d, e, s, now, TTL)).toBe(false);
  });
  it("refuses exp=0 while a lifetime is in force", () => {
    const forever = parse(signObjectPath(KEY, DIGEST, 0));
    expect(verifyObjectSignature(KEY, DIGEST, "0", forever.sig, now, TTL)).toBe(false);
    expect(verifyObjectSignature(KEY, DIGEST, "0", forever.sig, now, 1)).toBe(false);
  });
  it("refuses an exp beyond what the gateway issues now (now + lifetime, rounded up to the hour)", () => {
    const latest = outputExpiry(now, TTL);
    const at = (e: number) => parse(signObjectPath(KEY, DIGEST, e));
    expect(verifyObjectSignature(KEY, DIGEST, String(latest), at(latest).sig, now, TTL)).toBe(true);
    expect(verifyObjectSignature(KEY, DIGEST, String(latest + 1), at(latest + 1).sig, now, TTL)).toBe(false);
    const far = Number.MAX_SAFE_INTEGER;
    expect(verifyObjectSignature(KEY, DIGEST, String(far), at(far).sig, now, TTL)).toBe(false);
    // Issued under a 30-day lifetime, checked once it is 1 day: refused.
    const month = outputExpiry(now, 30 * 86_400);
    expect(verifyObjectSignature(KEY, DIGEST, String(month), at(month).sig, now, TTL)).toBe(false);
  });
  it("accepts every URL issued earlier under the same lifetime until it expires", () => {
    for (const issuedAgo of [0, 1, 1800, 3599, 3600, 7200, TTL - 1]) {
      const e = outputExpiry(now - issuedAgo, TTL);
      const { sig: s } = parse(signObjectPath(KEY, DIGEST, e));
      expect(verifyObjectSignature(KEY, DIGEST, String(e), s, now, TTL), `issued ${issuedAgo} s ago`).toBe(
        true,
      );
    }
  });
  it("with lifetime 0, still accepts an unexpired URL issued under an earlier, finite lifetime", () => {
    const e = outputExpiry(now, TTL);
    const { sig: s } = parse(signObjectPath(KEY, DIGEST, e));
    expect(verifyObjectSignature(KEY, DIGEST, String(e), s, now, 0)).toBe(true);
    expect(verifyObjectSignature(KEY, DIGEST, String(e), s, e + 1, 0)).toBe(false);
  });
  it("throws on a lifetime that is not a non-negative integer", () => {
    expect(() => verifyObjectSignature(KEY, DIGEST, exp, sig, now, -1)).toThrow(RangeError);
    expect(() => verifyObjectSignature(KEY, DIGEST, exp, sig, now, 1.5)).toThrow(RangeError);
  });
  it("throws on a non-finite clock instead of accepting every expiry", () => {
    expect(() => verifyObjectSignature(KEY, DIGEST, exp, sig, Number.NaN, TTL)).toThrow(TypeError);
  });
});

describe("outputExpiry", () => {
  it("rounds now + ttl up to the next whole hour", () => {
    const hour = 3600;
    const now = 1_800_000_123; // not on an hour
    const exp = outputExpiry(now, 86_400);
    expect(exp % hour).toBe(0);
    expect(exp).toBeGreaterThanOrEqual(now + 86_400);
    expect(exp - (now + 86_400)).toBeLessThan(hour);
  });
  it("is stable within one hour", () => {
    const base = 1_800_003_600; // on an hour boundary (divisible by 3600)
    expect(base % 3600).toBe(0);
    const a = outputExpiry(base + 1, 600);
    const b = outputExpiry(base + 2999, 600);
    expect(a).toBe(b);
    expect(a).toBe(base + 3600);
  });
  it("keeps an exact hour and never returns less than ttl from now", () => {
    expect(outputExpiry(3600, 3600)).toBe(7200);
    for (let now = 0; now < 7200; now += 37) expect(outputExpiry(now, 1)).toBeGreaterThanOrEqual(now + 1);
  });
  it("returns 0 (never) when ttl is 0", () => {
    expect(outputExpiry(1_800_000_123, 0)).toBe(0);
  });
  it("refuses negative or fractional inputs", () => {
    expect(() => outputExpiry(-1, 60)).toThrow(RangeError);
    expect(() => outputExpiry(1, -60)).toThrow(RangeError);
    expect(() => outputExpiry(1.5, 60)).toThrow(RangeError);
  });
});
