// What one WebSocket connection sends, with backpressure (docs/decisions.md "WebSocket"): a reader
// that keeps up gets every message as it comes; once the bytes waiting in the process for a
// connection pass the high-water mark, intermediate messages (progress, frames, positions) are no
// longer sent but kept, only the latest of each kind per job, and go out as the buffer drains. The
// messages that matter (ack, started, complete, error, pong) are always sent: there are a few per
// job and the connection's jobs are bounded. A connection whose buffer stays above the hard limit
// for the slow-reader time is reported (the session closes it), so no reader can make the process
// hold more than about that limit for it.

/** The part of a `ws` WebSocket this uses. */
export interface SendSocket {
  /** Bytes handed to the socket and not yet written to the kernel. */
  readonly bufferedAmount: number;
  send(data: string, cb: (err?: Error) => void): void;
}

/** The intermediate messages of a job that may be coalesced (only the latest of each kind is kept). */
export type IntermediateKind = "progress" | "frame" | "position";

export interface SendQueueOptions {
  readonly socket: SendSocket;
  /** Above this many buffered bytes, intermediates wait (coalesced) instead of being sent. */
  readonly highWaterBytes: number;
  /** Buffered bytes that, held for `slowReaderMs`, make the reader a slow one. */
  readonly maxBufferedBytes: number;
  readonly slowReaderMs: number;
  /** Called once when the buffer has stayed above `maxBufferedBytes` for `slowReaderMs`. */
  readonly onSlowReader: () => void;
}

export interface SendQueueStats {
  /** The most bytes the connection's buffer held right after a send. */
  readonly peakBufferedBytes: number;
  /** Intermediate messages never sent (replaced by a later one of their kind, or their job ended). */
  readonly coalesced: number;
  /** Their bytes. */
  readonly coalescedBytes: number;
  /** Intermediates waiting now. */
  readonly waiting: number;
}

export interface SendQueue {
  /** Sends `msg` now, whatever the buffer holds. */
  now(msg: object): void;
  /**
   * Sends an intermediate message of `stream` (one job as this connection follows it) now when the
   * buffer is below the high-water mark and nothing waits; else keeps it as the latest of its kind
   * for that stream, replacing the one kept before.
   */
  latest(stream: number, kind: IntermediateKind, msg: object): void;
  /** Drops the intermediates waiting for `stream` (its job ended; its last message follows). */
  forget(stream: number): void;
  /** Sends waiting intermediates, oldest first, while the buffer is below the high-water mark. */
  flush(): void;
  stats(): SendQueueStats;
  /** Stops the slow-reader timer; later calls send nothing. */
  close(): void;
}

export function createSendQueue(o: SendQueueOptions): SendQueue {
  /** Waiting intermediates by `<stream>:<kind>`, in the order they first waited. */
  const waiting = new Map<string, string>();
  let peak = 0;
  let coalesced = 0;
  let coalescedBytes = 0;
  let closed = false;
  let slowTimer: NodeJS.Timeout | undefined;

  const below = () => o.socket.bufferedAmount < o.highWaterBytes;

  /** Arms the slow-reader timer while the buffer is over the hard limit, disarms it below. */
  const watch = () => {
    if (closed) return;
    if (o.socket.bufferedAmount <= o.maxBufferedBytes) {
      clearTimeout(slowTimer);
      slowTimer = undefined;
    } else if (slowTimer === undefined) {
      slowTimer = setTimeout(() => {
        slowTimer = undefined;
        if (!closed && o.socket.bufferedAmount > o.maxBufferedBytes) o.onSlowReader();
      }, o.slowReaderMs);
    }
  };

  const written = (err?: Error) => {
    if (err || closed) return;
    watch();
    if (waiting.size > 0 && below()) flush();
  };

  const send = (text: string) => {
    o.socket.send(text, written);
    peak = Math.max(peak, o.socket.bufferedAmount);
    watch();
  };

  const drop = (text: string) => {
    coalesced++;
    coalescedBytes += Buffer.byteLength(text);
  };

  function flush() {
    for (const [key, text] of waiting) {
      if (closed || !below()) return;
      waiting.delete(key);
      send(text);
    }
  }

  return {
    now(msg) {
      if (!closed) send(JSON.stringify(msg));
    },
    latest(stream, kind, msg) {
      if (closed) return;
      const text = JSON.stringify(msg);
      if (waiting.size === 0 && below()) {
        send(text);
        return;
      }
      const key = `${stream}:${kind}`;
      const before = waiting.get(key);
      if (before !== undefined) drop(before);
      waiting.set(key, text);
      if (below()) flush();
    },
    forget(stream) {
      for (const [key, text] of waiting) {
        if (key.startsWith(`${stream}:`)) {
          waiting.delete(key);
          drop(text);
        }
      }
    },
    flush,
    stats: () => ({ peakBufferedBytes: peak, coalesced, coalescedBytes, waiting: waiting.size }),
    close() {
      closed = true;
      clearTimeout(slowTimer);
      slowTimer = undefined;
      waiting.clear();
    },
  };
}
