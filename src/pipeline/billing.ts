// The billing follow-up (docs/decisions.md "Billing"): each terminal event becomes one ledger entry,
// durable on disk before the customer's usage counts are updated in Redis, both once per job
// whatever is redelivered or retried.
import type { Logger } from "pino";
import { ledgerEntryOf, type LedgerEntry } from "../core/billing.js";
import type { OutboxEvent } from "../core/outbox.js";
import type { Ledger } from "../core/ports.js";
import type { Tiers } from "../core/tiers.js";
import type { UsageStore } from "../queues/usage-store.js";

/** What a job of the billing queue carries: the terminal event (its record without the request). */
export interface BillingTask {
  readonly event: OutboxEvent;
}

export interface BillingDeps {
  readonly ledger: Ledger;
  readonly usage: UsageStore;
  readonly tiers: Tiers;
  readonly logger: Logger;
  /** Fault injection for the crash tests (PIPELINE_FAULT): called between the steps. */
  readonly fault?: (point: "after_ledger") => void;
  /** This run's id (one runner bills a job at a time) and how long its lease holds (ms). */
  readonly owner?: string;
  readonly leaseMs?: number;
}

/** Another runner is billing the job now (BullMQ retries it later). */
export class BillingBusy extends Error {
  constructor(jobId: string) {
    super(`job ${jobId} is being billed by another runner`);
    this.name = "BillingBusy";
  }
}

/**
 * Bills one terminal event: its ledger line is written (unless a writer that died after writing it
 * left it there: a job marked pending is looked up in its day's ledger first) and synced, then the
 * usage counts record it, once per job. Returns the entry, undefined for a non-terminal event.
 */
export async function billEvent(event: OutboxEvent, deps: BillingDeps): Promise<LedgerEntry | undefined> {
  const entry = ledgerEntryOf(event, deps.tiers);
  if (entry === undefined) return undefined;
  if (!(await deps.usage.lease(entry.job_id, deps.owner ?? "billing", deps.leaseMs ?? 30_000))) {
    throw new BillingBusy(entry.job_id);
  }
  const state = await deps.usage.begin(entry.job_id);
  if (state === "done") return entry;
  if (state === "new" || !(await deps.ledger.contains(entry))) await deps.ledger.append(entry);
  deps.fault?.("after_ledger");
  if (await deps.usage.record(entry)) {
    deps.logger.debug({ job: entry.job_id, gpu_ms: entry.gpu_ms, cost: entry.cost_micro_usd }, "billed");
  }
  return entry;
}
