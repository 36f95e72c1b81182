// The HMAC key of stored API keys (README "API keys"): API_KEY_PEPPER, else one derived from the dev
// secret; with JWT_SECRET set (a real deployment) it is never made up, and API keys stay off.
import { deriveKey } from "../core/url-signing.js";
import { loadOrCreateDevSecret } from "../infra/dev-secret.js";
import type { Settings } from "./settings.js";

/**
 * `API_KEY_PEPPER` as bytes when set. Without it: with `JWT_SECRET` set, undefined (API keys off: a
 * pepper made up per host would differ between hosts and keys would fail at random); else a key
 * derived from the dev secret under DATA_DIR for the purpose "api-key-pepper".
 */
export async function loadApiKeyPepper(settings: Settings): Promise<Uint8Array | undefined> {
  const { env } = settings;
  if (env.API_KEY_PEPPER) return new TextEncoder().encode(env.API_KEY_PEPPER);
  // a real deployment (a JWT secret or an identity provider's keys): nothing made up per host
  if (env.JWT_SECRET || env.JWT_PUBLIC_KEYS || env.JWKS_URL) return undefined;
  return deriveKey(await loadOrCreateDevSecret(settings.dataDir), "api-key-pepper");
}

/** Why API keys are off, for the start log and the CLI's error. */
export const NO_PEPPER_MESSAGE =
  "API keys are off: JWT_SECRET, JWT_PUBLIC_KEYS or JWKS_URL is set and API_KEY_PEPPER is not (set API_KEY_PEPPER, at least 32 " +
  "characters, to the same value on every API process and wherever `keys create` runs)";
