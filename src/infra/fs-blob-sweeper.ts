// The sweep side of the filesystem CAS (BlobSweeper): pages through the objects for the collector,
// removes the unused ones without losing a concurrent put, and clears crashed writers' litter.
import { randomBytes } from "node:crypto";
import { link, lstat, readdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { BlobSweeper, StoredObject } from "../core/ports.js";
import {
  ASIDE_PREFIX,
  HEX_RE,
  PREFIX_RE,
  TEMP_PREFIX,
  hexOf,
  isErrno,
  objectDir,
  objectPath,
  objectsDir,
} from "./fs-blob-layout.js";

/** Entries of a directory; none when it does not exist. */
async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isErrno(err, "ENOENT", "ENOTDIR")) return [];
    throw err;
  }
}

/** Index of the first of the sorted `names` greater than `name`. */
function upperBound(names: readonly string[], name: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid]! <= name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Puts an object a collector set aside back in place, unless a put has written it anew meanwhile
 * (then the set-aside copy is dropped: the new one is at least as fresh).
 */
async function putBack(moved: string, path: string): Promise<void> {
  try {
    await link(moved, path);
  } catch (err) {
    if (!isErrno(err, "EEXIST", "ENOENT")) throw err;
  }
  await unlink(moved).catch(() => undefined);
}

/**
 * Clears one litter entry of `dir` changed before `beforeMs`: a temp file of a put that crashed is
 * removed; an object a collector set aside and never finished with is put back (the next pass
 * decides about it again). Anything else is left alone.
 */
async function clearLitter(dir: string, name: string, beforeMs: number): Promise<void> {
  const isTemp = name.startsWith(TEMP_PREFIX);
  const isAside = name.startsWith(ASIDE_PREFIX);
  if (!isTemp && !isAside) return;
  const path = join(dir, name);
  const st = await lstat(path).catch(() => undefined);
  // ctime: a rename aside changes it, a rename keeps the mtime of the object's last write.
  if (!st?.isFile() || st.ctimeMs >= beforeMs) return;
  if (isTemp) {
    await unlink(path).catch(() => undefined);
    return;
  }
  const hex = name.slice(ASIDE_PREFIX.length, ASIDE_PREFIX.length + 64);
  if (HEX_RE.test(hex)) await putBack(path, join(dir, hex));
}

/**
 * The {@link BlobSweeper} of the filesystem CAS under `root` (see createFsBlobStore, which pairs it
 * with the store): `scan` pages through the objects in file-name order; `removeUnused` renames each
 * candidate aside (`.gc-<hex>-…`), looks at its time again, asks the caller once for the whole batch,
 * then unlinks it or links it back (never over an object a put wrote anew meanwhile). Puts and
 * touches keep an object from it by refreshing its modification time.
 * @throws AppError 400 `validation_error` from `removeUnused` for a digest that is not `sha256-<64 hex>`.
 */
export function createFsBlobSweeper(root: string): BlobSweeper {
  const dirOf = (hex: string): string => objectDir(root, hex);
  const pathOf = (hex: string): string => objectPath(root, hex);

  return {
    async scan(cursor, limit, litterBeforeMs) {
      if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError("limit must be a positive integer");
      const [fromPrefix = "", fromName = ""] = (cursor ?? "").split("/");
      const prefixes = (await listDir(objectsDir(root)))
        .filter((p) => PREFIX_RE.test(p) && p >= fromPrefix)
        .sort();
      const objects: StoredObject[] = [];
      let seen = 0;
      for (const prefix of prefixes) {
        const dir = join(objectsDir(root), prefix);
        const names = (await listDir(dir)).sort();
        // Within the cursor's folder, continue after the last name it covered.
        let i = prefix === fromPrefix ? upperBound(names, fromName) : 0;
        for (; i < names.length; i++) {
          if (seen >= limit) return { objects, next: `${prefix}/${names[i - 1] ?? ""}` };
          seen++;
          const name = names[i]!;
          if (HEX_RE.test(name)) {
            const st = await lstat(join(dir, name)).catch((err: unknown) => {
              if (isErrno(err, "ENOENT")) return undefined;
              throw err;
            });
            if (st?.isFile() && name.startsWith(prefix)) {
              objects.push({ digest: `sha256-${name}`, modifiedMs: st.mtimeMs });
            }
          } else {
            await clearLitter(dir, name, litterBeforeMs);
          }
        }
      }
      return { objects, next: undefined };
    },

    async removeUnused(digests, modifiedBeforeMs, stillUnused) {
      const aside: { digest: string; path: string; moved: string }[] = [];
      for (const digest of digests) {
        const hex = hexOf(digest);
        const path = pathOf(hex);
        const before = await lstat(path).catch(() => undefined);
        if (!before?.isFile() || before.mtimeMs >= modifiedBeforeMs) continue;
        // Out of reach of writers: a put that now finds the path empty writes the object anew, and a
        // put or touch that refreshed it before the rename shows in the moved file's time.
        const moved = join(
          dirOf(hex),
          `${ASIDE_PREFIX}${hex}-${process.pid}-${randomBytes(6).toString("hex")}`,
        );
        try {
          await rename(path, moved);
        } catch (err) {
          if (isErrno(err, "ENOENT")) continue;
          throw err;
        }
        const st = await lstat(moved);
        if (st.mtimeMs >= modifiedBeforeMs) await putBack(moved, path);
        else aside.push({ digest, path, moved });
      }
      if (aside.length === 0) return [];
      let unused: readonly boolean[];
      try {
        unused = await stillUnused(aside.map((a) => a.digest));
      } catch (err) {
        for (const a of aside) await putBack(a.moved, a.path);
        throw err;
      }
      const removed: string[] = [];
      for (const [i, a] of aside.entries()) {
        if (unused[i] === true) {
          await unlink(a.moved).catch(() => undefined);
          // A put that found the path empty meanwhile wrote the object anew: it is not gone.
          if (!(await lstat(a.path).catch(() => undefined))) removed.push(a.digest);
        } else {
          await putBack(a.moved, a.path);
        }
      }
      return removed;
    },
  };
}
