// Runs one started attempt: call the backend while holding the attempt's lease, store the outputs in
// the CAS, settle (fenced by the attempt's token) and, in the same step, start this worker's next
// attempts. Never throws for backend trouble: the failure policy decides the job's fate.
import type { Logger } from "pino";
import type { Clock } from "../core/time.js";
import type { BlobStore } from "../core/ports.js";
import type { Attempt, FinishPayload, NextOffer, Outcome, Scheduler } from "../queues/scheduler.js";
import { kserveModelName, type Registry } from "./backends/registry.js";
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

export interface ProcessorDeps {
  readonly scheduler: Scheduler;
  readonly registry: Registry;
  readonly blobs: BlobStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Attempts running in this process (renewal, cancel relay and shutdown use it). */
  readonly held: Map<string, HeldAttempt>;
  /** Jobs this process heard were cancelled, before or while it runs them. */
  readonly cancelled: { has(id: string): boolean };
  readonly guard?: BackendGuard;
  /** Told when a backend refused the connection (the health poller pauses it). */
  readonly onUnreachable?: (backendId: string) => void;
  /** What this worker offers for its next attempts when it settles one (undefined: nothing). */
  readonly nextOffer: () => NextOffer | undefined;
  /** Receives the attempts started for this worker when it settled one. */
  readonly onNext: (attempts: readonly Attempt[]) => void;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly busyCooldownMs: number;
  /** Minimum interval between stored progress events of one job. */
  readonly progressIntervalMs: number;
}

export interface AttemptResult {
  readonly outcome: Outcome | "cancelled" | "stale";
  readonly detail?: string;
}

export function createRenderProcessor(deps: ProcessorDeps) {
  const guard: BackendGuard = deps.guard ?? ((_id, call) => call());

  return async function processAttempt(a: Attempt, signal?: AbortSignal): Promise<AttemptResult> {
    const log = deps.logger.child({ job: a.id, backend: a.backend, attempt: a.attempt });
    const backend = deps.registry.get(a.backend);
    const controller = new AbortController();
    let abortReason: AbortReason | undefined;
    const abort = (reason: AbortReason) => {
      if (abortReason) return;
      abortReason = reason;
      controller.abort(new AttemptAbort(reason));
    };
    deps.held.set(a.id, { token: a.token, backend: a.backend, abort });
    // A cancel heard before this attempt got here: never call the backend.
    if (deps.cancelled.has(a.id)) abort("cancelled");
    const onOuterAbort = () => abort("shutdown");
    signal?.addEventListener("abort", onOuterAbort, { once: true });
    const timer = setTimeout(
      () => abort("timeout"),
      deps.registry.timeoutFor(a.backend, `${a.family}/${a.model}`),
    );
    const startedAt = deps.clock();

    let outcome: Outcome;
    let payload: FinishPayload;
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
      // Streaming backends also send preview frames (tiny data URIs) as the image forms.
      const request = backend.config.streaming
        ? { ...req, parameters: { ...req.parameters, previews: true } }
        : req;
      let lastProgress = 0;
      const result: InferResult = await guard(a.backend, () =>
        backend.config.streaming
          ? backend.client.generateStream(model, request, {
              signal: controller.signal,
              onProgress: (p) => {
                const now = deps.clock();
                if (now - lastProgress < deps.progressIntervalMs && p.step < p.steps && !p.preview) return;
                lastProgress = now;
                deps.scheduler
                  .progress(a.id, a.token, p.progress, p.step, p.steps, p.preview)
                  .then((current) => {
                    if (!current) abort("lost");
                  })
                  .catch((err: unknown) => log.warn({ err }, "progress not recorded"));
              },
            })
          : backend.client.infer(model, request, { signal: controller.signal }),
      );
      const digests: string[] = [];
      for (const bytes of result.outputs) digests.push(await deps.blobs.put(bytes));
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
        gpu_ms: deps.clock() - startedAt,
        ...(verdict.outcome === "retry"
          ? { notbefore: deps.clock() + backoffMs(a.spent, deps.backoff.baseMs, deps.backoff.maxMs) }
          : {}),
        ...(verdict.outcome === "busy" && !(err instanceof AttemptAbort)
          ? { cool_ms: deps.busyCooldownMs }
          : {}),
      };
      if (isConnectRefused(err)) deps.onUnreachable?.(a.backend);
      if (abortReason !== "cancelled" && abortReason !== "lost") {
        log.info({ outcome, code: verdict.error.code }, "attempt failed");
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onOuterAbort);
    }

    try {
      const settled = await deps.scheduler.finish(
        a.id,
        a.token,
        a.backend,
        outcome,
        payload,
        deps.nextOffer(),
      );
      if (settled.next.length > 0) deps.onNext(settled.next);
      if (settled.ok) return { outcome };
      // A late answer (the job moved on: cancelled, or reaped and run elsewhere) changes nothing.
      log.info({ reason: settled.reason }, "attempt result discarded: the job is no longer this attempt's");
      return { outcome: settled.reason === "cancelled" ? "cancelled" : "stale", detail: settled.reason };
    } finally {
      deps.held.delete(a.id);
    }
  };
}
