// Identifier formats of API.md: job ids `j_…`, request ids `req_…`, asset ids `a_…`.
import { randomBytes } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** `length` characters of [A-Za-z0-9] from a CSPRNG, without modulo bias. */
export function randomAlnum(length: number): string {
  let out = "";
  while (out.length < length) {
    const bytes = randomBytes(length * 2);
    for (const b of bytes) {
      if (b < 248) out += ALPHABET[b % 62];
      if (out.length === length) break;
    }
  }
  return out;
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
