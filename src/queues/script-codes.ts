// The return codes of the scheduler's scripts: one table for all of them (each negative code has one
// meaning in every script that returns it), handed to the scripts as the Lua table `E` and decoded in
// one function, as bullmq's `finishedErrors` does for its own scripts.
/**
 * A script's refusal: the call changed nothing the caller asked for, for the reason named. `from` lists
 * the scripts (scripts.ts SCRIPT_NAMES) that return it, as `E.<name>` (lua-mirrors.test.ts checks both). The reply is `{ code }`, or
 * `{ code, position }` where noted; cancel.lua replies with the bare code.
 */
export const SCRIPT_CODES = {
  /** No such job (cancel.lua: none that this customer may cancel). */
  missing: { code: -1, from: ["cancel", "finish"] },
  /** The job has ended already. */
  terminal: { code: -2, from: ["cancel"] },
  /** The attempt is not the job's current one (another token), or the job is no longer running. */
  stale: { code: -3, from: ["finish"] },
  /** The job was cancelled while this attempt ran: it stays cancelled (the attempt's metering is kept). */
  cancelled: { code: -4, from: ["finish"] },
  /** A job with this id exists (another admission's). */
  exists: { code: -5, from: ["admit"] },
  /** `{ code, position }`: it could not start within the caller's limit; nothing was stored. */
  too_far: { code: -6, from: ["admit"] },
  /** `{ code, queued }`: the tenant has its queued-at-once limit of jobs queued; nothing was stored. */
  queue_full: { code: -10, from: ["admit", "lim_take"] },
  /** `{ code, queued }`: the queue holds the queued-at-once limit of everyone (QUEUE_MAX); nothing was stored. */
  queue_full_all: { code: -11, from: ["admit", "lim_take"] },
  /**
   * `{ code, position }`: this very admission was stored already (Redis ran it, the reply was lost and
   * the client resent it): admitted, at `position` (-1 when it is no longer queued).
   */
  resent: { code: -7, from: ["admit"] },
  /** The id was voided (admit_resolve.lua or idem_begin.lua settled it as never admitted). */
  voided: { code: -8, from: ["admit"] },
  /** The job belongs to another customer. */
  foreign: { code: -9, from: ["admit_resolve"] },
  /** The audit log's lock is not held with this fencing token any more (another appender took it). */
  fenced: { code: -12, from: ["audit_commit", "audit_checkpoint", "audit_restore"] },
  /** The audit log's size is not the one the appender expected (its view is stale): nothing changed. */
  moved: { code: -13, from: ["audit_commit", "audit_checkpoint", "audit_restore"] },
  /** The records are not the next staged ones (taken already, or never staged): nothing changed. */
  unstaged: { code: -14, from: ["audit_commit"] },
  /** A job of the records to restore is in the audit log already: nothing changed. */
  appended: { code: -15, from: ["audit_restore"] },
} as const satisfies Record<string, { readonly code: number; readonly from: readonly string[] }>;

export type ScriptRefusal = keyof typeof SCRIPT_CODES;

/** The refusals `script` may return. */
export type RefusalOf<S extends string> = {
  [R in ScriptRefusal]: S extends (typeof SCRIPT_CODES)[R]["from"][number] ? R : never;
}[ScriptRefusal];

const BY_CODE = new Map<number, ScriptRefusal>(
  (Object.keys(SCRIPT_CODES) as ScriptRefusal[]).map((name) => [SCRIPT_CODES[name].code, name]),
);

/**
 * What `script`'s reply code means: undefined for a code ≥ 0 (not a refusal: the script's header says
 * what it returned), else the refusal it stands for.
 * @throws Error for a negative code that is not in the table or that `script` does not return (the
 *   script and its caller disagree: a bug, never a state of the data).
 */
export function refusalOf<S extends string>(script: S, code: number): RefusalOf<S> | undefined {
  if (code >= 0) return undefined;
  const name = BY_CODE.get(code);
  if (name === undefined || !(SCRIPT_CODES[name].from as readonly string[]).includes(script)) {
    throw new Error(`${script}.lua returned ${code}, which it does not return`);
  }
  return name as RefusalOf<S>;
}

/** The table as Lua source, `local E = {missing = -1, ...}` (for Lua run beside the scripts, in tests). */
export function luaCodeTable(): string {
  const entries = (Object.keys(SCRIPT_CODES) as ScriptRefusal[]).map(
    (name) => `${name} = ${SCRIPT_CODES[name].code}`,
  );
  return `local E = {${entries.join(", ")}}`;
}

/**
 * A script's source with every `E.<name>` written out as its code, `(-5)`: the scripts name the codes
 * of this table, and Redis gets the numbers, so no call builds the table (Redis runs a script's whole
 * text on every call).
 * @throws Error for a name that is not in the table.
 */
export function withLuaCodes(lua: string): string {
  return lua.replace(/\bE\.(\w+)/g, (_, name: string) => {
    const entry = (SCRIPT_CODES as Record<string, { readonly code: number } | undefined>)[name];
    if (entry === undefined) throw new Error(`E.${name} is not a script code`);
    return `(${entry.code})`;
  });
}
