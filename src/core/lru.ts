// A bounded map that forgets the least recently used entry first (caches of verified tokens and files).

/** What {@link createLru} returns: a Map whose reads and writes mark the entry most recently used. */
export interface Lru<K, V> {
  /** The value of `key` (and marks it recently used; see {@link createLru}), or `undefined`. */
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
 * an entry keeps the least recently used one first. A read re-inserts its entry only when at least
 * half the capacity of entries were stored or moved since that entry last was: a hit on a hot entry
 * costs one lookup instead of a delete and an insert (the token caches read on every request), and
 * an entry read since then is never among the older half, so it is not the next to be dropped.
 *
 * @throws RangeError when `capacity` is not a non-negative integer.
 */
export function createLru<K, V>(capacity: number): Lru<K, V> {
  if (!Number.isSafeInteger(capacity) || capacity < 0) {
    throw new RangeError("capacity must be a non-negative integer");
  }
  /** The value, and the stamp of its last insert or move. */
  interface Slot {
    value: V;
    stamp: number;
  }
  const map = new Map<K, Slot>();
  const moveAfter = Math.max(1, Math.floor(capacity / 2));
  let stamp = 0;
  return {
    get(key) {
      const slot = map.get(key);
      if (slot === undefined) return undefined;
      if (stamp - slot.stamp >= moveAfter) {
        map.delete(key);
        slot.stamp = ++stamp;
        map.set(key, slot);
      }
      return slot.value;
    },
    set(key, value) {
      if (capacity === 0) return;
      map.delete(key);
      map.set(key, { value, stamp: ++stamp });
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
    *entries() {
      for (const [key, slot] of map) yield [key, slot.value] as [K, V];
    },
  };
}
