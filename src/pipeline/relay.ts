// The outbox relay (docs/decisions.md "Outbox"): reads the scheduler's outbox through a consumer
// group, hands each event to the follow-up queues under job ids derived from the event (a redelivered
// entry adds nothing), acknowledges after the hand-off, takes over what a dead relay left pending
// (XAUTOCLAIM), and trims what has been handed off. Any number of relays may run.
import type { Logger } from "pino";
import { inferenceEventOf } from "../core/analytics-event.js";
import { auditRecordOf } from "../core/audit-record.js";
import { eventId, isTerminalEvent, type OutboxEvent } from "../core/outbox.js";
import type { Tiers } from "../core/tiers.js";
import type { OutboxEntry, OutboxStore } from "../queues/outbox-store.js";

/** A follow-up queue as the relay uses it (BullMQ's Queue.addBulk). */
export interface FollowUpQueue {
  addBulk(jobs: { name: string; data: unknown; opts: { jobId: string } }[]): Promise<unknown>;
}

/** Where events go: one entry per queue that wants the event. */
export interface FollowUps {
  readonly billing: FollowUpQueue;
  readonly webhooks: FollowUpQueue;
  /** Finished jobs' audit records, for the audit log's appender (pipeline/audit-stage.ts). */
  readonly audit: FollowUpQueue;
}

export interface RelayOptions {
  readonly outbox: OutboxStore;
  readonly queues: FollowUps;
  /** This relay's consumer name in the group (unique per process). */
  readonly consumer: string;
  /** The tiers that price jobs (the audit record carries the price the ledger charges). */
  readonly tiers: Tiers;
  readonly logger: Logger;
  /** Entries read per call. */
  readonly batch?: number;
  /** How long a read waits for new entries (ms). */
  readonly blockMs?: number;
  /** Entries pending this long on another relay are taken over (ms; PIPELINE_CLAIM_MS). */
  readonly claimIdleMs: number;
  /** How often pending entries are looked for and the stream trimmed (ms). */
  readonly housekeepingMs?: number;
  /** Fault injection for the crash tests (PIPELINE_FAULT): called between the steps. */
  readonly fault?: (point: "after_read") => void;
  /**
   * The analytics stage, when this process runs its consumer: each terminal event's row (priced with
   * `tiers`, as billing prices it) goes to `queue`. Absent: no analytics job is added.
   */
  readonly analytics?: { readonly queue: FollowUpQueue; readonly tiers: Tiers };
}

export interface Relay {
  /** Runs until {@link Relay.stop}. */
  run(): Promise<void>;
  stop(): Promise<void>;
  /** Entries handed off by this relay. */
  readonly handedOff: () => number;
}

/** The events of a job's webhook subscription (the stored JSON array), empty when it has none. */
function subscribedEvents(record: Readonly<Record<string, string>>): readonly string[] {
  if (!record.webhook) return [];
  try {
    const events: unknown = JSON.parse(record.webhook_events ?? "[]");
    return Array.isArray(events) ? events.filter((e): e is string => typeof e === "string") : [];
  } catch {
    return [];
  }
}

/** The record without the request (prompts stay out of the queues that do not need them). */
function withoutRequest(e: OutboxEvent): OutboxEvent {
  const { req: _req, ...record } = e.record;
  return { ...e, record };
}

export function createRelay(opts: RelayOptions): Relay {
  const batch = opts.batch ?? 200;
  const blockMs = opts.blockMs ?? 1_000;
  const housekeepingMs = opts.housekeepingMs ?? Math.max(100, Math.floor(opts.claimIdleMs / 2));
  const log = opts.logger.child({ component: "relay" });
  let stopped = false;
  let handed = 0;
  let running: Promise<void> | undefined;

  /** The event's analytics row; a record it cannot read costs its row, never the hand-off of the rest. */
  function analyticsRow(e: OutboxEvent, tiers: Tiers) {
    try {
      return inferenceEventOf(e, tiers);
    } catch (err) {
      log.error({ err, job: e.jobId }, "no analytics row for an unreadable job record");
      return undefined;
    }
  }

  /** The event's audit record; undefined (logged) when the record cannot be made: a bug, never data. */
  function auditRecordFor(e: OutboxEvent) {
    try {
      return auditRecordOf(e, opts.tiers);
    } catch (err) {
      log.error({ err, job: e.jobId }, "audit record of a finished job could not be made");
      return undefined;
    }
  }

  async function handOff(entries: readonly OutboxEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const billing: Parameters<FollowUpQueue["addBulk"]>[0] = [];
    const webhooks: Parameters<FollowUpQueue["addBulk"]>[0] = [];
    const analytics: Parameters<FollowUpQueue["addBulk"]>[0] = [];
    const audit: Parameters<FollowUpQueue["addBulk"]>[0] = [];
    for (const entry of entries) {
      if ("malformed" in entry) {
        log.error({ entry: entry.streamId, why: entry.malformed }, "malformed outbox entry dropped");
        continue;
      }
      const e = entry.event;
      const id = eventId(e);
      if (isTerminalEvent(e.event)) {
        billing.push({ name: "bill", data: { event: withoutRequest(e) }, opts: { jobId: `bill.${id}` } });
        const row = opts.analytics ? analyticsRow(e, opts.analytics.tiers) : undefined;
        if (row) analytics.push({ name: "row", data: { row }, opts: { jobId: `an.${id}` } });
        // made here, where the request is at hand for its digest; only the record travels on
        const record = auditRecordFor(e);
        if (record !== undefined)
          audit.push({ name: "audit", data: { record }, opts: { jobId: `audit.${id}` } });
      }
      // A job's end is told by its status: a cancelled job's last event in its stream is `error`
      // (its code says why), but its webhook event is `job.cancelled` (API.md §3 "Webhooks").
      const hooked = isTerminalEvent(e.event) && e.record.status ? { ...e, event: e.record.status } : e;
      if (subscribedEvents(e.record).includes(hooked.event)) {
        webhooks.push({
          name: hooked.event,
          data: { event: hooked, url: e.record.webhook, customerId: e.record.cust },
          opts: { jobId: `wh.${id}` },
        });
      }
    }
    opts.fault?.("after_read");
    await Promise.all([
      billing.length > 0 ? opts.queues.billing.addBulk(billing) : undefined,
      webhooks.length > 0 ? opts.queues.webhooks.addBulk(webhooks) : undefined,
      analytics.length > 0 ? opts.analytics?.queue.addBulk(analytics) : undefined,
      audit.length > 0 ? opts.queues.audit.addBulk(audit) : undefined,
    ]);
    await opts.outbox.ack(entries.map((e) => e.streamId));
    handed += entries.length;
  }

  async function housekeeping(): Promise<void> {
    for (;;) {
      const claimed = await opts.outbox.claim(opts.consumer, opts.claimIdleMs, batch);
      if (claimed.length > 0)
        log.info({ entries: claimed.length }, "took over outbox entries of a relay gone quiet");
      await handOff(claimed);
      if (claimed.length < batch) break;
    }
    await opts.outbox.trim();
  }

  async function loop(): Promise<void> {
    let lastHousekeeping = 0;
    // (re)made at start, and whenever the stream was deleted (a FLUSHALL, a restore): the
    // scheduler's next XADD makes the stream again, without the group
    let groupReady = false;
    while (!stopped) {
      try {
        if (!groupReady) {
          await opts.outbox.ensureGroup();
          groupReady = true;
        }
        if (Date.now() - lastHousekeeping >= housekeepingMs) {
          lastHousekeeping = Date.now();
          await housekeeping();
        }
        await handOff(await opts.outbox.read(opts.consumer, batch, blockMs));
      } catch (err) {
        if (stopped) break;
        if (String((err as Error).message).includes("NOGROUP")) groupReady = false;
        log.warn({ err }, "outbox relay step failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  return {
    run() {
      running ??= loop();
      return running;
    },
    async stop() {
      stopped = true;
      await running;
    },
    handedOff: () => handed,
  };
}
