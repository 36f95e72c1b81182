// BlobStore.putStream on the filesystem CAS: the bytes of a stream stored under their digest without
// being gathered first, nothing left behind when the stream fails, an existing object kept.
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createFsBlobStore, type FsBlobStore } from "../../src/infra/fs-blob-store.js";

let root: string;
let store: FsBlobStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "rg-stream-"));
  store = createFsBlobStore({ root });
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const digestOf = (bytes: Uint8Array) => `sha256-${createHash("sha256").update(bytes).digest("hex")}`;

/** Every file under the CAS root (objects and temp files). */
function files(dir = root): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

async function* chunksOf(bytes: Uint8Array, size: number, failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes.byteLength; off += size) {
    if (failAfter !== undefined && off >= failAfter) throw new Error("the source failed");
    yield bytes.subarray(off, off + size);
  }
}

describe("putStream", () => {
  it("stores the chunks as one object under their digest, readable and verified", async () => {
    const bytes = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 7) % 251);
    const { digest, size } = await store.putStream(chunksOf(bytes, 64 * 1024));
    expect([digest, size]).toEqual([digestOf(bytes), bytes.byteLength]);
    expect(Buffer.from((await store.get(digest))!).equals(Buffer.from(bytes))).toBe(true);
    const hex = digest.slice("sha256-".length);
    const path = join(root, "sha256", hex.slice(0, 2), hex);
    expect(files()).toEqual([path]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("stores nothing and rethrows when the source fails midway", async () => {
    const bytes = new Uint8Array(200_000).fill(3);
    await expect(store.putStream(chunksOf(bytes, 10_000, 50_000))).rejects.toThrow("the source failed");
    expect(files()).toEqual([]);
  });

  it("keeps an existing object of the same bytes and leaves no temp file", async () => {
    const bytes = new TextEncoder().encode("the same bytes twice");
    const digest = await store.put(bytes);
    const again = await store.putStream(chunksOf(bytes, 3));
    expect(again.digest).toBe(digest);
    expect(files()).toHaveLength(1);
    expect(readFileSync(files()[0]!).toString()).toBe("the same bytes twice");
  });

  it("stores an empty stream as the empty object", async () => {
    const { digest, size } = await store.putStream(chunksOf(new Uint8Array(0), 1));
    expect([digest, size]).toEqual([digestOf(new Uint8Array(0)), 0]);
    expect(await store.has(digest)).toBe(true);
  });
});
