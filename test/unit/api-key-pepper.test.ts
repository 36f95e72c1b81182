// The API-key pepper is never made up per host in a real deployment: with a JWT secret or an identity
// provider's keys configured and no API_KEY_PEPPER, API keys are off.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadApiKeyPepper } from "../../src/main/api-key-pepper.js";
import { loadSettings } from "../../src/main/settings.js";

const dir = mkdtempSync(join(tmpdir(), "rg-pepper-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the API-key pepper", () => {
  it("is API_KEY_PEPPER when set", async () => {
    const pepper = await loadApiKeyPepper(
      loadSettings({ DATA_DIR: dir, JWKS_URL: "https://idp.example/jwks", API_KEY_PEPPER: "p".repeat(32) }),
    );
    expect(Buffer.from(pepper!).toString()).toBe("p".repeat(32));
  });

  it("is none (API keys off) with a JWT secret or an identity provider and no API_KEY_PEPPER", async () => {
    for (const env of [
      { JWT_SECRET: "s".repeat(32) },
      { JWKS_URL: "https://idp.example/.well-known/jwks.json" },
    ]) {
      expect(await loadApiKeyPepper(loadSettings({ DATA_DIR: dir, ...env }))).toBeUndefined();
    }
  });

  it("is derived from the dev secret on a development setup", async () => {
    const pepper = await loadApiKeyPepper(loadSettings({ DATA_DIR: dir }));
    expect(pepper?.byteLength).toBeGreaterThanOrEqual(32);
  });
});
