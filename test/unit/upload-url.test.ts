// Presigned upload URLs: the signature binds asset id, size, type and expiry (a known answer pins the
// MAC input), expiry and malformed values are refused without exceptions, and POST /uploads bodies
// are checked field by field.
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isAppError } from "../../src/core/errors.js";
import {
  UPLOAD_MAX_BYTES,
  checkUploadSignature,
  parseUploadRequest,
  signUploadPath,
  type UploadGrant,
} from "../../src/core/upload-url.js";
import { deriveKey } from "../../src/core/url-signing.js";

const KEY = deriveKey(new TextEncoder().encode("root secret of thirty-two bytes!"), "upload-url");
const GRANT: UploadGrant = {
  assetId: "a_ABCDEFGHIJKLMNOPQRSTUV",
  bytes: 1234,
  contentType: "image/png",
  expUnixS: 2_000_000_000,
};
const NOW_MS = (GRANT.expUnixS - 60) * 1000;

function query(path: string): { exp: string; sig: string } {
  const url = new URL(path, "http://x");
  return { exp: url.searchParams.get("exp") ?? "", sig: url.searchParams.get("sig") ?? "" };
}

describe("signUploadPath", () => {
  it("is /uploads/<id>?exp=<s>&sig=HMAC-SHA256(key, 'upload\\n<id>\\n<bytes>\\n<type>\\n<exp>')", () => {
    const path = signUploadPath(KEY, GRANT);
    const expected = createHmac("sha256", KEY)
      .update("upload\na_ABCDEFGHIJKLMNOPQRSTUV\n1234\nimage/png\n2000000000")
      .digest("base64url");
    expect(path).toBe(`/uploads/a_ABCDEFGHIJKLMNOPQRSTUV?exp=2000000000&sig=${expected}`);
  });

  it("refuses grants outside the upload bounds (wiring bugs)", () => {
    expect(() => signUploadPath(KEY, { ...GRANT, bytes: 0 })).toThrow(RangeError);
    expect(() => signUploadPath(KEY, { ...GRANT, bytes: UPLOAD_MAX_BYTES + 1 })).toThrow(RangeError);
    expect(() => signUploadPath(KEY, { ...GRANT, assetId: "j_ABCDEFGHIJKLMNOPQRSTUV" })).toThrow(TypeError);
    expect(() => signUploadPath(new Uint8Array(0), GRANT)).toThrow(TypeError);
  });
});

describe("checkUploadSignature", () => {
  const { exp, sig } = query(signUploadPath(KEY, GRANT));
  const rest = { assetId: GRANT.assetId, bytes: GRANT.bytes, contentType: GRANT.contentType };

  it("accepts the URL it made until its expiry, then says expired", () => {
    expect(checkUploadSignature(KEY, rest, exp, sig, NOW_MS)).toBeUndefined();
    expect(checkUploadSignature(KEY, rest, exp, sig, GRANT.expUnixS * 1000 - 1)).toBeUndefined();
    expect(checkUploadSignature(KEY, rest, exp, sig, GRANT.expUnixS * 1000)).toBe("expired");
  });

  it("refuses the signature for any other asset, size, type, expiry or key", () => {
    const other = { ...rest };
    expect(
      checkUploadSignature(KEY, { ...other, assetId: "a_ABCDEFGHIJKLMNOPQRSTUW" }, exp, sig, NOW_MS),
    ).toBe("signature");
    expect(checkUploadSignature(KEY, { ...other, bytes: 1235 }, exp, sig, NOW_MS)).toBe("signature");
    expect(checkUploadSignature(KEY, { ...other, contentType: "image/jpeg" }, exp, sig, NOW_MS)).toBe(
      "signature",
    );
    expect(checkUploadSignature(KEY, rest, String(GRANT.expUnixS + 1), sig, NOW_MS)).toBe("signature");
    const objectKey = deriveKey(new TextEncoder().encode("root secret of thirty-two bytes!"), "object-url");
    expect(checkUploadSignature(objectKey, rest, exp, sig, NOW_MS)).toBe("signature");
    // one character changed
    const flipped = `${sig.slice(0, -1)}${sig.endsWith("A") ? "B" : "A"}`;
    expect(checkUploadSignature(KEY, rest, exp, flipped, NOW_MS)).toBe("signature");
  });

  it.each<string | undefined>([undefined, "", "02000000000", "2e9", "-1", "99999999999999999"])(
    "calls exp=%j malformed",
    (badExp) => {
      expect(checkUploadSignature(KEY, rest, badExp, sig, NOW_MS)).toBe("malformed");
    },
  );

  it("calls a missing, padded or short signature malformed", () => {
    for (const bad of [undefined, "", `${sig}=`, sig.slice(1), `${sig.slice(0, 42)}+`]) {
      expect(checkUploadSignature(KEY, rest, exp, bad, NOW_MS)).toBe("malformed");
    }
  });
});

describe("parseUploadRequest", () => {
  it("takes {content_type, bytes} for each image type and the size bounds", () => {
    for (const type of ["image/png", "image/jpeg", "image/webp"]) {
      expect(parseUploadRequest({ content_type: type, bytes: 1 })).toEqual({ contentType: type, bytes: 1 });
    }
    expect(parseUploadRequest({ content_type: "image/png", bytes: UPLOAD_MAX_BYTES }).bytes).toBe(52_428_800);
  });

  it.each([
    [null, "body", "type"],
    ["x", "body", "type"],
    [{ content_type: "image/svg+xml", bytes: 1 }, "content_type", "enum"],
    [{ content_type: "IMAGE/PNG", bytes: 1 }, "content_type", "enum"],
    [{ content_type: null, bytes: 1 }, "content_type", "required"],
    [{ content_type: "image/png", bytes: -1 }, "bytes", "range"],
    [{ content_type: "image/png", bytes: Number.MAX_SAFE_INTEGER + 2 }, "bytes", "integer"],
    [{ content_type: "image/png", bytes: Number.NaN }, "bytes", "integer"],
    [{ content_type: "image/png", bytes: 1, ["k".repeat(500)]: 1 }, `${"k".repeat(64)}…`, "unknown"],
  ])("refuses %j (%s, %s)", (body, field, constraint) => {
    let caught: unknown;
    try {
      parseUploadRequest(body);
    } catch (err) {
      caught = err;
    }
    expect(isAppError(caught) && caught.status).toBe(400);
    expect(isAppError(caught) && caught.details).toEqual({ field, constraint });
  });
});
