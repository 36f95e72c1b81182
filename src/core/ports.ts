// Ports: the interfaces that features depend on and src/infra implements. Types only.

/** Content-addressed object store (API.md §3 Results). Digests are `sha256-<64 hex>`. */
export interface BlobStore {
  /**
   * Stores the bytes (atomically) and returns their digest. A second put of the same bytes writes
   * nothing but marks the object as just written, so a collector deciding at the same moment spares
   * it (see {@link BlobSweeper}); should the collector have taken it already, it is written anew.
   * Whoever puts an object must reference it (admit the job, settle the attempt, pin it) within half
   * the collector's grace period.
   */
  put(bytes: Uint8Array): Promise<string>;
  /** True when an object with this digest is stored. */
  has(digest: string): Promise<boolean>;
  /**
   * Like {@link has}, and marks a stored object as just written, as a put of it would: a caller that
   * is about to reference an object it did not put (a digest given as an input) calls this first, so
   * the object cannot be collected between the check and the reference. False when absent.
   */
  touch(digest: string): Promise<boolean>;
  /**
   * The whole object, verified against its digest; `undefined` when absent.
   * @throws BlobCorruptError when the stored bytes do not hash to the digest.
   */
  get(digest: string): Promise<Uint8Array | undefined>;
  /**
   * Size and a stream of the object (or of the inclusive byte range), verified against its digest
   * before the first byte is handed out; `undefined` when absent.
   * @throws BlobCorruptError when the stored bytes do not hash to the digest.
   */
  open(
    digest: string,
    range?: { readonly start: number; readonly end: number },
  ): Promise<{ readonly size: number; readonly body: ReadableStream<Uint8Array> } | undefined>;
}

/** One stored object as {@link BlobSweeper.scan} lists it. */
export interface StoredObject {
  readonly digest: string;
  /** Last write (or put/touch of the same bytes), ms since the epoch. */
  readonly modifiedMs: number;
}

/**
 * What the CAS garbage collector needs of a store besides {@link BlobStore}: its objects in a stable
 * order, a bounded page at a time, and a removal that yields to concurrent writers.
 */
export interface BlobSweeper {
  /**
   * Up to `limit` stored objects after `cursor` (undefined: from the start) in the store's order;
   * `next` is the cursor of the following page, undefined when this page ended the walk. It also
   * clears the litter of crashed writers and collectors older than `litterBeforeMs` (entries count
   * toward `limit`).
   */
  scan(
    cursor: string | undefined,
    limit: number,
    litterBeforeMs: number,
  ): Promise<{ readonly objects: readonly StoredObject[]; readonly next: string | undefined }>;
  /**
   * Removes those of `digests` that were last written before `modifiedBeforeMs` and that
   * `stillUnused` — asked once, after they were taken out of reach of writers — confirms (one boolean
   * per digest it is given). An object written, put or touched meanwhile is kept, and a put that
   * finds an object gone writes it anew, so no put is ever lost. Returns the digests of the objects
   * that are gone (not those written anew meanwhile).
   * @throws what `stillUnused` throws (every object taken aside is put back first).
   */
  removeUnused(
    digests: readonly string[],
    modifiedBeforeMs: number,
    stillUnused: (digests: readonly string[]) => Promise<readonly boolean[]>,
  ): Promise<string[]>;
}

export class BlobCorruptError extends Error {
  constructor(readonly digest: string) {
    super(`stored object does not match its digest ${digest}`);
    this.name = "BlobCorruptError";
  }
}

export const DIGEST_RE = /^sha256-[0-9a-f]{64}$/;
