// A signal between the roles of one process (`npm start` runs the api and worker roles together):
// listeners are called synchronously, in the order they subscribed. The settle signal
// (core/settle-signal.ts) and the head signal (core/head-signal.ts) are made of it.

export interface LocalSignal<A extends unknown[]> {
  readonly emit: (...args: A) => void;
  /** Calls `listener` on every emit; returns the unsubscribe function. */
  readonly subscribe: (listener: (...args: A) => void) => () => void;
}

export function createLocalSignal<A extends unknown[]>(): LocalSignal<A> {
  const listeners = new Set<(...args: A) => void>();
  return {
    emit: (...args) => {
      for (const l of listeners) l(...args);
    },
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
