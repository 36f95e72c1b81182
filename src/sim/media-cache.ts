// A small LRU of rendered media, bounded by entries and bytes, so repeated requests are cheap.

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

/** A fresh, empty cache. */
export function createMediaCache(opts: MediaCacheOptions = {}): MediaCache {
  const maxEntries = opts.maxEntries ?? 64;
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const map = new Map<string, Uint8Array>();
  let bytes = 0;
  const drop = (key: string): void => {
    const old = map.get(key);
    if (old === undefined) return;
    map.delete(key);
    bytes -= old.byteLength;
  };
  return {
    get(key) {
      const v = map.get(key);
      if (v === undefined) return undefined;
      map.delete(key);
      map.set(key, v);
      return v;
    },
    set(key, value) {
      drop(key);
      if (value.byteLength > maxBytes || maxEntries <= 0) return;
      map.set(key, value);
      bytes += value.byteLength;
      while (map.size > maxEntries || bytes > maxBytes) {
        const oldest = map.keys().next();
        if (oldest.done) break;
        drop(oldest.value);
      }
    },
    size: () => ({ entries: map.size, bytes }),
    clear() {
      map.clear();
      bytes = 0;
    },
  };
}
