// Filesystem content-addressed BlobStore: `<root>/sha256/<hex[0..2]>/<hex>`, verified on every read,
// files 0600 in 0700 directories, paired with the sweep side the CAS garbage collector uses
// (fs-blob-sweeper.ts; the layout both share is fs-blob-layout.ts).
import { createHash, randomBytes } from "node:crypto";
import { constants, lstatSync } from "node:fs";
import type { Stats } from "node:fs";
import { lstat, mkdir, open, rename, unlink, utimes } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createLru } from "../core/lru.js";
import { BlobCorruptError } from "../core/ports.js";
import type { BlobStore, BlobSweeper } from "../core/ports.js";
import { DIR_MODE, FILE_MODE, TEMP_PREFIX, hexOf, isErrno, objectDir, objectPath } from "./fs-blob-layout.js";
import { createFsBlobSweeper } from "./fs-blob-sweeper.js";

/** Options of {@link createFsBlobStore}. */
export interface FsBlobStoreOptions {
  /** The CAS directory (`DATA_DIR/cas`); created (0700) on the first put. */
  readonly root: string;
  /** How many (file identity → verified) facts to remember; default 1024. */
  readonly verifiedCacheSize?: number;
  /**
   * A put or touch of an object last written longer ago than this sets its modification time to
   * now; a younger one is left alone (it is already safe from the collector for grace − this).
   * Half the collector's grace period (CAS_GC_GRACE_S); default 30 minutes (half the default grace).
   */
  readonly refreshAfterMs?: number;
}

/** The store as the roles use it: objects, and the sweep side of the CAS collector. */
export type FsBlobStore = BlobStore & BlobSweeper;

const HASH_CHUNK = 1 << 20;
const DEFAULT_VERIFIED_CACHE = 1024;
const DEFAULT_REFRESH_AFTER_MS = 30 * 60_000;

/** Identity of one version of a file: a rewrite in place changes mtime/ctime, a replacement the inode. */
function identity(path: string, st: Stats): string {
  return `${path}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}\0${st.ino}\0${st.dev}`;
}

async function hashHandle(handle: FileHandle, size: number): Promise<string> {
  const hash = createHash("sha256");
  const buf = Buffer.allocUnsafe(Math.min(HASH_CHUNK, Math.max(size, 1)));
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buf, 0, buf.length, position);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest("hex");
}

/** Best-effort fsync of a directory so a rename survives a crash; not every platform allows it. */
async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch {
    // EISDIR/EPERM/EINVAL on some platforms: the data is already fsynced, only the entry may lag.
  } finally {
    await handle?.close();
  }
}

/**
 * A {@link BlobStore} on the local filesystem, with the {@link BlobSweeper} of the CAS collector
 * (createFsBlobSweeper) on the same root. `put` writes a unique temp file in the object's
 * directory, fsyncs it and renames it into place, so readers never see a partial object and
 * concurrent puts of the same bytes (from any number of processes) are safe. `get` and `open` hash the
 * bytes before handing any out; `open` remembers files it has verified (by path, size, mtime, ctime
 * and inode) in a bounded LRU so range requests on a large object hash it once.
 *
 * `open` answers the size of the whole object (for `Content-Range`) and a stream of the inclusive
 * range; an `end` beyond the object is clamped to its last byte, a `start` beyond it is a RangeError.
 * The stream holds the file open until it is read to the end or cancelled.
 *
 * For the CAS collector: a put of an object that exists, and `touch`, set its modification time to
 * now when it is older than `refreshAfterMs`. Files are 0600, folders 0700.
 *
 * Every method throws a 400 `validation_error` AppError for a digest that is not `sha256-<64 hex>`, and
 * `get`/`open` throw BlobCorruptError when the stored bytes do not hash to the digest. Nothing is held
 * open between calls, so there is nothing to close.
 */
export function createFsBlobStore(opts: FsBlobStoreOptions): FsBlobStore {
  const root = opts.root;
  const cacheSize = opts.verifiedCacheSize ?? DEFAULT_VERIFIED_CACHE;
  const refreshAfterMs = opts.refreshAfterMs ?? DEFAULT_REFRESH_AFTER_MS;
  if (typeof root !== "string" || root.length === 0) throw new TypeError("root must be a non-empty path");
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 0) {
    throw new RangeError("verifiedCacheSize must be a non-negative integer");
  }
  if (!Number.isFinite(refreshAfterMs) || refreshAfterMs < 0) {
    throw new RangeError("refreshAfterMs must be a non-negative number");
  }

  // File identities known to hash to their name.
  const verified = createLru<string, true>(cacheSize);
  const inflightVerify = new Map<string, Promise<boolean>>();
  const inflightPut = new Map<string, Promise<void>>();

  const dirOf = (hex: string): string => objectDir(root, hex);
  const pathOf = (hex: string): string => objectPath(root, hex);

  const remember = (key: string): void => verified.set(key, true);

  /** Hashes the open file unless this exact version was verified before; one hash per version at a time. */
  async function verifyHandle(handle: FileHandle, path: string, hex: string, st: Stats): Promise<boolean> {
    const key = identity(path, st);
    if (verified.get(key)) return true;
    let pending = inflightVerify.get(key);
    if (pending === undefined) {
      pending = hashHandle(handle, st.size).then((actual) => {
        if (actual === hex) remember(key);
        return actual === hex;
      });
      inflightVerify.set(key, pending);
      void pending.then(
        () => inflightVerify.delete(key),
        () => inflightVerify.delete(key),
      );
    }
    return pending;
  }

  /** Opens the stored file read-only (no symlinks followed), or undefined when it is absent. */
  async function openObject(
    hex: string,
  ): Promise<{ handle: FileHandle; st: Stats; path: string } | undefined> {
    const path = pathOf(hex);
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      // ELOOP: a symlink where an object should be; symlinks are never objects here.
      if (isErrno(err, "ENOENT", "ENOTDIR", "ELOOP")) return undefined;
      throw err;
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        await handle.close();
        return undefined;
      }
      return { handle, st, path };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Creates the temp file; its prefix directory is made only when missing (once per prefix). */
  async function createTemp(dir: string, tmp: string): Promise<FileHandle> {
    try {
      return await open(tmp, "wx", FILE_MODE);
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    return open(tmp, "wx", FILE_MODE);
  }

  /**
   * Marks an existing object as just written, unless it was written within `refreshAfterMs`. False
   * when the object is not there (a collector may have taken it a moment ago).
   */
  async function refresh(path: string, st: Stats): Promise<boolean> {
    const now = Date.now();
    if (now - st.mtimeMs <= refreshAfterMs) return true;
    try {
      await utimes(path, now / 1000, now / 1000);
      return true;
    } catch (err) {
      if (isErrno(err, "ENOENT", "ENOTDIR")) return false;
      throw err;
    }
  }

  async function writeObject(bytes: Uint8Array, hex: string): Promise<void> {
    const dir = dirOf(hex);
    const path = pathOf(hex);
    try {
      // Synchronous on purpose: on the local filesystem the CAS lives on, a lookup that hits the
      // dentry cache takes microseconds, while the thread-pool round trip of the async call cost
      // ~70 µs of main-thread CPU per put (~15 µs sync; CPU profiles of bench/worker-throughput.ts,
      // where every output already exists). A CAS on a network filesystem would want it async.
      const existing = lstatSync(path);
      // Same size: trust it here (every read verifies), and keep it from the collector: refreshed, or
      // gone already (the collector took it), then written anew below. Other size: a torn or foreign
      // file, replace it.
      if (existing.isFile() && existing.size === bytes.byteLength && (await refresh(path, existing))) return;
    } catch (err) {
      if (!isErrno(err, "ENOENT", "ENOTDIR")) throw err;
    }
    // Same directory as the target, hence the same filesystem, hence an atomic rename.
    const tmp = join(dir, `${TEMP_PREFIX}${hex}-${process.pid}-${randomBytes(6).toString("hex")}`);
    const handle = await createTemp(dir, tmp);
    try {
      try {
        await handle.writeFile(bytes);
        await handle.sync();
        await rename(tmp, path);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      await syncDir(dir);
      // We hashed these bytes ourselves: remember the inode we renamed into place (its stat after the
      // rename, which changes its ctime) as verified. Should a concurrent put have renamed its identical
      // copy over it, the path names another inode, this identity never matches, and the next read
      // hashes once.
      try {
        remember(identity(path, await handle.stat()));
      } catch {
        // Not fatal: the object is stored; the next read verifies it.
      }
    } finally {
      await handle.close();
    }
  }

  return {
    async put(bytes) {
      if (!(bytes instanceof Uint8Array)) throw new TypeError("put expects a Uint8Array");
      const hex = createHash("sha256").update(bytes).digest("hex");
      // Single-flight per digest within this process; across processes the rename makes it safe.
      let pending = inflightPut.get(hex);
      if (pending === undefined) {
        pending = writeObject(bytes, hex).finally(() => inflightPut.delete(hex));
        inflightPut.set(hex, pending);
      }
      await pending;
      return `sha256-${hex}`;
    },

    async putStream(chunks) {
      // Staged in a prefix folder of its own (the digest is known only at the end): on the same file
      // system as every object, so the rename is atomic, and where the sweeper clears a crashed
      // writer's litter.
      const stageDir = dirOf(randomBytes(1).toString("hex"));
      const tmp = join(stageDir, `${TEMP_PREFIX}stream-${process.pid}-${randomBytes(6).toString("hex")}`);
      const handle = await createTemp(stageDir, tmp);
      const hash = createHash("sha256");
      let size = 0;
      let renamed = false;
      try {
        for await (const chunk of chunks) {
          hash.update(chunk);
          for (let off = 0; off < chunk.byteLength;) {
            off += (await handle.write(chunk, off, chunk.byteLength - off)).bytesWritten;
          }
          size += chunk.byteLength;
        }
        await handle.sync();
        const hex = hash.digest("hex");
        const path = pathOf(hex);
        try {
          const existing = lstatSync(path);
          if (existing.isFile() && existing.size === size && (await refresh(path, existing))) {
            return { digest: `sha256-${hex}`, size };
          }
        } catch (err) {
          if (!isErrno(err, "ENOENT", "ENOTDIR")) throw err;
        }
        await mkdir(dirOf(hex), { recursive: true, mode: DIR_MODE });
        await rename(tmp, path);
        renamed = true;
        await syncDir(dirOf(hex));
        try {
          remember(identity(path, await handle.stat()));
        } catch {
          // Not fatal: the object is stored; the next read verifies it.
        }
        return { digest: `sha256-${hex}`, size };
      } finally {
        await handle.close();
        if (!renamed) await unlink(tmp).catch(() => undefined);
      }
    },

    async has(digest) {
      const path = pathOf(hexOf(digest));
      try {
        return (await lstat(path)).isFile();
      } catch (err) {
        if (isErrno(err, "ENOENT", "ENOTDIR")) return false;
        throw err;
      }
    },

    async touch(digest) {
      const path = pathOf(hexOf(digest));
      try {
        const st = await lstat(path);
        return st.isFile() && (await refresh(path, st));
      } catch (err) {
        if (isErrno(err, "ENOENT", "ENOTDIR")) return false;
        throw err;
      }
    },

    async get(digest) {
      const hex = hexOf(digest);
      const found = await openObject(hex);
      if (found === undefined) return undefined;
      const { handle, st, path } = found;
      try {
        const bytes = await handle.readFile();
        // The bytes are in memory already: hashing them is cheaper than trusting a cache.
        if (createHash("sha256").update(bytes).digest("hex") !== hex) throw new BlobCorruptError(digest);
        remember(identity(path, st));
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } finally {
        await handle.close();
      }
    },

    async open(digest, range) {
      const hex = hexOf(digest);
      if (range !== undefined) {
        const { start, end } = range;
        if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
          throw new RangeError("range must be integers with 0 <= start <= end");
        }
      }
      const found = await openObject(hex);
      if (found === undefined) return undefined;
      const { handle, st, path } = found;
      let handedOver = false;
      try {
        if (!(await verifyHandle(handle, path, hex, st))) throw new BlobCorruptError(digest);
        let start = 0;
        let end = st.size - 1;
        if (range !== undefined) {
          if (range.start >= st.size) {
            throw new RangeError(`range start ${range.start} is beyond the object size ${st.size}`);
          }
          start = range.start;
          end = Math.min(range.end, st.size - 1);
        }
        // Stream from the handle that was verified, so a concurrent replacement of the path cannot
        // slip unverified bytes in. An empty object gets an empty stream (createReadStream with end -1
        // would read everything).
        const nodeStream =
          end < start ? Readable.from([]) : handle.createReadStream({ start, end, autoClose: true });
        if (end < start) await handle.close();
        handedOver = true;
        return { size: st.size, body: Readable.toWeb(nodeStream) as ReadableStream<Uint8Array> };
      } finally {
        if (!handedOver) await handle.close();
      }
    },
    ...createFsBlobSweeper(root),
  };
}
