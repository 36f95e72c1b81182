// The producer side of BullMQ's `render` queue in one worker process: hands started attempts to it,
// and gives attempts back unbegun (the job back at its place, no attempt spent) when BullMQ refuses
// them or when nobody began them before the worker stopped.
import { attemptId } from "../core/attempt-id.js";
import { Queue } from "bullmq";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import type { Clock } from "../core/time.js";
import { mayHaveRun } from "../queues/call-outcome.js";
import { RENDER_QUEUE } from "../queues/keys.js";
import type { Attempt, Scheduler } from "../queues/scheduler.js";
import type { LeaseKeeper } from "./lease-keeper.js";
import type { SlotLedger } from "./slot-ledger.js";

/** Pause of dispatching after BullMQ refused the attempts handed to it. */
export const HAND_RETRY_MS = 1_000;

export interface AttemptQueueDeps {
  /** A connection of BullMQ's own (it is closed by whoever opened it). */
  readonly connection: RedisClient;
  readonly prefix: string;
  readonly scheduler: Pick<Scheduler, "finish">;
  readonly ledger: Pick<SlotLedger, "hand" | "drop" | "waiting">;
  /** Told of attempts (`id|token`) that must never call their backend, should BullMQ have taken them after all. */
  readonly leases: Pick<LeaseKeeper, "doom">;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface AttemptQueue {
  /**
   * Puts started attempts on the BullMQ queue; a worker process (usually this one) runs each. When
   * Redis refuses them with an error reply (at its maxmemory it refuses BullMQ's writes, while our
   * scripts, which delete first, still start attempts), they are handed back unbegun — no attempt
   * spent — and {@link refusing} holds for {@link HAND_RETRY_MS}: left alone, their leases would run
   * out and each job would be reaped as a lost attempt, again and again until it failed `worker_lost`.
   * @throws the BullMQ error (after handing the attempts back when that was surely nothing added).
   */
  hand(attempts: readonly Attempt[]): Promise<void>;
  /** {@link hand} without waiting; a failure is logged. */
  handOff(attempts: readonly Attempt[]): void;
  /** Gives a started attempt back unbegun: the job returns to its place, no attempt spent. Never throws. */
  readonly handBack: (a: Pick<Attempt, "id" | "token" | "backend">) => Promise<void>;
  /** Attempts handed to BullMQ that no process began: taken off the queue and handed back. */
  handBackWaiting(): Promise<void>;
  /** Whether BullMQ refused attempts within the last {@link HAND_RETRY_MS} (dispatching waits). */
  refusing(): boolean;
  /** Closes the BullMQ queue. */
  close(): Promise<void>;
}

export function createAttemptQueue(deps: AttemptQueueDeps): AttemptQueue {
  const { ledger, clock, logger: log } = deps;
  const queue = new Queue<Attempt>(RENDER_QUEUE, { connection: deps.connection, prefix: deps.prefix });
  queue.on("error", (err) => log.warn({ err: err.message }, "queue connection error"));
  /** Nothing is handed before this time: BullMQ just refused attempts. */
  let refusedUntil = 0;

  async function handBack(a: Pick<Attempt, "id" | "token" | "backend">): Promise<void> {
    await deps.scheduler.finish(a.id, a.token, a.backend, "busy", {}).catch((err: unknown) => {
      log.warn({ err, job: a.id }, "hand-back failed; the lease expires and the job is requeued");
    });
  }

  async function hand(attempts: readonly Attempt[]): Promise<void> {
    ledger.hand(attempts);
    try {
      await queue.addBulk(
        attempts.map((a) => ({
          name: a.route,
          data: a,
          opts: {
            jobId: attemptId(a),
            attempts: 1,
            // The job record lives in the scheduler; a completed attempt has nothing left to tell.
            removeOnComplete: true,
            removeOnFail: { count: 5000 },
          },
        })),
      );
    } catch (err) {
      if (!mayHaveRun(err)) {
        refusedUntil = clock() + HAND_RETRY_MS;
        for (const a of attempts) {
          ledger.drop(a.id);
          // Should BullMQ have taken some of a batch after all, this process never begins them
          // (and renewal stops them in any other within a second).
          deps.leases.doom(attemptId(a));
        }
        await Promise.all(attempts.map(handBack));
      }
      throw err;
    }
  }

  return {
    hand,
    handOff(attempts) {
      hand(attempts).catch((err: unknown) => log.warn({ err }, "handing attempts to BullMQ failed"));
    },
    handBack,
    async handBackWaiting() {
      for (const h of ledger.waiting()) {
        const removed = await queue.remove(attemptId(h)).catch(() => 0);
        if (removed === 1) {
          await handBack(h);
          ledger.drop(h.id);
        }
      }
    },
    refusing: () => clock() < refusedUntil,
    close: () => queue.close(),
  };
}
