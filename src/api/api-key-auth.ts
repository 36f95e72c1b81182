// Verifies opaque API keys (`rk_<prefix>_<secret>`, API.md §1) against their stored keyed hash, with a
// bounded cache whose answers are never older than API_KEY_RECHECK_MS (revocation bound), or
// API_KEY_TRUST_MS while the revocation channel is known to be delivering.
import { randomBytes } from "node:crypto";
import {
  digestApiKey,
  hashApiKey,
  parseApiKey,
  sameHash,
  API_KEY_HASH_BYTES,
  MIN_PEPPER_BYTES,
} from "../core/api-key.js";
import { AppError } from "../core/errors.js";
import { createLru } from "../core/lru.js";
import type { Clock } from "../core/time.js";
import type { ApiKeyStore, StoredApiKey } from "../queues/api-key-store.js";
import type { Principal } from "./auth.js";

/** Options of {@link createApiKeyVerifier}. */
export interface ApiKeyVerifierOptions {
  readonly store: Pick<ApiKeyStore, "find" | "touch">;
  /** HMAC key of the stored hashes; undefined: API keys are off and every `rk_` token is refused. */
  readonly pepper: Uint8Array | undefined;
  /** Tier names of the tiers table; a key whose tier is not among them is refused (401). */
  readonly tiers: readonly string[];
  readonly clock: Clock;
  /**
   * Longest time a cached answer is served without reading the key again (API_KEY_RECHECK_MS),
   * unless the revocation channel is up (see {@link ApiKeyVerifier.channel}).
   */
  readonly recheckMs: number;
  /**
   * Longest time a cached answer is served while the revocation channel is up (API_KEY_TRUST_MS):
   * every revocation then arrives as a message. Default `recheckMs`.
   */
  readonly trustMs?: number;
  /** Least time between two last-used writes of one key (API_KEY_LAST_USED_MS); 0: every use. */
  readonly lastUsedMs: number;
  /** Most keys remembered; default 10 000. */
  readonly cacheSize?: number;
  /** A last-used write failed (logged by the caller, at debug: it never fails a request). */
  readonly onTouchError?: (err: unknown) => void;
}

/** Counters for tests and metrics. */
export interface ApiKeyVerifierStats {
  /** Reads of a key's record in Redis (cache misses, re-checks). */
  readonly lookups: number;
  /** Uses answered from the cache. */
  readonly cacheHits: number;
  /** Keys in the cache now. */
  readonly cached: number;
  /** Keys dropped because their revocation was announced. */
  readonly revocations: number;
  /**
   * Keyed hashes (HMAC) computed: one per refusal and per first use of a cached entry; a key in use
   * is then matched by its digest (see {@link createApiKeyVerifier}).
   */
  readonly keyedHashes: number;
}

export interface ApiKeyVerifier {
  /**
   * The principal of an `rk_` token.
   * @throws AppError `unauthorized` (the same 401 as a refused JWT: same message and WWW-Authenticate)
   *   for a malformed, unknown, wrong, revoked or expired key, or one whose tier no longer exists; the
   *   error a Redis read fails with (answered 503) when the key must be read and cannot be.
   */
  authenticate(token: string): Promise<Principal>;
  /** The principal of a key verified less than `recheckMs` ago and still valid; else undefined. */
  peek(token: string): Principal | undefined;
  /** Forgets `prefix` at once (its revocation was announced). */
  revoked(prefix: string): void;
  /** Forgets every key (e.g. the revocation channel reconnected: messages may have been missed). */
  clear(): void;
  /**
   * Whether the revocation channel is up: subscribed and answering, so that a revocation reaches this
   * process as a message. Up, cached answers are served for `trustMs`; down (the start), `recheckMs`.
   */
  channel(up: boolean): void;
  stats(): ApiKeyVerifierStats;
}

/** One verified key: its hash, whom it names, and when its record was read. */
interface Entry {
  readonly hash: Buffer;
  readonly principal: Principal;
  /** When the read this entry comes from was sent (ms): served until this + recheckMs (or trustMs). */
  readonly checkedAt: number;
  /** Last time a use was written to Redis (ms). */
  touchedAt: number;
  /**
   * SHA-256 of the key that matched `hash` (set on its first use): later uses compare this digest,
   * one unkeyed hash instead of an HMAC. Never the key itself.
   */
  digest?: Buffer;
}

const REALM = 'Bearer realm="render-gateway"';
/** A key that never expires still carries a finite expiry in its principal. */
const NEVER = Number.MAX_SAFE_INTEGER;

/**
 * The same 401 as auth.ts's refusals (message, WWW-Authenticate): a client cannot tell a wrong key
 * from a bad JWT, nor why a key was refused. The reason stays in the cause, for the log.
 */
function refused(reason: string): AppError {
  return new AppError("unauthorized", "Invalid or expired token", {
    headers: { "WWW-Authenticate": `${REALM}, error="invalid_token"` },
    cause: new Error(reason),
  });
}

/**
 * Makes the API-key verifier. The cache maps a key's prefix to its verified entry (its hash, not the
 * key: no plaintext key is held once a request is answered); every use hashes the presented key and
 * compares it with `timingSafeEqual`: the first use of an entry with the stored HMAC, later ones with
 * the SHA-256 digest that first use left in the entry (a key in use costs one SHA-256, as cheap as a
 * cached JWT's lookup; an HMAC costs several times more). A key that does not match the digest is
 * checked against the HMAC as before. An entry is served while younger than `recheckMs` (`trustMs`
 * while the revocation channel is up) and re-read in the background once it is half that age, so a
 * key in use never waits for Redis and a revocation someone else wrote is seen within `recheckMs`
 * even without its message when the channel is not known to deliver; concurrent reads
 * of one prefix share one Redis call. An unknown prefix costs the same hash and compare, against a
 * dummy.
 *
 * @throws TypeError for a pepper shorter than 32 bytes or no tiers; RangeError for bad numbers.
 */
export function createApiKeyVerifier(opts: ApiKeyVerifierOptions): ApiKeyVerifier {
  const { store, clock, recheckMs, lastUsedMs } = opts;
  if (opts.pepper !== undefined && opts.pepper.byteLength < MIN_PEPPER_BYTES) {
    throw new TypeError(`the API key pepper must have at least ${MIN_PEPPER_BYTES} bytes`);
  }
  if (opts.tiers.length === 0) throw new TypeError("tiers must name at least one tier");
  if (!Number.isSafeInteger(recheckMs) || recheckMs < 1) throw new RangeError("recheckMs must be ≥ 1");
  const trustMs = opts.trustMs ?? recheckMs;
  if (!Number.isSafeInteger(trustMs) || trustMs < recheckMs)
    throw new RangeError("trustMs must be ≥ recheckMs");
  /** How long a cached answer is served now: longer while every revocation arrives as a message. */
  let maxAgeMs = recheckMs;
  if (!Number.isSafeInteger(lastUsedMs) || lastUsedMs < 0) throw new RangeError("lastUsedMs must be ≥ 0");
  const enabled = opts.pepper !== undefined;
  // Without a pepper, hashes are still computed (with a throwaway one) so every refusal costs the same.
  const pepper = new Uint8Array(opts.pepper ?? randomBytes(MIN_PEPPER_BYTES));
  const dummy = randomBytes(API_KEY_HASH_BYTES);
  const tiers: ReadonlySet<string> = new Set(opts.tiers);
  const cache = createLru<string, Entry>(opts.cacheSize ?? 10_000);
  const inflight = new Map<string, Promise<Entry | undefined>>();
  /**
   * Prefixes Redis had no usable key for, and when it said so: answered without Redis for as long
   * as a found key is (a flood of one bogus key costs one read per re-check, not one per request).
   */
  const absent = createLru<string, number>(opts.cacheSize ?? 10_000);
  let lookups = 0;
  let cacheHits = 0;
  let revocations = 0;
  let keyedHashes = 0;
  const keyedHash = (key: string): Buffer => {
    keyedHashes += 1;
    return hashApiKey(pepper, key);
  };

  /** The entry of a record that grants access now, or undefined (revoked, expired, unknown tier). */
  function entryOf(record: StoredApiKey | undefined, checkedAt: number): Entry | undefined {
    if (record === undefined || record.revokedAt !== undefined || !tiers.has(record.tier)) return undefined;
    const expiresAt = record.expiresAt ?? NEVER;
    if (clock() >= expiresAt) return undefined;
    const principal: Principal = Object.freeze({
      customerId: record.customerId,
      tier: record.tier,
      admin: record.admin,
      expiresAt,
      keyPrefix: record.prefix,
    });
    return { hash: record.hash, principal, checkedAt, touchedAt: record.lastUsedAt ?? 0 };
  }

  /** Reads `prefix` from Redis (one read in flight per prefix) and caches what it finds. */
  function load(prefix: string): Promise<Entry | undefined> {
    const pending = inflight.get(prefix);
    if (pending !== undefined) return pending;
    const sentAt = clock();
    lookups += 1;
    const read = store.find(prefix).then((record) => {
      const entry = entryOf(record, sentAt);
      // A revocation announced while this read was out wins: the read may predate it.
      if (inflight.get(prefix) === read) {
        if (entry === undefined) {
          cache.delete(prefix);
          absent.set(prefix, sentAt);
        } else {
          // The same record read again: the digest of the key that matched it still matches.
          const before = cache.get(prefix);
          if (before?.digest !== undefined && sameHash(before.hash, entry.hash)) entry.digest = before.digest;
          cache.set(prefix, entry);
          absent.delete(prefix);
        }
      }
      return entry;
    });
    inflight.set(prefix, read);
    const forget = (): void => {
      if (inflight.get(prefix) === read) inflight.delete(prefix);
    };
    read.then(forget, forget);
    return read;
  }

  /** The principal of a matching entry on use: expiry, background re-check, throttled last-used write. */
  function use(prefix: string, entry: Entry, now: number): Principal {
    if (now >= entry.principal.expiresAt) {
      cache.delete(prefix);
      throw refused("API key expired");
    }
    if (now - entry.checkedAt >= maxAgeMs / 2) load(prefix).catch(() => undefined);
    if (now - entry.touchedAt >= lastUsedMs) {
      entry.touchedAt = now;
      store.touch(prefix, now).catch((err: unknown) => opts.onTouchError?.(err));
    }
    return entry.principal;
  }

  /** The cached entry of `prefix` while young enough to answer from; else undefined. */
  function fresh(prefix: string, now: number): Entry | undefined {
    const hit = cache.get(prefix);
    return hit !== undefined && now - hit.checkedAt < maxAgeMs ? hit : undefined;
  }

  /**
   * Whether `token` is the key of `entry`: by the digest a first use left there, else (and for a
   * token that differs from it) by the keyed hash, which then leaves the digest for the next use.
   */
  function matches(entry: Entry, token: string): boolean {
    const digest = digestApiKey(token);
    if (entry.digest !== undefined && sameHash(digest, entry.digest)) return true;
    if (!sameHash(keyedHash(token), entry.hash)) return false;
    entry.digest = digest;
    return true;
  }

  return {
    async authenticate(token) {
      if (!enabled) {
        sameHash(hashApiKey(pepper, token.slice(0, 64)), dummy);
        throw refused("API keys are off (no API_KEY_PEPPER)");
      }
      const parts = parseApiKey(token);
      const now = clock();
      const hit = parts === undefined ? undefined : fresh(parts.prefix, now);
      if (parts !== undefined && hit !== undefined) {
        if (!matches(hit, token)) throw refused("API key does not match");
        cacheHits += 1;
        return use(parts.prefix, hit, now);
      }
      // Hashed before anything else is known, malformed or not: every refusal does the same work.
      const hash = keyedHash(parts === undefined ? token.slice(0, 64) : token);
      if (parts === undefined) {
        sameHash(hash, dummy);
        throw refused("malformed API key");
      }
      const missingSince = absent.get(parts.prefix);
      if (missingSince !== undefined && now - missingSince < recheckMs) {
        sameHash(hash, dummy);
        throw refused("unknown, revoked or expired API key");
      }
      const entry = await load(parts.prefix);
      if (!sameHash(hash, entry?.hash ?? dummy) || entry === undefined) {
        throw refused("unknown, revoked or expired API key, or not matching");
      }
      entry.digest = digestApiKey(token);
      return use(parts.prefix, entry, clock());
    },

    peek(token) {
      if (!enabled) return undefined;
      const parts = parseApiKey(token);
      if (parts === undefined) return undefined;
      const now = clock();
      const hit = fresh(parts.prefix, now);
      if (hit === undefined || now >= hit.principal.expiresAt) return undefined;
      if (!matches(hit, token)) return undefined;
      cacheHits += 1;
      return use(parts.prefix, hit, now);
    },

    revoked(prefix) {
      revocations += cache.delete(prefix) ? 1 : 0;
      inflight.delete(prefix);
    },

    clear() {
      cache.clear();
      absent.clear();
      inflight.clear();
    },

    channel(up) {
      maxAgeMs = up ? trustMs : recheckMs;
    },

    stats() {
      return { lookups, cacheHits, cached: cache.size, revocations, keyedHashes };
    },
  };
}
