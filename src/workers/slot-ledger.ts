// The slot ledger of one worker process: which of its BullMQ slots run an attempt, which are promised
// to a dispatch or settle call still in flight, and which attempts it handed to BullMQ that no
// processor here has begun — so that two calls never offer the same slot.
import type { Clock } from "../core/time.js";
import type { Attempt } from "../queues/scheduler.js";
import type { HeldAttempt } from "./render-processor.js";

/** An attempt handed to BullMQ that no processor here has begun. */
export interface HandedAttempt {
  readonly id: string;
  readonly token: string;
  readonly backend: string;
}

/**
 * How long a handed attempt counts against the free slots: a slot was free when it was handed, so
 * some processor takes it within milliseconds.
 */
export const HANDED_COUNTS_MS = 1_000;

export interface SlotLedger {
  /** Attempts running in this process, by job id: the processor keeps it; renewal, the cancel relay and shutdown read it. */
  readonly held: Map<string, HeldAttempt>;
  /** Slots neither running, nor reserved, nor taken by an attempt handed in the last second (may be negative). */
  free(): number;
  /** Reserves every free slot for a call in flight (none when none is free); returns how many. */
  reserveFree(): number;
  /** Gives back `slots` reserved by {@link reserveFree}. */
  release(slots: number): void;
  /** A BullMQ job began in a slot with the attempt of job `id`: the slot runs, the attempt is no longer waiting. */
  begin(id: string): void;
  /** The BullMQ job in a slot ended. */
  end(): void;
  /** Records `attempts` as handed to BullMQ now. */
  hand(attempts: readonly Attempt[]): void;
  /** Forgets the handed attempt of job `id` (refused by BullMQ, handed back, or over). */
  drop(id: string): void;
  /**
   * The handed attempts no processor here has begun, read as it goes; those handed `maxAgeMs` ago
   * or earlier are dropped instead.
   */
  waiting(maxAgeMs?: number): Generator<HandedAttempt>;
}

export function createSlotLedger(deps: { readonly concurrency: number; readonly clock: Clock }): SlotLedger {
  const { concurrency, clock } = deps;
  const held = new Map<string, HeldAttempt>();
  const handed = new Map<string, { token: string; backend: string; at: number }>();
  let active = 0;
  let reserved = 0;

  const free = () => {
    const now = clock();
    let recent = 0;
    for (const h of handed.values()) if (now - h.at <= HANDED_COUNTS_MS) recent++;
    return concurrency - active - recent - reserved;
  };

  return {
    held,
    free,
    reserveFree() {
      const slots = Math.max(0, free());
      reserved += slots;
      return slots;
    },
    release(slots) {
      reserved -= slots;
    },
    begin(id) {
      active++;
      handed.delete(id);
    },
    end() {
      active--;
    },
    hand(attempts) {
      const now = clock();
      for (const a of attempts) handed.set(a.id, { token: a.token, backend: a.backend, at: now });
    },
    drop(id) {
      handed.delete(id);
    },
    *waiting(maxAgeMs = Infinity) {
      const now = clock();
      for (const [id, h] of handed) {
        if (now - h.at >= maxAgeMs) handed.delete(id);
        else if (!held.has(id)) yield { id, token: h.token, backend: h.backend };
      }
    },
  };
}
