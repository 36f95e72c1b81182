// A bounded map that forgets the least recently used entry first (caches of verified tokens and files).

/** What {@link createLru} returns: a Map whose reads and writes mark the entry most recently used. */
export interface Lru<K, V> {
  /** The value of `key` (and marks it most recently used), or `undefined`. */
  get(key: K): V | undefined;
  /**
   * Stores `value` as the most recently used entry; beyond the capacity the least recently used entry
   * is dropped. With capacity 0 nothing is stored.
   */
  set(key: K, value: V): void;
  /** Forgets `key`; true when it was there. */
  delete(key: K): boolean;
  /** Forgets everything. */
  clear(): void;
  /** Entries held now. */
  readonly size: number;
  /** The entries, least recently used first. */
  entries(): IterableIterator<[K, V]>;
}

/**
 * An empty LRU holding at most `capacity` entries. A Map iterates in insertion order, so re-inserting
 * an entry on every use keeps the least recently used one first.
 *
 * @throws RangeError when `capacity` is not a non-negative integer.
 */
export function createLru<K, V>(capacity: number): Lru<K, V> {
  if (!Number.isSafeInteger(capacity) || capacity < 0) {
    throw new RangeError("capacity must be a non-negative integer");
  }
  const map = new Map<K, V>();
  return {
    get(key) {
      const value = map.get(key);
      if (value === undefined) return undefined;
      map.delete(key);
      map.set(key, value);
      return value;
    },
    set(key, value) {
      if (capacity === 0) return;
      map.delete(key);
      map.set(key, value);
      if (map.size > capacity) {
        const oldest = map.keys().next();
        if (!oldest.done) map.delete(oldest.value);
      }
    },
    delete: (key) => map.delete(key),
    clear() {
      map.clear();
    },
    get size() {
      return map.size;
    },
    entries: () => map.entries(),
  };
}
