// Whether a Redis call that failed may still have run: the question behind every "unknown" answer.
/**
 * False when the failure proves the call did nothing: Redis answered with an error reply (a script
 * that fails does so before its first write; OOM, BUSY, LOADING and the like refuse it before it
 * starts), or ioredis never wrote it to a socket (not connected, no offline queue). True for
 * everything else — a timeout, a connection closed after the write, a retry limit — since Redis may
 * have run it and only the reply was lost (or it may still run, when the call is held up on the way).
 */
export function mayHaveRun(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  if (err.name === "ReplyError") return false;
  return !err.message.includes("enableOfflineQueue");
}
