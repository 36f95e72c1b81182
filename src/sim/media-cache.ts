// A small LRU of rendered media, bounded by entries and bytes, so repeated requests are cheap.
import { createLru } from "../core/lru.js";

/** An LRU map from a render key to media bytes. */
export interface MediaCache {
  /** The bytes for `key` (and marks them most recently used), or `undefined`. */
  get(key: string): Uint8Array | undefined;
  /** Stores bytes; entries larger than the byte budget are not kept. Evicts least recently used. */
  set(key: string, bytes: Uint8Array): void;
  /** Entries and bytes held now. */
  size(): { entries: number; bytes: number };
  /** Drops everything. */
  clear(): void;
}

/** Limits of {@link createMediaCache}; defaults 64 entries and 64 MiB. */
export interface MediaCacheOptions {
  readonly maxEntries?: number;
  readonly maxBytes?: number;
}

/**
 * A fresh, empty cache: {@link createLru} bounds the entries, and the least recently used entries are
 * dropped beyond the byte budget.
 * @throws RangeError when `maxEntries` is not a non-negative integer.
 */
export function createMediaCache(opts: MediaCacheOptions = {}): MediaCache {
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const lru = createLru<string, Uint8Array>(opts.maxEntries ?? 64);
  // Summed when needed rather than tracked: the LRU drops entries on its own, and there are few.
  const bytesHeld = (): number => {
    let bytes = 0;
    for (const [, value] of lru.entries()) bytes += value.byteLength;
    return bytes;
  };
  return {
    get: (key) => lru.get(key),
    set(key, value) {
      lru.delete(key);
      if (value.byteLength > maxBytes) return;
      lru.set(key, value);
      // Least recently used first; never reaches `value`, which alone fits the budget.
      let bytes = bytesHeld();
      for (const [oldKey, old] of lru.entries()) {
        if (bytes <= maxBytes) break;
        lru.delete(oldKey);
        bytes -= old.byteLength;
      }
    },
    size: () => ({ entries: lru.size, bytes: bytesHeld() }),
    clear: () => lru.clear(),
  };
}
