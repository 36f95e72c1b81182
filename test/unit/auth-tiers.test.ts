// Tier names come from the tiers table (TIERS_FILE may define others), not from a list in the code.
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createAuthenticator, signToken } from "../../src/api/auth.js";
import { isAppError } from "../../src/core/errors.js";
import { DEFAULT_TIERS, parseTiers } from "../../src/core/tiers.js";

const SECRET = new TextEncoder().encode("a test secret that is at least 32 bytes long");
const T0 = 1_800_000_000_000;
const clock = () => T0;

const custom = parseTiers({
  free: { ...DEFAULT_TIERS.free },
  gold: { ...DEFAULT_TIERS.pro, weight: 8 },
});

async function tokenWithTier(tier: unknown): Promise<string> {
  return new SignJWT({ sub: "c", tier })
    .setProtectedHeader({ alg: "HS256" })
    .setExpirationTime(T0 / 1000 + 600)
    .sign(SECRET);
}

describe("tiers from the tiers table", () => {
  const auth = createAuthenticator({ secret: SECRET, tiers: Object.keys(custom), clock, maxTtlS: 86_400 });

  it("accepts a tier that TIERS_FILE defines", async () => {
    expect((await auth.authenticate(`Bearer ${await tokenWithTier("gold")}`)).tier).toBe("gold");
    expect((await auth.authenticate(`Bearer ${await tokenWithTier("free")}`)).tier).toBe("free");
  });

  it("refuses a built-in tier the table does not define (401)", async () => {
    const err: unknown = await auth.authenticate(`Bearer ${await tokenWithTier("pro")}`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAppError(err) && err.code).toBe("unauthorized");
  });

  it("requires the list of tiers", () => {
    expect(() => createAuthenticator({ secret: SECRET, tiers: [], clock, maxTtlS: 86_400 })).toThrow(
      TypeError,
    );
  });

  it("signs tokens for the table's tiers", async () => {
    const tiers = Object.keys(custom);
    const token = await signToken({ secret: SECRET, customerId: "c", tier: "gold", tiers, ttlS: 60, clock });
    expect((await auth.authenticate(`Bearer ${token}`)).tier).toBe("gold");
    await expect(
      signToken({ secret: SECRET, customerId: "c", tier: "pro", tiers, ttlS: 60, clock }),
    ).rejects.toThrow(TypeError);
    // without a table, the built-in tiers
    await expect(
      signToken({ secret: SECRET, customerId: "c", tier: "gold", ttlS: 60, clock }),
    ).rejects.toThrow(TypeError);
  });
});
