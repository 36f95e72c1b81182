// HTTP routes of the simulated backend: KServe v2 health/metadata/infer, Triton's generate_stream, /sim/*.
import { randomUUID } from "node:crypto";
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "pino";
import { parseConfigPatch, toWireConfig, type SimConfig } from "./config.js";
import {
  runGeneration,
  type GenerationDeps,
  type GenerationOutcome,
  type InferAnswer,
} from "./generation.js";
import type { MediaCache } from "./media-cache.js";
import { parseInferRequest, requestIdOf, type SimJob } from "./request.js";
import type { StatsRecorder } from "./stats.js";
import { simControlGuard } from "./control-guard.js";

/** Largest request body accepted (inline input images travel base64 in the `request` input). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** In-flight work that `close()` must end (abort) and wait for. */
export interface WorkTracker {
  /** True once the server is closing: new generations are refused. */
  closing(): boolean;
  /** A controller that close() aborts; give it back with `release`. */
  open(): AbortController;
  release(controller: AbortController): void;
  /** Work close() waits for before it resolves. */
  hold(work: Promise<unknown>): void;
}

/** Everything the routes use; owned by the server. */
export interface SimAppDeps {
  readonly config: () => SimConfig;
  /** @throws RangeError on an invalid config. */
  readonly setConfig: (patch: Partial<SimConfig>) => void;
  readonly stats: StatsRecorder;
  readonly cache: MediaCache;
  readonly random: () => number;
  readonly tracker: WorkTracker;
  readonly logger: Logger | undefined;
  /** Bearer token of the mutating /sim routes (SIM_CONFIG_TOKEN); without it, loopback clients only. */
  readonly controlToken?: string;
}

const MODEL_INPUTS = [
  { name: "prompt", datatype: "BYTES", shape: [1] },
  { name: "negative_prompt", datatype: "BYTES", shape: [1], optional: true },
  { name: "request", datatype: "BYTES", shape: [1], optional: true },
];
const MODEL_OUTPUTS = [{ name: "output", datatype: "BYTES", shape: [-1] }];

type Admission = { ok: true; job: SimJob } | { ok: false; response: Response };

/** The Hono app of the simulator; it holds no resources of its own. */
export function createSimApp(deps: SimAppDeps): Hono {
  const { stats, tracker, logger } = deps;
  const app = new Hono();

  const unavailable = (c: Context, error: string): Response => {
    c.header("Retry-After", "1");
    return c.json({ error }, 503);
  };

  app.get("/v2/health/live", (c) => c.json({ live: true }));
  app.get("/v2/health/ready", (c) =>
    deps.config().down || tracker.closing() ? c.json({ ready: false }, 503) : c.json({ ready: true }),
  );
  app.get("/v2", (c) => c.json({ name: "render-sim", version: "1", extensions: ["generate"] }));
  // KServe also addresses a model version; the simulator has one version ("1") and serves any.
  const paths = (tail: string): string[] => [
    `/v2/models/:model${tail}`,
    `/v2/models/:model/versions/:version${tail}`,
  ];

  app.on("GET", paths("/ready"), (c) =>
    deps.config().down || tracker.closing()
      ? c.json({ name: c.req.param("model"), ready: false }, 503)
      : c.json({ name: c.req.param("model"), ready: true }),
  );
  app.on("GET", paths(""), (c) =>
    c.json({
      name: c.req.param("model"),
      platform: "render-sim",
      versions: ["1"],
      inputs: MODEL_INPUTS,
      outputs: MODEL_OUTPUTS,
    }),
  );

  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => {
      stats.call(c.req.header("x-request-id"));
      stats.count("rejected_bad_request");
      return c.json({ error: `body larger than ${MAX_BODY_BYTES} bytes` }, 413);
    },
  });

  /** Counts the call and decides: a validated job that holds a capacity slot, or the answer. */
  async function admit(c: Context): Promise<Admission> {
    const model = c.req.param("model") ?? "";
    const header = c.req.header("x-request-id");
    let body: unknown;
    let jsonError = false;
    try {
      body = JSON.parse(await c.req.text());
    } catch {
      // Not JSON, or the client went away while sending it.
      jsonError = true;
    }
    const knownId = requestIdOf(body, header);
    stats.call(knownId);
    if (knownId !== undefined) c.header("X-Request-Id", knownId);
    const refuse = (status: 400 | 503, error: string): Admission => {
      stats.count(status === 400 ? "rejected_bad_request" : "rejected_busy");
      logger?.info({ id: knownId, model, status, error }, "sim call refused");
      return { ok: false, response: status === 503 ? unavailable(c, error) : c.json({ error }, 400) };
    };
    const config = deps.config();
    if (tracker.closing()) return refuse(503, "server is shutting down");
    if (config.down) return refuse(503, "backend is down");
    if (jsonError) return refuse(400, "body is not valid JSON");
    const parsed = parseInferRequest(body, model, header ?? `sim_${randomUUID()}`);
    if (!parsed.ok) return refuse(400, parsed.error);
    const { job } = parsed;
    logger?.debug({ id: job.id, prompt: job.prompt, negative_prompt: job.negativePrompt }, "sim prompt");
    if (job.triggers.badRequest) return refuse(400, "bad request forced by [sim:400]");
    if (job.triggers.busy) return refuse(503, "busy forced by [sim:503]");
    if (stats.active() >= config.capacity) return refuse(503, `at capacity (${config.capacity} in flight)`);
    return { ok: true, job };
  }

  /** Starts an admitted job; the slot is taken now and given back when the returned promise settles. */
  function start(
    c: Context,
    job: SimJob,
    events: Pick<GenerationDeps, "onStep" | "onPreview">,
  ): { controller: AbortController; done: Promise<GenerationOutcome> } {
    const controller = tracker.open();
    const reqSignal = c.req.raw.signal;
    const onClientGone = (): void => controller.abort(new Error("client went away"));
    reqSignal.addEventListener("abort", onClientGone, { once: true });
    if (reqSignal.aborted) onClientGone();
    stats.enter();
    const t0 = performance.now();
    const done = runGeneration(job, {
      config: deps.config(),
      random: deps.random,
      cache: deps.cache,
      signal: controller.signal,
      onHang: () => {
        stats.count("hung");
        logger?.info({ id: job.id, model: job.model }, "sim call hangs");
      },
      background: (work) => tracker.hold(work),
      ...events,
    })
      .then((outcome) => {
        stats.count(outcome.kind === "ok" ? "completed" : outcome.kind === "failed" ? "failed" : "aborted");
        const ms = Math.round(performance.now() - t0);
        const fields = {
          id: job.id,
          model: job.model,
          modality: job.modality,
          task: job.task,
          steps: job.steps,
          width: job.width,
          height: job.height,
          count: job.count,
          ms,
        };
        if (outcome.kind === "ok")
          logger?.info({ ...fields, gpu_ms: outcome.answer.parameters.gpu_ms }, "sim done");
        else if (outcome.kind === "failed" && !outcome.injected)
          logger?.error({ ...fields, err: outcome.error }, "sim failed");
        else logger?.info({ ...fields, outcome: outcome.kind }, `sim ${outcome.kind}`);
        return outcome;
      })
      .finally(() => {
        stats.leave();
        reqSignal.removeEventListener("abort", onClientGone);
        tracker.release(controller);
      });
    tracker.hold(done);
    return { controller, done };
  }

  app.on("POST", paths("/infer"), limit, async (c) => {
    const admission = await admit(c);
    if (!admission.ok) return admission.response;
    const { job } = admission;
    c.header("X-Request-Id", job.id);
    const outcome = await start(c, job, {}).done;
    if (outcome.kind === "ok") return c.json(outcome.answer);
    if (outcome.kind === "failed") return c.json({ error: outcome.error }, 500);
    // Only reached when the server closes under the call (a client that left reads nothing).
    return unavailable(c, "backend shutting down");
  });

  app.on("POST", paths("/generate_stream"), limit, async (c) => {
    const admission = await admit(c);
    if (!admission.ok) return admission.response;
    const { job } = admission;
    const encoder = new TextEncoder();
    let sink: ReadableStreamDefaultController<Uint8Array> | undefined;
    let open = true;
    const send = (event: unknown): void => {
      if (!open || !sink) return;
      try {
        sink.enqueue(encoder.encode(`data: ${JSON.stringify(event)}\n\n`));
      } catch {
        open = false;
      }
    };
    const end = (): void => {
      if (!open || !sink) return;
      open = false;
      try {
        sink.close();
      } catch {
        // already closed or cancelled by the client
      }
    };
    const progress = (step: number, steps: number): { step: number; steps: number; progress: number } => ({
      step,
      steps,
      progress: step / steps,
    });
    const { controller, done } = start(c, job, {
      onStep: (step, steps) => send({ id: job.id, model_name: job.model, parameters: progress(step, steps) }),
      onPreview: (step, steps, uri) =>
        send({
          id: job.id,
          model_name: job.model,
          parameters: progress(step, steps),
          outputs: [{ name: "preview", datatype: "BYTES", shape: [1], data: [uri] }],
        }),
    });
    // Events only fire after a timer or a microtask, by which time the stream below exists.
    const body = new ReadableStream<Uint8Array>({
      start(streamController) {
        sink = streamController;
      },
      cancel() {
        open = false;
        controller.abort(new Error("client went away"));
      },
    });
    void done.then((outcome) => {
      if (outcome.kind === "ok") {
        const final: InferAnswer = {
          ...outcome.answer,
          parameters: { ...outcome.answer.parameters, final: true },
        };
        send(final);
      } else if (outcome.kind === "failed") {
        send({ error: outcome.error, status: 500 });
      } else if (tracker.closing()) {
        send({ error: "backend shutting down", status: 503 });
      }
      end();
    });
    return new Response(body, {
      status: 200,
      headers: {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-Request-Id": job.id,
      },
    });
  });

  app.get("/sim/config", (c) => c.json(toWireConfig(deps.config())));
  const control = simControlGuard(deps.controlToken === undefined ? {} : { token: deps.controlToken });
  app.put("/sim/config", control, async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "body is not valid JSON" }, 400);
    }
    const parsed = parseConfigPatch(body);
    if (!parsed.ok) return c.json({ error: parsed.error }, 400);
    try {
      deps.setConfig(parsed.patch);
    } catch (e) {
      return c.json({ error: e instanceof Error ? e.message : "invalid config" }, 400);
    }
    logger?.info({ config: toWireConfig(deps.config()) }, "sim config changed");
    return c.body(null, 204);
  });
  app.get("/sim/stats", (c) => c.json(stats.snapshot()));
  app.post("/sim/stats/reset", control, (c) => {
    stats.reset();
    return c.body(null, 204);
  });

  app.notFound((c) => c.json({ error: "not found" }, 404));
  app.onError((err, c) => {
    // The control guard's refusals (401/400) are answers, not failures.
    if (err instanceof HTTPException) return err.getResponse();
    logger?.error({ err }, "sim internal error");
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
