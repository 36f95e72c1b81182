// Runs one started attempt: call the backend while holding the attempt's lease, store the outputs in
// the CAS, settle (fenced by the attempt's token) and, in the same step, start this worker's next
// attempts. Never throws for backend trouble: the failure policy decides the job's fate.
import type { Logger } from "pino";
import type { WorkerRecorder } from "../core/metrics.js";
import type { Clock } from "../core/time.js";
import type { BlobStore } from "../core/ports.js";
import type { OutputHandover } from "../core/output-handover.js";
import type { SettleSignal } from "../core/settle-signal.js";
import { casDigestOf } from "../queues/sync-outputs.js";
import type { SyncOutputWriter } from "./sync-output-writer.js";
import type { Attempt, FinishPayload, NextOffer, Outcome, Scheduler } from "../queues/scheduler.js";
import { formatFamilyModel, kserveModelName } from "../core/model-route.js";
import type { Registry } from "./backends/registry.js";
import type { InferResult } from "./backends/kserve-client.js";
import { buildInferRequest } from "./infer-request.js";
import {
  AttemptAbort,
  BreakerOpenError,
  backoffMs,
  classify,
  isConnectRefused,
  type AbortReason,
} from "./failure-policy.js";

export interface HeldAttempt {
  readonly token: string;
  readonly backend: string;
  abort(reason: AbortReason): void;
}

/** Guards a backend call (the breaker); the default runs it as is. */
export type BackendGuard = <T>(backendId: string, call: () => Promise<T>) => Promise<T>;

/** Preview frames larger than this are not stored (they are meant to be thumbnails). */
const MAX_PREVIEW_CHARS = 64 * 1024;

/**
 * A sync output up to this size is kept in Redis with the settle and written to the CAS after the
 * answer; a larger one is put in the CAS first (Redis memory and AOF bandwidth per call).
 */
export const SYNC_OUTPUT_HELD_MAX_BYTES = 8 * 1024 * 1024;

export interface ProcessorDeps {
  readonly scheduler: Scheduler;
  readonly registry: Registry;
  readonly blobs: BlobStore;
  /** Where a sync attempt's single output is left for the API of this process (when it runs one). */
  readonly handover?: Pick<OutputHandover, "hold">;
  /** Told of each terminal settle (the API of this process wakes its waiter at once). */
  readonly settles?: Pick<SettleSignal, "settled">;
  /**
   * Where a sync attempt's single output goes after the settle (which keeps it in Redis until then);
   * without it, every output is put in the CAS before the settle.
   */
  readonly syncOutputs?: Pick<SyncOutputWriter, "writeOut">;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Attempts running in this process, by job id (renewal, cancel relay and shutdown use it). */
  readonly held: Map<string, HeldAttempt>;
  /** Whether this attempt must not call the backend (its job was cancelled, or the attempt is known lost). */
  readonly doomed: (a: Attempt) => boolean;
  readonly guard?: BackendGuard;
  /** Told when a backend refused the connection (the health poller pauses it). */
  readonly onUnreachable?: (backendId: string) => void;
  /** What this worker offers for its next attempts when it settles one (undefined: nothing). */
  readonly nextOffer: () => NextOffer | undefined;
  /** Called once the settle that carried an offer returned (the offered slots are no longer reserved). */
  readonly offerDone?: (offer: NextOffer) => void;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly busyCooldownMs: number;
  /** Minimum interval between stored progress events of one job. */
  readonly progressIntervalMs: number;
  /** The process's metrics: attempts' waits, run times and ends. */
  readonly metrics: Pick<WorkerRecorder, "attemptStarted" | "attemptEnded" | "settled">;
}

export interface AttemptResult {
  /** The settled outcome, or why the settle was rejected (the job moved on). */
  readonly outcome: Outcome | "cancelled" | "stale";
  /** Whether the settle offered this worker's free slots (it then started the next attempts). */
  readonly offered: boolean;
  /** The attempts the settle started for this worker (at most the offered slots). */
  readonly next: readonly Attempt[];
}

export function createRenderProcessor(deps: ProcessorDeps) {
  const guard: BackendGuard = deps.guard ?? ((_id, call) => call());

  return async function processAttempt(a: Attempt): Promise<AttemptResult> {
    const log = deps.logger.child({ job: a.id, backend: a.backend, attempt: a.attempt });
    const backend = deps.registry.get(a.backend);
    const controller = new AbortController();
    let abortReason: AbortReason | undefined;
    const abort = (reason: AbortReason) => {
      if (abortReason) return;
      abortReason = reason;
      controller.abort(new AttemptAbort(reason));
    };
    // An older attempt of the same job still held here (this process stalled past its lease and the
    // job was started again) is over: stop it, so only the current token calls the backend.
    const older = deps.held.get(a.id);
    if (older && older.token !== a.token) older.abort("lost");
    const mine: HeldAttempt = { token: a.token, backend: a.backend, abort };
    deps.held.set(a.id, mine);
    // A cancel (or the loss of this attempt) heard before it got here: never call the backend.
    if (deps.doomed(a)) abort("cancelled");
    const familyModel = formatFamilyModel(a.family, a.model);
    const timer = setTimeout(() => abort("timeout"), deps.registry.timeoutFor(a.backend, familyModel));
    const startedAt = deps.clock();
    deps.metrics.attemptStarted(familyModel, a.waited);

    let outcome: Outcome;
    let payload: FinishPayload;
    // A sync output settled with its bytes, written to the CAS after the settle.
    let deferred: { digest: string; bytes: Uint8Array } | undefined;
    try {
      if (abortReason) throw new AttemptAbort(abortReason);
      if (!backend) throw new BreakerOpenError(a.backend);
      const req = await buildInferRequest(
        {
          id: a.id,
          modality: a.modality,
          task: a.task,
          seed: a.seed,
          request: JSON.parse(a.request) as Record<string, unknown>,
        },
        deps.blobs,
      );
      const model = kserveModelName(a.family, a.model);
      // Streaming backends also send preview frames (tiny data URIs) as the image forms, except to a
      // sync job: nobody can watch it. Its progress is recorded from one interval into the attempt on,
      // and its last step is not forced out (its caller waits for the answer, which comes next): a
      // short sync job records no progress at all, and its caller saves the writes (docs/decisions.md
      // "Sync route").
      const sync = a.sync === true;
      const request =
        backend.config.streaming && !sync
          ? { ...req, parameters: { ...req.parameters, previews: true } }
          : req;
      let lastProgress = sync ? startedAt : 0;
      let recording = false;
      const result: InferResult = await guard(a.backend, () =>
        backend.config.streaming
          ? backend.client.generateStream(model, request, {
              signal: controller.signal,
              onProgress: (p) => {
                const now = deps.clock();
                // One write in flight per attempt: while Redis is slow or away, updates are skipped,
                // not queued up.
                if (recording) return;
                if (now - lastProgress < deps.progressIntervalMs && (sync || p.step < p.steps) && !p.preview)
                  return;
                lastProgress = now;
                recording = true;
                const preview = p.preview && p.preview.length <= MAX_PREVIEW_CHARS ? p.preview : undefined;
                deps.scheduler
                  .progress(a.id, a.token, p.progress, p.step, p.steps, preview)
                  .then((current) => {
                    if (!current) abort("lost");
                  })
                  .catch((err: unknown) => log.warn({ err }, "progress not recorded"))
                  .finally(() => {
                    recording = false;
                  });
              },
            })
          : backend.client.infer(model, request, { signal: controller.signal }),
      );
      const digests: string[] = [];
      const single = a.sync === true && result.outputs.length === 1 ? result.outputs[0] : undefined;
      if (single && deps.syncOutputs && single.byteLength <= SYNC_OUTPUT_HELD_MAX_BYTES) {
        // Its caller waits: the settle keeps the bytes in Redis (durable with it), the object's
        // write and fsync come after the answer (docs/decisions.md "Sync route").
        deferred = { digest: casDigestOf(single), bytes: single };
        digests.push(deferred.digest);
      } else {
        for (const bytes of result.outputs) digests.push(await deps.blobs.put(bytes));
      }
      // The sync route answers with the bytes of a single output: its caller's API may be this process.
      if (single) deps.handover?.hold(digests[0]!, single);
      outcome = "complete";
      payload = {
        output: digests[0]!,
        outputs: digests,
        ctype: result.contentType,
        seed: result.seed ?? a.seed,
        gpu_ms: Math.round(result.gpuMs ?? deps.clock() - startedAt),
      };
    } catch (caught) {
      // An abort surfaces as undici's error; the reason we recorded is the truth.
      const err = abortReason ? new AttemptAbort(abortReason) : caught;
      const verdict = classify(err);
      outcome = verdict.outcome;
      payload = {
        error: verdict.error,
        detail: verdict.detail,
        gpu_ms: deps.clock() - startedAt,
        ...(verdict.outcome === "retry"
          ? { notbefore: deps.clock() + backoffMs(a.spent, deps.backoff.baseMs, deps.backoff.maxMs) }
          : {}),
        ...(verdict.outcome === "busy" && verdict.coolDown ? { cool_ms: deps.busyCooldownMs } : {}),
      };
      if (isConnectRefused(err)) deps.onUnreachable?.(a.backend);
      if (abortReason !== "cancelled" && abortReason !== "lost") {
        // The backend's answer may echo the request (a prompt): only at debug (infra/logger.ts).
        log.info({ outcome, code: verdict.error.code }, "attempt failed");
        log.debug({ detail: verdict.detail }, "attempt failure detail");
      }
    } finally {
      clearTimeout(timer);
    }
    const aborted = abortReason === "cancelled" || abortReason === "lost";
    deps.metrics.attemptEnded(familyModel, aborted ? "aborted" : outcome, deps.clock() - startedAt);

    const offer = deps.nextOffer();
    let kept = deferred !== undefined;
    try {
      const settled = await deps.scheduler.finish(
        a.id,
        a.token,
        a.backend,
        outcome,
        payload,
        offer,
        deferred?.bytes,
        // its caller may wait in this process: the settle's record saves it a read
        a.sync === true && deps.settles !== undefined,
      );
      // Refused: the job moved on and Redis kept nothing (a settle that threw may have kept the bytes).
      if (!settled.ok) kept = false;
      const offered = offer !== undefined;
      if (settled.ok && payload.error !== undefined && outcome !== "complete") {
        deps.metrics.settled(outcome, payload.error.code, settled.status === "queued");
      }
      if (settled.ok && settled.status !== "queued") deps.settles?.settled(a.id, settled.job);
      if (settled.ok) return { outcome, offered, next: settled.next };
      // A late answer (the job moved on: cancelled, or reaped and run elsewhere) changes nothing.
      log.info({ reason: settled.reason }, "attempt result discarded: the job is no longer this attempt's");
      return {
        outcome: settled.reason === "cancelled" ? "cancelled" : "stale",
        offered,
        next: settled.next,
      };
    } finally {
      if (offer) deps.offerDone?.(offer);
      if (deps.held.get(a.id) === mine) deps.held.delete(a.id);
      if (kept && deferred) deps.syncOutputs?.writeOut(deferred.digest, deferred.bytes);
    }
  };
}
