// Ports: the interfaces that features depend on and src/infra implements. Types only.
import type { LedgerEntry } from "./billing.js";
import type { Admission } from "./reconcile-types.js";

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
  /**
   * Stores the bytes of `chunks` as they arrive — hashed and written to a temporary file, never held
   * whole in memory — and returns their digest and size, atomically as {@link put} does (the same
   * duties to reference the object follow). When `chunks` throws, nothing is stored, the temporary
   * file is removed and the error is rethrown. The caller bounds the stream: its size and its time.
   */
  putStream(chunks: AsyncIterable<Uint8Array>): Promise<{ digest: string; size: number }>;
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

/** Why an outbound call failed; stable codes, so callers decide without parsing messages. */
export type OutboundFailure =
  /** The URL is malformed, not https (http only when private targets are allowed) or carries credentials. */
  | "bad_url"
  /** The port is not in the allow-list. */
  | "blocked_port"
  /** The host is internal, or a name resolved to (or the connection reached) a refused address. */
  | "blocked_target"
  /** The answer was a redirect (3xx); redirects are never followed. */
  | "redirect"
  /** The answer's body is larger than allowed. */
  | "too_large"
  /** Connecting, the headers or the body took longer than allowed. */
  | "timeout"
  /** Name resolution or the connection failed, or the answer was cut off. */
  | "network";

/**
 * An outbound call that failed. `message` names no address or internal detail (it may reach the
 * caller's customer); `cause` keeps the underlying error for logs.
 */
export class OutboundError extends Error {
  constructor(
    readonly code: OutboundFailure,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OutboundError";
  }
}

/** One outbound HTTP exchange (a customer-given URL). */
export interface OutboundRequest {
  readonly url: string;
  readonly method?: "GET" | "POST" | "PUT";
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** Largest response body accepted, in bytes (default: the client's). */
  readonly maxBytes?: number;
  /**
   * A larger body is cut at `maxBytes` (the rest is not read) instead of failing with `too_large`:
   * for callers that need the status, not the whole answer (webhook deliveries).
   */
  readonly truncate?: boolean;
  /** Deadline of the whole exchange, connecting included (default: the client's). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** The answer of an {@link OutboundRequest}: never a 3xx (that is an `OutboundError` "redirect"). */
export interface OutboundResponse {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/**
 * HTTP client for URLs that customers give (input images, webhooks): every address it connects to
 * is checked at connect time against the outbound policy, redirects are not followed, and every
 * exchange has deadlines and a body limit.
 */
export interface OutboundHttp {
  /**
   * Sends the request and reads the whole answer (any status but 3xx).
   * @throws OutboundError for every refusal and failure; an abort through the request's own
   *   `signal` rejects with undici's abort error instead.
   */
  request(req: OutboundRequest): Promise<OutboundResponse>;
  /** Closes the client's connections; idempotent. */
  close(): Promise<void>;
}

/** Media types accepted for input images (`image`, `mask`). */
export type InputImageType = "image/png" | "image/jpeg" | "image/webp";

/** What {@link ImageInspector.inspect} found. Refusal messages name no internal detail. */
export type ImageVerdict =
  | {
      readonly ok: true;
      readonly mediaType: InputImageType;
      readonly width: number;
      readonly height: number;
    }
  | { readonly ok: false; readonly reason: "media_type" | "max_pixels" | "decode"; readonly message: string };

/** Checks untrusted image bytes: their type by content, their pixel count, and a full decode. */
export interface ImageInspector {
  inspect(bytes: Uint8Array): Promise<ImageVerdict>;
}

/**
 * The billing ledger (docs/decisions.md "Billing"): append-only, durable entries, one per job; read
 * back by completion time.
 */
export interface Ledger {
  /** Appends the entry; resolves once it is on disk (fsynced). */
  append(entry: LedgerEntry): Promise<void>;
  /** Whether an entry of this job is in the ledger (a search of its day: for recovery only). */
  contains(entry: Pick<LedgerEntry, "job_id" | "completed_at">): Promise<boolean>;
  /**
   * The entries completed in [fromMs, toMs) — of `customer` only when given — each job once, in no
   * particular order.
   */
  read(fromMs: number, toMs: number, customer?: string): AsyncIterable<LedgerEntry>;
  close(): Promise<void>;
}

/**
 * The admissions journal (docs/decisions.md "Compliance"): the jobs an API process admitted, kept
 * outside Redis so the reconciliation can name an acknowledged job that Redis lost.
 */
export interface AdmissionLog {
  /** Takes one admission for the next write: never waits, never throws. */
  record(admission: Admission): void;
}
