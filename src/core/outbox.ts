// What leaves the scheduler: one outbox entry per job event that a consumer needs (every terminal
// transition, and the events a job's webhook subscribes to), written by the scheduler's Lua in the
// same step as the transition (lib.lua add_event / end_job) and carried by the pipeline's relay to
// the follow-up queues (docs/decisions.md "Outbox").

/** Job events that end a job: exactly one of them per job. */
export const TERMINAL_EVENTS = ["complete", "error", "cancelled"] as const;

/** One job event as the outbox carries it: self-contained (job records expire; this does not). */
export interface OutboxEvent {
  readonly jobId: string;
  /** `started`, `progress`, `complete`, `error` or `cancelled`. */
  readonly event: string;
  /** The event's number in the job's event list (1-based): `jobId` and `seq` name the event. */
  readonly seq: number;
  /** When the transition happened (ms since the epoch, the scheduler's clock). */
  readonly at: number;
  /** The event's data, as the job's event stream sends it (digests, not URLs). */
  readonly data: Readonly<Record<string, unknown>>;
  /** The job's record (its stored fields, the request `req` among them) as the transition left it. */
  readonly record: Readonly<Record<string, string>>;
}

/** The id of an event, stable across redeliveries: the follow-up queues' job ids derive from it. */
export function eventId(e: Pick<OutboxEvent, "jobId" | "seq">): string {
  return `${e.jobId}.${e.seq}`;
}

/** Whether `event` ends its job. */
export function isTerminalEvent(event: string): boolean {
  return (TERMINAL_EVENTS as readonly string[]).includes(event);
}
