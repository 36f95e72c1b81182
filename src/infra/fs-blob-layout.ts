// The on-disk layout of the filesystem CAS, shared by the store and its sweeper:
// `<root>/sha256/<hex[0..2]>/<hex>`, the file and folder modes, the names of temp and set-aside files.
import { join } from "node:path";
import { validationError } from "../core/errors.js";
import { DIGEST_RE } from "../core/ports.js";

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;
export const HEX_RE = /^[0-9a-f]{64}$/;
export const PREFIX_RE = /^[0-9a-f]{2}$/;
/** Temp files of puts (`.tmp-<hex>-…`) and objects a collector set aside (`.gc-<hex>-…`). */
export const TEMP_PREFIX = ".tmp-";
export const ASIDE_PREFIX = ".gc-";

/** Whether `err` is a system error with one of these codes. */
export function isErrno(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && codes.includes((err as NodeJS.ErrnoException).code ?? "");
}

/** The 64 hex digits of a digest, which name its file. */
export function hexOf(digest: string): string {
  if (typeof digest !== "string" || !DIGEST_RE.test(digest)) {
    // The regex is also what keeps `../` and absolute paths out of the file system.
    throw validationError("digest", "pattern", "digest must be sha256-<64 lowercase hex>");
  }
  return digest.slice("sha256-".length);
}

/** The folder of the prefix folders. */
export function objectsDir(root: string): string {
  return join(root, "sha256");
}

/** The folder of an object: its digest's first two hex digits. */
export function objectDir(root: string, hex: string): string {
  return join(root, "sha256", hex.slice(0, 2));
}

/** The file of an object. */
export function objectPath(root: string, hex: string): string {
  return join(objectDir(root, hex), hex);
}
