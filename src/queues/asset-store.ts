// Uploaded assets (API.md §3 Uploads) in Redis: a record per asset — pending from `POST /uploads`,
// claimed by one PUT at a time (asset_claim.lua), done once its bytes are in the CAS
// (asset_settle.lua, which also grants and pins the object).
import type { RedisClient } from "../infra/redis-client.js";
import type { UploadContentType } from "../core/upload-url.js";
import { createKeys } from "./keys.js";
import { defineScripts } from "./scripts.js";

/** Where an asset stands: waiting for its PUT, a PUT streaming, or its bytes stored. */
export type AssetState = "pending" | "uploading" | "done";

/**
 * An asset's record (hash fields: `cust`, `type`, `bytes`, `exp`, `state`, `digest` once done, and
 * `claim`/`claim_until` while a PUT streams).
 */
export interface AssetRecord {
  readonly id: string;
  readonly customerId: string;
  readonly contentType: UploadContentType;
  /** The exact size the PUT must carry. */
  readonly bytes: number;
  /** Expiry of the upload URL (unix seconds). */
  readonly expUnixS: number;
  readonly state: AssetState;
  /** The stored object, once done. */
  readonly digest?: string;
}

/** What a PUT's claim found: claimed (it may stream), or why not. */
export type ClaimResult = "claimed" | "missing" | "busy" | "done";

export interface AssetStore {
  /** Records a pending asset, kept `ttlMs` (the upload URL's life and a PUT's time after it). */
  create(asset: Omit<AssetRecord, "state" | "digest">, ttlMs: number): Promise<void>;
  /** The record, or undefined when there is none (never created, or expired). */
  read(id: string): Promise<AssetRecord | undefined>;
  /** Claims the asset for the PUT holding `token`, for `claimMs` from `nowMs` (asset_claim.lua). */
  claim(id: string, token: string, nowMs: number, claimMs: number): Promise<ClaimResult>;
  /**
   * Marks the asset done with `digest`: kept `retentionS`, its uploader granted the object for as
   * long, the object pinned until `pinUntilMs`. False when the claim is no longer `token`'s.
   */
  complete(
    id: string,
    token: string,
    digest: string,
    retentionS: number,
    pinUntilMs: number,
  ): Promise<boolean>;
  /** Gives a claim back (the PUT failed): pending again. False when it was not `token`'s. */
  release(id: string, token: string): Promise<boolean>;
}

const CLAIM_RESULTS: Readonly<Record<number, ClaimResult>> = {
  0: "missing",
  1: "claimed",
  2: "busy",
  3: "done",
};

const STATES: ReadonlySet<string> = new Set<AssetState>(["pending", "uploading", "done"]);

export function createAssetStore(redis: RedisClient, prefix: string): AssetStore {
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix);
  return {
    async create(a, ttlMs) {
      const k = keys.asset(a.id);
      await redis
        .multi()
        .hset(k, {
          cust: a.customerId,
          type: a.contentType,
          bytes: String(a.bytes),
          exp: String(a.expUnixS),
          state: "pending",
        })
        .pexpire(k, Math.max(1, Math.ceil(ttlMs)))
        .exec();
    },

    async read(id) {
      const f = await redis.hgetall(keys.asset(id));
      if (f.cust === undefined || f.state === undefined || !STATES.has(f.state)) return undefined;
      return {
        id,
        customerId: f.cust,
        contentType: f.type as UploadContentType,
        bytes: Number(f.bytes),
        expUnixS: Number(f.exp),
        state: f.state as AssetState,
        ...(f.digest ? { digest: f.digest } : {}),
      };
    },

    async claim(id, token, nowMs, claimMs) {
      const code = Number(
        await run("asset_claim", keys.asset(id), [id, token, Math.floor(nowMs), Math.ceil(claimMs)]),
      );
      const result = CLAIM_RESULTS[code];
      if (result === undefined) throw new Error(`asset_claim.lua returned ${code}, which it does not return`);
      return result;
    },

    async complete(id, token, digest, retentionS, pinUntilMs) {
      const args = [id, token, digest, Math.max(1, Math.floor(retentionS)), Math.floor(pinUntilMs)];
      return Number(await run("asset_settle", keys.asset(id), args)) === 1;
    },

    async release(id, token) {
      return Number(await run("asset_settle", keys.asset(id), [id, token, "", 1, 0])) === 1;
    },
  };
}
