import * as crypto from "node:crypto";
import type * as Crypto from "node:crypto";
import {
  existsSync,
  linkSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { isAppError } from "../../src/core/errors.js";
import { BlobCorruptError } from "../../src/core/ports.js";
import { createFsBlobStore, type FsBlobStore } from "../../src/infra/fs-blob-store.js";

// Count SHA-256 hashers created by the store, to see that verified files are not hashed again.
const hashers = vi.hoisted(() => ({ count: 0 }));
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof Crypto>();
  return {
    ...real,
    createHash: (...args: Parameters<typeof real.createHash>) => {
      hashers.count += 1;
      return real.createHash(...args);
    },
  };
});

function sha256Hex(bytes: Uint8Array): string {
  return crypto.createHash("sha256").update(bytes).digest("hex");
}

async function readAll(body: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) => join(e.parentPath, e.name));
}

let root: string;
let store: FsBlobStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "rg-cas-"));
  store = createFsBlobStore({ root });
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function objectPath(digest: string): string {
  const hex = digest.slice("sha256-".length);
  return join(root, "sha256", hex.slice(0, 2), hex);
}

describe("fs blob store", () => {
  it("round-trips bytes under sha256/<hex[0..2]>/<hex>", async () => {
    const bytes = new TextEncoder().encode("hello, content addressing");
    const digest = await store.put(bytes);
    expect(digest).toBe(`sha256-${sha256Hex(bytes)}`);
    expect(statSync(objectPath(digest)).isFile()).toBe(true);
    expect(await store.has(digest)).toBe(true);
    expect(Buffer.from((await store.get(digest))!)).toEqual(Buffer.from(bytes));
    const opened = await store.open(digest);
    expect(opened!.size).toBe(bytes.length);
    expect(await readAll(opened!.body)).toEqual(Buffer.from(bytes));
  });

  it("answers undefined/false for an absent object", async () => {
    const digest = `sha256-${"0".repeat(64)}`;
    expect(await store.has(digest)).toBe(false);
    expect(await store.get(digest)).toBeUndefined();
    expect(await store.open(digest)).toBeUndefined();
  });

  it("stores an empty object", async () => {
    const digest = await store.put(new Uint8Array(0));
    expect(digest).toBe(`sha256-${sha256Hex(new Uint8Array(0))}`);
    expect((await store.get(digest))!.byteLength).toBe(0);
    const opened = await store.open(digest);
    expect(opened!.size).toBe(0);
    expect((await readAll(opened!.body)).length).toBe(0);
  });

  it("does not rewrite an object that is already stored", async () => {
    const bytes = crypto.randomBytes(1000);
    const digest = await store.put(bytes);
    const before = statSync(objectPath(digest));
    // A fresh store (another process) must not rewrite it either.
    const again = await createFsBlobStore({ root }).put(bytes);
    expect(again).toBe(digest);
    const after = statSync(objectPath(digest));
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(filesUnder(root)).toEqual([objectPath(digest)]);
  });

  it("replaces a truncated file on put", async () => {
    const bytes = crypto.randomBytes(1000);
    const digest = await store.put(bytes);
    writeFileSync(objectPath(digest), bytes.subarray(0, 10));
    await expect(store.get(digest)).rejects.toBeInstanceOf(BlobCorruptError);
    await store.put(bytes);
    expect(Buffer.from((await store.get(digest))!)).toEqual(bytes);
  });

  it("survives concurrent puts of the same bytes from several stores", async () => {
    const bytes = crypto.randomBytes(256 * 1024);
    const stores = [
      store,
      createFsBlobStore({ root }),
      createFsBlobStore({ root }),
      createFsBlobStore({ root }),
    ];
    const digests = await Promise.all(
      Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.put(bytes)),
    );
    expect(new Set(digests).size).toBe(1);
    const digest = digests[0]!;
    expect(Buffer.from((await createFsBlobStore({ root }).get(digest))!)).toEqual(bytes);
    // No temp files left behind.
    expect(filesUnder(root)).toEqual([objectPath(digest)]);
  });

  it("makes the prefix directory again when it was removed after an earlier put", async () => {
    const bytes = crypto.randomBytes(100);
    const digest = await store.put(bytes);
    rmSync(join(root, "sha256"), { recursive: true, force: true });
    expect(await store.put(bytes)).toBe(digest);
    expect(Buffer.from((await store.get(digest))!)).toEqual(bytes);
    expect(filesUnder(root)).toEqual([objectPath(digest)]);
  });

  it("stores different objects side by side", async () => {
    const a = await store.put(new TextEncoder().encode("a"));
    const b = await store.put(new TextEncoder().encode("b"));
    expect(a).not.toBe(b);
    expect(new TextDecoder().decode(await store.get(a))).toBe("a");
    expect(new TextDecoder().decode(await store.get(b))).toBe("b");
  });

  describe("integrity", () => {
    it("refuses a tampered file on get and open", async () => {
      const bytes = crypto.randomBytes(4096);
      const digest = await store.put(bytes);
      const evil = Buffer.from(bytes);
      evil[100] = evil[100]! ^ 0xff;
      writeFileSync(objectPath(digest), evil);
      const fresh = createFsBlobStore({ root });
      await expect(fresh.get(digest)).rejects.toBeInstanceOf(BlobCorruptError);
      await expect(fresh.open(digest)).rejects.toBeInstanceOf(BlobCorruptError);
      await expect(fresh.open(digest, { start: 0, end: 10 })).rejects.toBeInstanceOf(BlobCorruptError);
      // The store that wrote it (and remembered it as verified) sees the change too.
      await expect(store.open(digest)).rejects.toBeInstanceOf(BlobCorruptError);
    });

    it("notices tampering after a verified read even when the mtime is put back", async () => {
      const bytes = crypto.randomBytes(4096);
      const digest = await store.put(bytes);
      const path = objectPath(digest);
      await readAll((await store.open(digest))!.body);
      const { atime, mtime } = statSync(path);
      const evil = Buffer.from(bytes);
      evil[0] = evil[0]! ^ 1;
      writeFileSync(path, evil);
      utimesSync(path, atime, mtime);
      await expect(store.open(digest, { start: 0, end: 0 })).rejects.toBeInstanceOf(BlobCorruptError);
    });

    it("hashes a large object once, not on every range request", async () => {
      const bytes = crypto.randomBytes(3 * 1024 * 1024 + 17);
      const digest = await store.put(bytes);
      const fresh = createFsBlobStore({ root });
      const first = hashers.count;
      await readAll((await fresh.open(digest, { start: 0, end: 99 }))!.body);
      expect(hashers.count - first).toBe(1);
      const second = hashers.count;
      for (let i = 0; i < 5; i++)
        await readAll((await fresh.open(digest, { start: i * 1000, end: i * 1000 + 9 }))!.body);
      expect(hashers.count - second).toBe(0);
      // Concurrent first opens in a third store share one hash.
      const third = createFsBlobStore({ root });
      const before = hashers.count;
      const opened = await Promise.all(
        Array.from({ length: 4 }, () => third.open(digest, { start: 0, end: 0 })),
      );
      await Promise.all(opened.map((o) => readAll(o!.body)));
      expect(hashers.count - before).toBe(1);
    });

    it("does not hash again after its own put", async () => {
      const bytes = crypto.randomBytes(64 * 1024);
      const before = hashers.count;
      const digest = await store.put(bytes);
      await readAll((await store.open(digest, { start: 0, end: 1 }))!.body);
      expect(hashers.count - before).toBe(1); // the put's own hash
    });
  });

  describe("ranges", () => {
    const bytes = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 5 }, (_, i) => (i * 7) & 0xff));
    let digest: string;
    beforeEach(async () => {
      digest = await store.put(bytes);
    });

    it("reads an inclusive range and reports the whole size", async () => {
      const opened = await store.open(digest, { start: 2, end: 5 });
      expect(opened!.size).toBe(bytes.length);
      expect(await readAll(opened!.body)).toEqual(bytes.subarray(2, 6));
    });

    it("reads single bytes at both ends and ranges across chunk boundaries", async () => {
      const last = bytes.length - 1;
      expect(await readAll((await store.open(digest, { start: 0, end: 0 }))!.body)).toEqual(
        bytes.subarray(0, 1),
      );
      expect(await readAll((await store.open(digest, { start: last, end: last }))!.body)).toEqual(
        bytes.subarray(last),
      );
      const s = (1 << 20) - 3;
      const e = 2 * (1 << 20) + 3;
      const middle = await readAll((await store.open(digest, { start: s, end: e }))!.body);
      // Buffer.equals, not toEqual: a deep compare of a 2 MiB buffer takes seconds.
      expect(middle.length).toBe(e - s + 1);
      expect(middle.equals(bytes.subarray(s, e + 1))).toBe(true);
    });

    it("clamps an end beyond the object", async () => {
      const opened = await store.open(digest, { start: bytes.length - 3, end: bytes.length + 100 });
      expect(await readAll(opened!.body)).toEqual(bytes.subarray(bytes.length - 3));
    });

    it("rejects unsatisfiable and malformed ranges", async () => {
      await expect(store.open(digest, { start: bytes.length, end: bytes.length + 1 })).rejects.toThrow(
        RangeError,
      );
      await expect(store.open(digest, { start: 5, end: 4 })).rejects.toThrow(RangeError);
      await expect(store.open(digest, { start: -1, end: 4 })).rejects.toThrow(RangeError);
      await expect(store.open(digest, { start: 0.5, end: 4 })).rejects.toThrow(RangeError);
    });
  });

  describe("digest validation", () => {
    const bad = [
      "../../etc/passwd",
      "sha256-../../../../etc/passwd",
      `sha256-${"a".repeat(63)}`,
      `sha256-${"a".repeat(65)}`,
      `sha256-${"A".repeat(64)}`,
      `sha256-${"a".repeat(64)}\n`,
      `sha256-${"a".repeat(62)}/x`,
      `blake3-${"a".repeat(64)}`,
      `/sha256-${"a".repeat(64)}`,
      "",
    ];
    it.each(bad)("rejects %j before touching the filesystem", async (digest) => {
      for (const call of [() => store.has(digest), () => store.get(digest), () => store.open(digest)]) {
        const err: unknown = await call().catch((e: unknown) => e);
        expect(isAppError(err) && err.code === "validation_error").toBe(true);
      }
    });

    it("does not follow a symlink planted where an object should be", async () => {
      const secret = join(root, "secret.txt");
      writeFileSync(secret, "top secret");
      const hex = sha256Hex(new TextEncoder().encode("top secret"));
      await mkdir(join(root, "sha256", hex.slice(0, 2)), { recursive: true });
      symlinkSync(secret, join(root, "sha256", hex.slice(0, 2), hex));
      const digest = `sha256-${hex}`;
      expect(await store.has(digest)).toBe(false);
      expect(await store.get(digest)).toBeUndefined();
      expect(await store.open(digest)).toBeUndefined();
      // A put replaces the link with a real file.
      await store.put(new TextEncoder().encode("top secret"));
      expect(statSync(objectPath(digest)).isFile()).toBe(true);
      expect(await store.has(digest)).toBe(true);
    });
  });

  it("stores objects 0600 in directories 0700 (not readable by other users)", async () => {
    const digest = await store.put(crypto.randomBytes(100));
    const path = objectPath(digest);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, "sha256")).mode & 0o777).toBe(0o700);
    expect(statSync(join(path, "..")).mode & 0o777).toBe(0o700);
  });

  describe("for the CAS collector", () => {
    const HOUR = 3_600_000;
    /** Sets an object's modification time `ms` into the past. */
    const age = (digest: string, ms: number) => {
      const t = (Date.now() - ms) / 1000;
      utimesSync(objectPath(digest), t, t);
    };
    const mtimeOf = (digest: string) => statSync(objectPath(digest)).mtimeMs;
    const allUnused = async (ds: readonly string[]) => ds.map(() => true);

    it("refreshes an object on a put or touch when it was written longer ago than refreshAfterMs", async () => {
      const s = createFsBlobStore({ root, refreshAfterMs: HOUR / 2 });
      const bytes = crypto.randomBytes(100);
      const digest = await s.put(bytes);
      const inode = statSync(objectPath(digest)).ino;
      age(digest, HOUR);
      await s.put(bytes);
      expect(mtimeOf(digest)).toBeGreaterThan(Date.now() - HOUR / 2);
      expect(statSync(objectPath(digest)).ino).toBe(inode); // touched, not rewritten
      age(digest, HOUR);
      expect(await s.touch(digest)).toBe(true);
      expect(mtimeOf(digest)).toBeGreaterThan(Date.now() - HOUR / 2);
      // A young object is left alone (no write per put on the hot path).
      age(digest, 60_000);
      const young = mtimeOf(digest);
      await s.put(bytes);
      expect(await s.touch(digest)).toBe(true);
      expect(mtimeOf(digest)).toBe(young);
      expect(await s.touch(`sha256-${"0".repeat(64)}`)).toBe(false);
    });

    it("keeps an object put after the collector found it old and unused, before it removes it", async () => {
      const bytes = crypto.randomBytes(100);
      const digest = await store.put(bytes);
      age(digest, 2 * HOUR);
      const cutoff = Date.now() - HOUR;
      const page = await store.scan(undefined, 10, cutoff);
      expect(page.objects.map((o) => o.digest)).toEqual([digest]);
      expect(page.objects[0]!.modifiedMs).toBeLessThan(cutoff);
      // The collector has decided; a put of the same bytes lands before its removal.
      await store.put(bytes);
      expect(await store.removeUnused([digest], cutoff, allUnused)).toEqual([]);
      expect(Buffer.from((await store.get(digest))!)).toEqual(bytes);
    });

    it("writes an object anew when a put comes while the collector holds it aside", async () => {
      const bytes = crypto.randomBytes(100);
      const digest = await store.put(bytes);
      age(digest, 2 * HOUR);
      const removed = await store.removeUnused([digest], Date.now() - HOUR, async (ds) => {
        expect(existsSync(objectPath(digest))).toBe(false); // out of writers' reach now
        expect(await store.put(bytes)).toBe(digest);
        return ds.map(() => true);
      });
      expect(removed).toEqual([]);
      expect(Buffer.from((await store.get(digest))!)).toEqual(bytes);
      expect(filesUnder(root)).toEqual([objectPath(digest)]);
    });

    it("puts back an object that became referenced while aside, and removes one that did not", async () => {
      const keep = await store.put(crypto.randomBytes(100));
      const drop = await store.put(crypto.randomBytes(100));
      const young = await store.put(crypto.randomBytes(100));
      age(keep, 2 * HOUR);
      age(drop, 2 * HOUR);
      const inode = statSync(objectPath(keep)).ino;
      let asked: readonly string[] = [];
      const removed = await store.removeUnused([keep, drop, young], Date.now() - HOUR, async (ds) => {
        asked = ds;
        return ds.map((d) => d === drop);
      });
      expect(asked).toEqual([keep, drop]); // the young one is never taken aside
      expect(removed).toEqual([drop]);
      expect(statSync(objectPath(keep)).ino).toBe(inode);
      expect(await store.has(drop)).toBe(false);
      expect(await store.has(young)).toBe(true);
      expect(filesUnder(root).sort()).toEqual([objectPath(keep), objectPath(young)].sort());
    });

    it("puts everything back when the reference check fails", async () => {
      const digest = await store.put(crypto.randomBytes(100));
      age(digest, 2 * HOUR);
      await expect(
        store.removeUnused([digest], Date.now() - HOUR, () => Promise.reject(new Error("redis away"))),
      ).rejects.toThrow("redis away");
      expect(filesUnder(root)).toEqual([objectPath(digest)]);
    });

    it("pages through every object once with its cursor", async () => {
      const digests = await Promise.all(
        Array.from({ length: 23 }, (_, i) => store.put(new TextEncoder().encode(`object ${i}`))),
      );
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.scan(cursor, 4, 0);
        seen.push(...page.objects.map((o) => o.digest));
        cursor = page.next;
        pages++;
      } while (cursor !== undefined && pages < 100);
      expect(seen.sort()).toEqual([...digests].sort());
      expect(pages).toBeGreaterThanOrEqual(6);
      expect((await store.scan(undefined, 100, 0)).next).toBeUndefined();
    });

    it("clears the litter of crashed puts and collectors", async () => {
      const bytes = crypto.randomBytes(100);
      const digest = await store.put(bytes);
      const hex = digest.slice("sha256-".length);
      const dir = join(objectPath(digest), "..");
      const temp = join(dir, `.tmp-${hex}-1-abc`);
      writeFileSync(temp, "half");
      // A collector that died with the object set aside.
      const aside = join(dir, `.gc-${hex}-1-def`);
      linkSync(objectPath(digest), aside);
      rmSync(objectPath(digest));
      // Litter changed after the cutoff is left alone (its writer may still be at work).
      await store.scan(undefined, 100, Date.now() - HOUR);
      expect(existsSync(temp) && existsSync(aside)).toBe(true);
      await store.scan(undefined, 100, Date.now() + 1_000);
      expect(existsSync(temp)).toBe(false);
      expect(filesUnder(root)).toEqual([objectPath(digest)]);
      expect(Buffer.from((await store.get(digest))!)).toEqual(bytes);
    });
  });
});
