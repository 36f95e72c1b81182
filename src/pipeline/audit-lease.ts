// The audit appender's hold on the log (docs/decisions.md "Audit log: the appender"): the Redis lock
// with its fencing token, renewed on a timer, and how long this process may still act on it. Redis
// refuses every commit of a holder that lost the lock (audit_commit.lua checks the token); the files
// under DATA_DIR cannot check a token, so the appender asks {@link AuditLease.check} before each write
// to them: a holder whose last renewal is older than the lock's life minus a margin stops.
import type { Logger } from "pino";
import type { Clock } from "../core/time.js";
import type { AuditStore } from "../queues/audit-store.js";

/** The lock was lost (taken by another process, or not renewed in time): stop appending. */
export class AuditLockLost extends Error {
  constructor(why: string) {
    super(`audit log lock lost: ${why}`);
    this.name = "AuditLockLost";
  }
}

export interface AuditLease {
  readonly fence: number;
  /** Whether the lease is still good (renewed in time, not lost). */
  valid(): boolean;
  /** @throws AuditLockLost when it is not {@link valid}. */
  check(): void;
  /** Stops renewing; releases the lock in Redis when `release` (best effort). Idempotent. */
  end(release: boolean): Promise<void>;
}

export interface LeaseOptions {
  readonly store: Pick<AuditStore, "acquire" | "renew" | "release">;
  readonly owner: string;
  readonly lockMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

/**
 * Takes the lock when it is free: the lease, renewed every third of the lock's life, or undefined
 * when another process holds it. The lease counts as valid until the lock's life minus a fifth
 * (the margin for clock drift and the reply's way back) after the start of its last renewal.
 */
export async function takeLease(o: LeaseOptions): Promise<AuditLease | undefined> {
  const margin = Math.max(1, Math.floor(o.lockMs / 5));
  const started = o.clock();
  const fence = await o.store.acquire(o.owner, o.lockMs);
  if (fence === 0) return undefined;
  let validUntil = started + o.lockMs - margin;
  let lost: string | undefined;
  let ended = false;
  let renewing: Promise<void> | undefined;

  const renew = async (): Promise<void> => {
    const at = o.clock();
    try {
      if (await o.store.renew(o.owner, fence, o.lockMs)) {
        if (!ended) validUntil = Math.max(validUntil, at + o.lockMs - margin);
      } else {
        lost ??= "another process holds it";
      }
    } catch (err) {
      // Redis away: the lease runs out on its own unless a later renewal gets through
      o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, "audit lock renewal failed");
    }
  };
  const timer = setInterval(
    () => {
      if (renewing === undefined) renewing = renew().finally(() => (renewing = undefined));
    },
    Math.max(10, Math.floor(o.lockMs / 3)),
  );
  timer.unref();

  const valid = () => !ended && lost === undefined && o.clock() < validUntil;
  return {
    fence,
    valid,
    check() {
      if (!valid()) throw new AuditLockLost(lost ?? (ended ? "released" : "not renewed in time"));
    },
    async end(release) {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      await renewing;
      if (release && lost === undefined) {
        await o.store.release(o.owner, fence).catch(() => undefined);
      }
    },
  };
}
