// Per-tenant webhook signing secrets (`whsec_...`) in Redis: created on first use, rotated with the
// old one signing beside the new for an overlap (README "Webhooks"). Secrets are never logged.
import type { RedisClient } from "../infra/redis-client.js";
import { newWebhookSecret } from "../core/webhook-delivery.js";
import { createKeys } from "./keys.js";

/**
 * Rotates a tenant's secret in one step.
 * KEYS[1] the tenant's secret hash. ARGV[1] the new secret, ARGV[2] now (ms), ARGV[3] overlap (ms).
 * The current secret (if any) becomes `prev`, valid until now + overlap (dropped when the overlap is
 * 0); a `prev` still in its overlap from an earlier rotation is replaced. Returns `prev_until` (0 when
 * no previous secret signs any more).
 */
const ROTATE_LUA = `
local cur = redis.call('HGET', KEYS[1], 'cur')
local untilMs = 0
if cur and tonumber(ARGV[3]) > 0 then
  untilMs = tonumber(ARGV[2]) + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'prev', cur, 'prev_until', untilMs)
else
  redis.call('HDEL', KEYS[1], 'prev', 'prev_until')
end
redis.call('HSET', KEYS[1], 'cur', ARGV[1])
return untilMs
`;

const ROTATE_COMMAND = "rg_wh_rotate";

/** A tenant's secrets as the routes show them. */
export interface SecretView {
  readonly secret: string;
  /** Until when (ms) the previous secret keeps signing beside `secret`; absent when none does. */
  readonly previousUntil?: number;
}

export interface WebhookSecrets {
  /** The tenant's current secret, created on the first call. */
  current(customer: string): Promise<SecretView>;
  /** Replaces the current secret by a new one; the old one signs beside it for the overlap. */
  rotate(customer: string): Promise<SecretView>;
  /**
   * The secrets that sign a delivery now: the current one (created if the tenant has none yet), then
   * the previous one while its overlap lasts.
   */
  signing(customer: string): Promise<string[]>;
}

export interface WebhookSecretsOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly clock: () => number;
  /** WEBHOOK_SECRET_OVERLAP_MS. */
  readonly overlapMs: number;
  readonly randomBytes: (n: number) => Uint8Array;
}

export function createWebhookSecrets(opts: WebhookSecretsOptions): WebhookSecrets {
  const keys = createKeys(opts.prefix);
  const { redis } = opts;
  if (!(ROTATE_COMMAND in redis)) redis.defineCommand(ROTATE_COMMAND, { numberOfKeys: 1, lua: ROTATE_LUA });
  const rotateCommand = (redis as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[
    ROTATE_COMMAND
  ]!.bind(redis);

  /** The hash, with `cur` set first if it was missing (HSETNX: one creation wins any race). */
  async function read(customer: string): Promise<Record<string, string>> {
    const key = keys.webhookSecret(customer);
    const replies = await redis
      .multi()
      .hsetnx(key, "cur", newWebhookSecret(opts.randomBytes))
      .hgetall(key)
      .exec();
    const [err, hash] = replies?.[1] ?? [new Error("no reply"), undefined];
    if (err) throw err;
    return hash as Record<string, string>;
  }

  const view = (h: Record<string, string>): SecretView => {
    const until = Number(h.prev_until);
    const live = h.prev !== undefined && Number.isFinite(until) && until > opts.clock();
    return { secret: h.cur ?? "", ...(live ? { previousUntil: until } : {}) };
  };

  return {
    async current(customer) {
      return view(await read(customer));
    },
    async rotate(customer) {
      const secret = newWebhookSecret(opts.randomBytes);
      const until = Number(
        await rotateCommand(keys.webhookSecret(customer), secret, opts.clock(), opts.overlapMs),
      );
      return { secret, ...(until > 0 ? { previousUntil: until } : {}) };
    },
    async signing(customer) {
      const h = await read(customer);
      const v = view(h);
      return v.previousUntil === undefined ? [v.secret] : [v.secret, h.prev!];
    },
  };
}
