// Runs one dispatched attempt: begin (fenced by the lease token), call the backend while holding the
// lease, store outputs in the CAS, settle. Never throws for backend trouble: the failure policy
// decides the job's fate and the scheduler records it.
import type { Logger } from "pino";
import type { Clock } from "../core/time.js";
import type { BlobStore } from "../core/ports.js";
import type { FinishPayload, Outcome, Scheduler } from "../queues/scheduler.js";
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

/** What a dispatched BullMQ attempt job carries. */
export interface AttemptData {
  readonly id: string;
  readonly token: string;
  readonly backend: string;
  readonly route: string;
}

export interface HeldAttempt {
  readonly token: string;
  readonly backend: string;
  abort(reason: AbortReason): void;
}

/** Guards a backend call (the breaker of issue 3); the default runs it as is. */
export type BackendGuard = <T>(backendId: string, call: () => Promise<T>) => Promise<T>;

export interface ProcessorDeps {
  readonly scheduler: Scheduler;
  readonly registry: Registry;
  readonly blobs: BlobStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Attempts running in this process (renewal, cancel relay and shutdown use it). */
  readonly held: Map<string, HeldAttempt>;
  readonly guard?: BackendGuard;
  /** Told when a backend refused the connection (the health poller pauses it). */
  readonly onUnreachable?: (backendId: string) => void;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly busyCooldownMs: number;
  /** Minimum interval between stored progress events of one job. */
  readonly progressIntervalMs: number;
}

export interface AttemptResult {
  readonly outcome: Outcome | "skipped" | "cancelled" | "stale";
  readonly detail?: string;
}

export function createRenderProcessor(deps: ProcessorDeps) {
  const guard: BackendGuard = deps.guard ?? ((_id, call) => call());

  return async function processAttempt(data: AttemptData, signal?: AbortSignal): Promise<AttemptResult> {
    const log = deps.logger.child({ job: data.id, backend: data.backend });
    const begun = await deps.scheduler.begin(data.id, data.token);
    if (!begun.ok) {
      log.debug({ reason: begun.reason }, "attempt not begun");
      return { outcome: "skipped", detail: begun.reason };
    }
    const backend = deps.registry.get(data.backend);
    const controller = new AbortController();
    let abortReason: AbortReason | undefined;
    const abort = (reason: AbortReason) => {
      if (abortReason) return;
      abortReason = reason;
      controller.abort(new AttemptAbort(reason));
    };
    deps.held.set(data.id, { token: data.token, backend: data.backend, abort });
    const onOuterAbort = () => abort("shutdown");
    signal?.addEventListener("abort", onOuterAbort, { once: true });
    const familyModel = `${begun.family}/${begun.model}`;
    const timer = setTimeout(() => abort("timeout"), deps.registry.timeoutFor(data.backend, familyModel));
    const startedAt = deps.clock();

    let outcome: Outcome;
    let payload: FinishPayload;
    try {
      if (!backend) throw new BreakerOpenError(data.backend);
      const req = await buildInferRequest(
        { id: data.id, modality: begun.modality, task: begun.task, seed: begun.seed, request: begun.request },
        deps.blobs,
      );
      const model = kserveModelName(begun.family, begun.model);
      // Streaming backends also send preview frames (tiny data URIs) as the image forms.
      const request = backend.config.streaming
        ? { ...req, parameters: { ...req.parameters, previews: true } }
        : req;
      let lastProgress = 0;
      const result: InferResult = await guard(data.backend, () =>
        backend.config.streaming
          ? backend.client.generateStream(model, request, {
              signal: controller.signal,
              onProgress: (p) => {
                const now = deps.clock();
                if (now - lastProgress < deps.progressIntervalMs && p.step < p.steps && !p.preview) return;
                lastProgress = now;
                deps.scheduler
                  .progress(data.id, data.token, p.progress, p.step, p.steps, p.preview)
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
        seed: result.seed ?? begun.seed,
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
          ? { notbefore: deps.clock() + backoffMs(begun.spent, deps.backoff.baseMs, deps.backoff.maxMs) }
          : {}),
        ...(verdict.outcome === "busy" && !(err instanceof AttemptAbort)
          ? { cool_ms: deps.busyCooldownMs }
          : {}),
      };
      if (isConnectRefused(err)) deps.onUnreachable?.(data.backend);
      if (abortReason !== "cancelled" && abortReason !== "lost") {
        log.info({ outcome, code: verdict.error.code, attempt: begun.attempt }, "attempt failed");
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onOuterAbort);
    }

    try {
      const settled = await deps.scheduler.finish(data.id, data.token, data.backend, outcome, payload);
      if (settled.ok) return { outcome };
      return { outcome: settled.reason === "cancelled" ? "cancelled" : "stale", detail: settled.reason };
    } finally {
      deps.held.delete(data.id);
    }
  };
}
