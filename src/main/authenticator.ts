// The bearer-token authenticator of a role that takes tokens (api, admin): JWTs (HS256, local public
// keys, JWKS_URL) and API keys with their revocation channel, each released at shutdown.
import type { RedisClient } from "../infra/redis-client.js";
import { createApiKeyVerifier } from "../api/api-key-auth.js";
import { listenForRevocations } from "../api/api-key-revocations.js";
import { createAuthenticator } from "../api/auth.js";
import { createRemoteKeySet, type RemoteKeySet } from "../api/jwks-remote.js";
import { createTokenRouter } from "../api/token-router.js";
import { closeRedis } from "../infra/redis.js";
import { createApiKeyStore } from "../queues/api-key-store.js";
import { createKeys } from "../queues/keys.js";
import { loadApiKeyPepper, NO_PEPPER_MESSAGE } from "./api-key-pepper.js";
import type { RoleContext } from "./role-context.js";
import type { Keys } from "./settings.js";

/**
 * The token router of a role: `redis` reads API keys; revocations arrive on a subscriber connection
 * of its own (README "API keys"). `logger` names the role.
 */
export async function createRoleAuthenticator(
  ctx: RoleContext & { keys: Keys },
  redis: RedisClient,
  logger: RoleContext["logger"],
) {
  const { env } = ctx.settings;
  const jwks = await jwksKeySet(ctx, logger);
  const jwtAuthenticator = createAuthenticator({
    ...(ctx.keys.jwt === undefined ? {} : { secret: ctx.keys.jwt }),
    publicKeys: ctx.keys.publicKeys ?? [],
    ...(jwks === undefined ? {} : { jwks }),
    tiers: Object.keys(ctx.settings.tiers),
    clock: ctx.clock,
    maxTtlS: env.JWT_MAX_TTL_S,
    ...(env.JWT_ISSUER ? { issuer: env.JWT_ISSUER } : {}),
    ...(env.JWT_AUDIENCE ? { audience: env.JWT_AUDIENCE } : {}),
  });
  const pepper = await loadApiKeyPepper(ctx.settings);
  if (pepper === undefined) logger.info(NO_PEPPER_MESSAGE);
  const tierNames = Object.keys(ctx.settings.tiers);
  const apiKeys = createApiKeyVerifier({
    store: createApiKeyStore({ redis, prefix: env.REDIS_PREFIX, clock: ctx.clock, tiers: tierNames }),
    pepper,
    tiers: tierNames,
    clock: ctx.clock,
    recheckMs: env.API_KEY_RECHECK_MS,
    trustMs: env.API_KEY_TRUST_MS,
    lastUsedMs: env.API_KEY_LAST_USED_MS,
    onTouchError: (err) => logger.debug({ err }, "API key last-used write failed"),
  });
  const keySubscriber = ctx.redisConnector.connect("subscriber", "rg-api-keys-sub");
  ctx.runtime.defer("api key subscriber", () => closeRedis(keySubscriber));
  const channel = createKeys(env.REDIS_PREFIX).apiKeyChannel;
  const revocations = listenForRevocations({
    subscriber: keySubscriber,
    channel,
    verifier: apiKeys,
    clock: ctx.clock,
    recheckMs: env.API_KEY_RECHECK_MS,
  });
  await revocations.start();
  ctx.runtime.defer("api key revocations", () => revocations.stop());
  return createTokenRouter(jwtAuthenticator, apiKeys);
}

/**
 * The JWKS_URL key set, fetched once before the role listens; an endpoint that fails then is logged
 * and retried when a token needs it (HS256 and local keys work meanwhile).
 */
async function jwksKeySet(
  ctx: RoleContext,
  logger: RoleContext["logger"],
): Promise<RemoteKeySet | undefined> {
  const { env } = ctx.settings;
  if (env.JWKS_URL === undefined) return undefined;
  const jwks = createRemoteKeySet({
    url: new URL(env.JWKS_URL),
    cooldownMs: env.JWKS_COOLDOWN_MS,
    maxAgeMs: env.JWKS_CACHE_MAX_AGE_MS,
    timeoutMs: env.JWKS_TIMEOUT_MS,
    clock: ctx.clock,
  });
  ctx.runtime.defer("jwks", () => jwks.close());
  await jwks.refresh();
  const status = jwks.status();
  if (status.last_error !== null) logger.warn({ jwks: status }, "JWKS_URL could not be fetched at start");
  else logger.info({ jwks: { url: status.url, keys: status.keys } }, "JWKS keys loaded");
  return jwks;
}
