// Ports: the interfaces that features depend on and src/infra implements. Types only.

/** Content-addressed object store (API.md §3 Results). Digests are `sha256-<64 hex>`. */
export interface BlobStore {
  /** Stores the bytes (atomically; a second put of the same bytes is a no-op) and returns their digest. */
  put(bytes: Uint8Array): Promise<string>;
  /** True when an object with this digest is stored. */
  has(digest: string): Promise<boolean>;
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

export class BlobCorruptError extends Error {
  constructor(readonly digest: string) {
    super(`stored object does not match its digest ${digest}`);
    this.name = "BlobCorruptError";
  }
}

export const DIGEST_RE = /^sha256-[0-9a-f]{64}$/;
