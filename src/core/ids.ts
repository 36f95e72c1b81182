// Identifier formats of API.md: job ids `j_…`, request ids `req_…`, asset ids `a_…`.
import { randomBytes } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const ALPHABET_BYTES = Buffer.from(ALPHABET, "latin1");
/**
 * Where the characters are put before they become one string (ids are short; longer ones get their
 * own). Memory of its own (not the shared pool of small buffers), wiped after each use: API key
 * secrets pass through it.
 */
const SCRATCH = Buffer.alloc(128);

/**
 * `length` characters of [A-Za-z0-9] from random bytes, without modulo bias. The characters are
 * written into a buffer and made one string at the end (a string grown by a character at a time
 * was about 700 B of garbage per id).
 */
export function randomAlnum(length: number, bytes: (n: number) => Uint8Array = randomBytes): string {
  const out = length <= SCRATCH.length ? SCRATCH : Buffer.allocUnsafe(length);
  let n = 0;
  while (n < length) {
    const random = bytes(length * 2);
    for (let i = 0; i < random.length && n < length; i++) {
      const b = random[i]!;
      if (b < 248) out[n++] = ALPHABET_BYTES[b % 62]!;
    }
  }
  const text = out.toString("latin1", 0, length);
  if (out === SCRATCH) SCRATCH.fill(0, 0, length);
  return text;
}

/**
 * An id generator drawing CSPRNG bytes from its own 4 KiB pool: one system call per ~90 ids
 * instead of one per id (ids are made on every request).
 */
export function createRandomIds(): IdGenerator {
  let pool = Buffer.alloc(0);
  let offset = 0;
  const take = (n: number): Uint8Array => {
    if (offset + n > pool.length) {
      pool = randomBytes(Math.max(4096, n));
      offset = 0;
    }
    offset += n;
    return pool.subarray(offset - n, offset);
  };
  return (kind) => PREFIX_OF[kind] + randomAlnum(22, take);
}

export const JOB_ID_RE = /^j_[A-Za-z0-9]{20,64}$/;
export const REQUEST_ID_RE = /^req_[A-Za-z0-9]{8,64}$/;

export type IdKind = "job" | "request" | "asset";

/** Makes ids; injected so tests can pin them. */
export interface IdGenerator {
  (kind: IdKind): string;
}

export const PREFIX_OF: Readonly<Record<IdKind, string>> = { job: "j_", request: "req_", asset: "a_" };

export const randomIds: IdGenerator = (kind) => PREFIX_OF[kind] + randomAlnum(22);

export function isJobId(value: string): boolean {
  return JOB_ID_RE.test(value);
}
