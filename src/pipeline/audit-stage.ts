// The `audit` follow-up queue's step (docs/decisions.md "Audit log: the appender"): a finished job's
// audit record, made by the relay from the terminal outbox event, is staged for the appender in its
// canonical bytes, once per job id — a job of the queue run twice, or an event handed off twice,
// stages nothing more, and a record appended already is not staged again.
import { parseAuditRecord, type AuditRecord } from "../core/audit-record.js";
import { canonicalJson } from "../core/canonical-json.js";
import type { AuditStore } from "../queues/audit-store.js";

/** What a job of the audit queue carries: the record alone (no request, no prompt). */
export interface AuditTask {
  readonly record: AuditRecord;
}

/** A task whose record is not an audit record: running it again cannot help. */
export class BadAuditTask extends Error {
  constructor(why: string) {
    super(`not an audit record: ${why}`);
    this.name = "BadAuditTask";
  }
}

/**
 * Stages the task's record: true when staged now, false when it was staged or appended before.
 * @throws BadAuditTask for a record that is not one.
 */
export async function stageAuditRecord(task: unknown, store: Pick<AuditStore, "stage">): Promise<boolean> {
  const parsed = parseAuditRecord((task as Partial<AuditTask> | null)?.record);
  if (!parsed.ok) throw new BadAuditTask(parsed.why);
  return store.stage(parsed.record.job_id, canonicalJson(parsed.record));
}
