// finish.lua's arguments by name: the one place that knows their order, for the scheduler that sends
// them and for tests that read them back (from MONITOR, say).

/** One call of finish.lua (see its header), the prefix aside. */
export interface FinishCall {
  readonly id: string;
  readonly token: string;
  readonly backend: string;
  /** ms */
  readonly now: number;
  readonly outcome: string;
  /** The FinishPayload as JSON. */
  readonly payload: string;
  readonly maxAttempts: number;
  readonly retentionS: number;
  readonly retentionCount: number;
  /** Attempts to start next for the caller (its free slots; 0 = none). */
  readonly slots: number;
  /** The backends (BackendView[]) as JSON. */
  readonly backends: string;
  /** The preferred engine per `family/model` as JSON. */
  readonly prefer: string;
  readonly leaseTtlMs: number;
  /** Unique per call: a resend within a minute gets the first call's reply. */
  readonly tokenBase: string;
  /**
   * A sync job's single output, not yet in the CAS: kept in Redis with the settle (empty: none).
   */
  readonly syncOutput: Uint8Array;
  /** Whether the reply should carry the job's record when the settle ends the job. */
  readonly withRecord: boolean;
}

/** The names of finish.lua's ARGV[1..], in order. */
export const FINISH_ARGV = [
  "prefix",
  "id",
  "token",
  "backend",
  "now",
  "outcome",
  "payload",
  "maxAttempts",
  "retentionS",
  "retentionCount",
  "slots",
  "backends",
  "prefer",
  "leaseTtlMs",
  "tokenBase",
  "syncOutput",
  "withRecord",
] as const satisfies readonly ("prefix" | keyof FinishCall)[];

/** The arguments of a finish.lua call after the prefix (the script runner adds it): ARGV[2..]. */
export function finishArgs(c: FinishCall): (string | number | Buffer)[] {
  return [
    c.id,
    c.token,
    c.backend,
    c.now,
    c.outcome,
    c.payload,
    c.maxAttempts,
    c.retentionS,
    c.retentionCount,
    c.slots,
    c.backends,
    c.prefer,
    c.leaseTtlMs,
    c.tokenBase,
    Buffer.from(c.syncOutput.buffer, c.syncOutput.byteOffset, c.syncOutput.byteLength),
    c.withRecord ? "1" : "",
  ];
}

/**
 * finish.lua's ARGV as Redis received them (strings, ARGV[1] the prefix: what MONITOR shows after the
 * routing key), by name. Missing arguments read as "".
 */
export function readFinishArgv(
  argv: readonly string[],
): Readonly<Record<(typeof FINISH_ARGV)[number], string>> {
  return Object.fromEntries(FINISH_ARGV.map((name, i) => [name, argv[i] ?? ""])) as Record<
    (typeof FINISH_ARGV)[number],
    string
  >;
}
