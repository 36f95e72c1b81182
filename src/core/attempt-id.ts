// Attempt ids: one attempt of a job is `<job id>|<token>`, as a backend lease member in Redis (lib.lua
// `attempt_id`), as the BullMQ job that carries it to a worker slot, and in a worker's memory.

/** What names an attempt: its job and the fencing token it runs under. */
export interface AttemptRef {
  readonly id: string;
  readonly token: string;
}

/**
 * The separator: in neither a job id (`j_` + alphanumerics) nor a token (hex, a dot, a counter), and
 * allowed in a BullMQ job id (which may not contain `:`).
 */
export const ATTEMPT_ID_SEPARATOR = "|";

/** `<job id>|<token>`. */
export function attemptId(a: AttemptRef): string {
  return a.id + ATTEMPT_ID_SEPARATOR + a.token;
}

/** The job id and token of an attempt id (split at the last separator); undefined when it has none. */
export function parseAttemptId(value: string): AttemptRef | undefined {
  const at = value.lastIndexOf(ATTEMPT_ID_SEPARATOR);
  if (at <= 0 || at === value.length - 1) return undefined;
  return { id: value.slice(0, at), token: value.slice(at + 1) };
}
