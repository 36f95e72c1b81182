// API keys in Redis (API.md §1, §5): one hash per key, found by its prefix, holding the key's keyed
// hash and what it grants — never the key or its secret — plus an index of prefixes per customer.
import type { RedisClient } from "../infra/redis-client.js";
import {
  API_KEY_HASH_BYTES,
  API_KEY_PREFIX_RE,
  MIN_PEPPER_BYTES,
  generateApiKey,
  hashApiKey,
} from "../core/api-key.js";
import { DAY_MS, type Clock } from "../core/time.js";
import { createKeys } from "./keys.js";

/** The longest lifetime a key may be given (`--expires`): 100 years, a date every tool can show. */
export const API_KEY_MAX_LIFETIME_MS = 36_500 * DAY_MS;

/** What `keys list` shows of a key: everything but its hash. */
export interface ApiKeyInfo {
  readonly prefix: string;
  readonly customerId: string;
  readonly name?: string;
  readonly tier: string;
  readonly admin: boolean;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** Last successful use as the API processes report it (throttled), ms; absent when never used. */
  readonly lastUsedAt?: number;
  /** ms; absent when the key never expires. */
  readonly expiresAt?: number;
  /** ms; absent while the key is not revoked. */
  readonly revokedAt?: number;
}

/** A key's record with its keyed hash (HMAC-SHA256(pepper, key)): what the API verifies against. */
export interface StoredApiKey extends ApiKeyInfo {
  readonly hash: Buffer;
}

/** What a new key grants. */
export interface NewApiKey {
  readonly customerId: string;
  /** Default `free`; must be a tier of the tiers table given to the store. */
  readonly tier?: string;
  readonly admin?: boolean;
  /** A label for people (1–100 printable characters). */
  readonly name?: string;
  /** ms since the epoch; absent (and no `ttlMs`): never expires. */
  readonly expiresAt?: number;
  /** Lifetime from the creation time, ms (instead of `expiresAt`). */
  readonly ttlMs?: number;
}

export type RevokeOutcome = "revoked" | "already_revoked" | "unknown";

export interface ApiKeyStore {
  /**
   * Makes a key and stores its hash. The key is returned once and kept nowhere.
   * @throws TypeError for a malformed customer id or name, a tier outside the table, an expiry not in
   *   the future, or a store made without a pepper.
   */
  create(input: NewApiKey): Promise<{ readonly key: string; readonly info: ApiKeyInfo }>;
  /** The record of `prefix` (revoked and expired ones too), or undefined. */
  find(prefix: string): Promise<StoredApiKey | undefined>;
  /** Every key, or one customer's, oldest first. */
  list(customerId?: string): Promise<ApiKeyInfo[]>;
  /**
   * Marks the key revoked (kept, so `list` shows it) and, in the same script, publishes its prefix on
   * the revocation channel. `publish: false` leaves the message out (tests of a lost message).
   */
  revoke(prefix: string, opts?: { readonly publish?: boolean }): Promise<RevokeOutcome>;
  /** Records a use at `at` (ms) on an existing key; a no-op for an unknown prefix. */
  touch(prefix: string, at: number): Promise<void>;
}

export interface ApiKeyStoreOptions {
  readonly redis: RedisClient;
  /** REDIS_PREFIX. */
  readonly prefix: string;
  readonly clock: Clock;
  /** The tier names a key may have (the tiers table's). */
  readonly tiers: readonly string[];
  /** HMAC key of the stored hashes; needed by `create` only. */
  readonly pepper?: Uint8Array;
}

/** Same rule as a JWT's customer id (auth.ts). */
const CUSTOMER_ID_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;
// eslint-disable-next-line no-control-regex
const NAME_RE = /^[^\u0000-\u001f\u007f]{1,100}$/;
const DEFAULT_TIER = "free";
/** Fresh prefixes tried before giving up (a collision of 12 random characters is ~never). */
const CREATE_TRIES = 3;

// Hash fields: h hash (hex), c customer, t tier, a admin (1/0), n name, ca created, lu last used,
// ex expires, rv revoked (all times in ms).

/*
 * KEYS[1] the key's record, KEYS[2] all prefixes, KEYS[3] the customer's prefixes.
 * ARGV[1] the prefix, ARGV[2..] field/value pairs of the record.
 * Returns 1 when stored, 0 when the prefix is taken.
 */
const CREATE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1`;

/*
 * KEYS[1] the key's record. ARGV[1] now (ms), ARGV[2] the channel ('' = do not publish), ARGV[3] the prefix.
 * Returns 1 revoked now, 2 revoked before (published again), 0 unknown.
 */
const REVOKE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local before = redis.call('HEXISTS', KEYS[1], 'rv') == 1
if not before then redis.call('HSET', KEYS[1], 'rv', ARGV[1]) end
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
if before then return 2 end
return 1`;

/* KEYS[1] the key's record. ARGV[1] the time of use (ms). Sets `lu` on an existing record only. */
const TOUCH_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'lu', ARGV[1]) end
return 0`;

function optionalMs(v: string | undefined): number | undefined {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** The record in `fields`, or undefined when it is absent or not one this store wrote. */
function parseRecord(prefix: string, fields: Record<string, string>): StoredApiKey | undefined {
  const { h, c, t, a, n, ca } = fields;
  if (h === undefined || c === undefined || t === undefined || ca === undefined) return undefined;
  const hash = Buffer.from(h, "hex");
  if (hash.byteLength !== API_KEY_HASH_BYTES) return undefined;
  const lastUsedAt = optionalMs(fields["lu"]);
  const expiresAt = optionalMs(fields["ex"]);
  const revokedAt = optionalMs(fields["rv"]);
  return {
    prefix,
    customerId: c,
    ...(n === undefined || n === "" ? {} : { name: n }),
    tier: t,
    admin: a === "1",
    createdAt: Number(ca),
    ...(lastUsedAt === undefined ? {} : { lastUsedAt }),
    ...(expiresAt === undefined ? {} : { expiresAt }),
    ...(revokedAt === undefined ? {} : { revokedAt }),
    hash,
  };
}

/**
 * The API key store on `redis` under REDIS_PREFIX. Every write that checks something first is one
 * script (create refuses a taken prefix; revoke marks and publishes in one step).
 * @throws TypeError when `tiers` is empty or the pepper is shorter than 32 bytes.
 */
export function createApiKeyStore(opts: ApiKeyStoreOptions): ApiKeyStore {
  const { redis, clock } = opts;
  const keys = createKeys(opts.prefix);
  const tiers = new Set(opts.tiers);
  if (tiers.size === 0) throw new TypeError("tiers must name at least one tier");
  if (opts.pepper !== undefined && opts.pepper.byteLength < MIN_PEPPER_BYTES) {
    throw new TypeError(`the API key pepper must have at least ${MIN_PEPPER_BYTES} bytes`);
  }
  const pepper = opts.pepper === undefined ? undefined : new Uint8Array(opts.pepper);

  async function readMany(prefixes: readonly string[]): Promise<StoredApiKey[]> {
    if (prefixes.length === 0) return [];
    const pipeline = redis.pipeline();
    for (const p of prefixes) pipeline.hgetall(keys.apiKey(p));
    const replies = (await pipeline.exec()) ?? [];
    const out: StoredApiKey[] = [];
    replies.forEach(([err, fields], i) => {
      if (err) throw err;
      const record = parseRecord(prefixes[i]!, fields as Record<string, string>);
      if (record) out.push(record);
    });
    return out;
  }

  return {
    async create(input) {
      if (pepper === undefined) throw new TypeError("no API key pepper: keys cannot be created");
      if (typeof input.customerId !== "string" || !CUSTOMER_ID_RE.test(input.customerId)) {
        throw new TypeError("customer id must be 1-128 characters of [A-Za-z0-9_.:@-]");
      }
      const tier = input.tier ?? DEFAULT_TIER;
      if (!tiers.has(tier)) throw new TypeError(`unknown tier ${tier} (tiers: ${[...tiers].join(", ")})`);
      if (input.name !== undefined && !NAME_RE.test(input.name)) {
        throw new TypeError("name must be 1-100 characters without control characters");
      }
      const now = clock();
      const tooFar = () =>
        new RangeError(`an API key expires at most ${API_KEY_MAX_LIFETIME_MS / DAY_MS}d ahead`);
      if (input.ttlMs !== undefined && input.ttlMs > API_KEY_MAX_LIFETIME_MS) throw tooFar();
      if (input.ttlMs !== undefined && !(Number.isSafeInteger(input.ttlMs) && input.ttlMs > 0)) {
        throw new TypeError("ttlMs must be a positive integer");
      }
      const expiresAt = input.ttlMs === undefined ? input.expiresAt : now + input.ttlMs;
      if (expiresAt !== undefined && !(Number.isSafeInteger(expiresAt) && expiresAt > now)) {
        throw new TypeError("expiresAt must be a time in the future (ms)");
      }
      if (expiresAt !== undefined && expiresAt - now > API_KEY_MAX_LIFETIME_MS) throw tooFar();
      for (let i = 0; i < CREATE_TRIES; i++) {
        const { key, prefix } = generateApiKey();
        const info: ApiKeyInfo = {
          prefix,
          customerId: input.customerId,
          ...(input.name === undefined ? {} : { name: input.name }),
          tier,
          admin: input.admin === true,
          createdAt: now,
          ...(expiresAt === undefined ? {} : { expiresAt }),
        };
        const fields = [
          "h",
          hashApiKey(pepper, key).toString("hex"),
          "c",
          info.customerId,
          "t",
          tier,
          "a",
          info.admin ? "1" : "0",
          "ca",
          String(now),
          ...(info.name === undefined ? [] : ["n", info.name]),
          ...(info.expiresAt === undefined ? [] : ["ex", String(info.expiresAt)]),
        ];
        const stored = await redis.eval(
          CREATE_LUA,
          3,
          keys.apiKey(prefix),
          keys.apiKeys,
          keys.apiKeysOf(info.customerId),
          prefix,
          ...fields,
        );
        if (stored === 1) return { key, info };
      }
      throw new Error("could not find a free API key prefix");
    },

    async find(prefix) {
      if (!API_KEY_PREFIX_RE.test(prefix)) return undefined;
      return parseRecord(prefix, await redis.hgetall(keys.apiKey(prefix)));
    },

    async list(customerId) {
      if (customerId !== undefined && !CUSTOMER_ID_RE.test(customerId)) return [];
      const prefixes = await redis.smembers(
        customerId === undefined ? keys.apiKeys : keys.apiKeysOf(customerId),
      );
      const records = await readMany(prefixes.filter((p) => API_KEY_PREFIX_RE.test(p)));
      return records
        .map(({ hash: _hash, ...info }) => info)
        .sort((a, b) => a.createdAt - b.createdAt || a.prefix.localeCompare(b.prefix));
    },

    async revoke(prefix, o = {}) {
      if (!API_KEY_PREFIX_RE.test(prefix)) return "unknown";
      const channel = o.publish === false ? "" : keys.apiKeyChannel;
      const r = await redis.eval(REVOKE_LUA, 1, keys.apiKey(prefix), String(clock()), channel, prefix);
      return r === 1 ? "revoked" : r === 2 ? "already_revoked" : "unknown";
    },

    async touch(prefix, at) {
      if (!API_KEY_PREFIX_RE.test(prefix)) return;
      await redis.eval(TOUCH_LUA, 1, keys.apiKey(prefix), String(Math.floor(at)));
    },
  };
}
