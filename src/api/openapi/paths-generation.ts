// Operations of generation (API.md §3): the sync routes, the queue, jobs, their events and the
// WebSocket. operationIds and tags are the original spec's where it has the route (API.md §7).
import type { Modality } from "../../core/formats.js";
import { ref, type JsonSchema } from "./json-schema.js";
import {
  header,
  JSON_BODY_PROBLEMS,
  jsonResponse,
  operation,
  parameter,
  parameterRef,
  READ_PROBLEMS,
  response,
} from "./operation.js";

const EXAMPLES = {
  image: { prompt: "a lighthouse at dawn, watercolor" },
  video: { prompt: "she turns slowly to face the camera", image: "https://example.com/portrait.jpg" },
  job: { modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "a lighthouse at dawn" },
};

const jsonBody = (id: string, example: unknown): JsonSchema => ({
  required: true,
  content: { "application/json": { schema: ref(id), example } },
});

const binary = { schema: { type: "string", contentMediaType: "application/octet-stream" } };

/** Headers of an admitted job's answer: where it is and where its events are. */
const JOB_LINKS = { Location: header("JobLocation"), Link: header("MonitorLink") };
const RATE = { "RateLimit-Policy": header("RateLimitPolicy"), RateLimit: header("RateLimit") };

function syncOperation(modality: Modality): JsonSchema {
  const image = modality === "image";
  const media: Record<string, JsonSchema> = image
    ? { "image/png": binary, "image/webp": binary, "application/json": { schema: ref("SyncOutputs") } }
    : { "video/mp4": binary };
  return operation({
    operationId: image ? "syncGenerateImage" : "syncGenerateVideo",
    tags: [`sync-${modality}`],
    summary: `generate ${modality} (sync)`,
    description:
      "Waits for the result (up to `SYNC_BUDGET_MS`; `Prefer: wait=N` lowers it) and answers with the " +
      (image
        ? "bytes (PNG; WebP for `Accept: image/webp`), or JSON `outputs` when `count` > 1. "
        : "MP4 bytes (H.264). ") +
      "`Content-Location` is the output's signed URL. When the budget runs out the job goes on and " +
      "the answer is 202 with the job; when no capacity can start it in time, 503 `capacity_exhausted`.",
    access: "token",
    parameters: [
      parameterRef("Family"),
      parameterRef("Model"),
      parameterRef("Task"),
      parameterRef(image ? "ImageFormat" : "VideoFormat"),
      parameterRef("Backend"),
      parameter(
        "Prefer",
        "header",
        { type: "string" },
        "`wait=N` (seconds) lowers the wait; `early-hints` asks for a 103.",
      ),
    ],
    requestBody: jsonBody(image ? "ImageGenerateRequest" : "VideoGenerateRequest", EXAMPLES[modality]),
    responses: {
      "200": response(image ? "The image." : "The video.", media, {
        "Content-Location": header("ContentLocation"),
        "X-Job-Id": header("XJobId"),
        "X-Seed": header("XSeed"),
        "X-Weyl-Seed": header("XSeed"),
        "X-Duration-Ms": header("XDurationMs"),
        "X-Weyl-Duration-Ms": header("XDurationMs"),
        "X-Gpu-Ms": header("XGpuMs"),
        ...RATE,
      }),
      "202": jsonResponse(
        "The budget ran out: the job goes on (follow `Location` or its events).",
        "SyncAccepted",
        {
          ...JOB_LINKS,
          "X-Job-Id": header("XJobId"),
        },
      ),
    },
    problems: [
      ...JSON_BODY_PROBLEMS,
      "forbidden",
      "not_found",
      "conflict",
      "rate_limited",
      "queue_full",
      "capacity_exhausted",
    ],
  });
}

const jobId = parameterRef("JobId");

export function generationPaths(): Record<string, Record<string, JsonSchema>> {
  const cancel = (operationId: string, summary: string) =>
    operation({
      operationId,
      tags: ["async-jobs"],
      summary,
      description:
        "A queued job is removed (204, never run or billed); a running job's backend call is aborted " +
        "(202 with the job); a finished job is 409.",
      access: "token",
      parameters: [jobId],
      responses: {
        "202": jsonResponse("It was running: aborted, now cancelled.", "Job"),
        "204": response("It was queued: removed."),
      },
      problems: ["not_found", "conflict", ...READ_PROBLEMS],
    });
  return {
    "/image/{family}/{model}/{task}": { post: syncOperation("image") },
    "/video/{family}/{model}/{task}": { post: syncOperation("video") },
    "/queue": {
      post: operation({
        operationId: "asyncEnqueue",
        tags: ["async-queue"],
        summary: "queue generation job",
        description:
          "Admits the job in its tenant's weighted fair-share order and answers 202 with its position " +
          "and ETA. The same `idempotency_key` (or `Idempotency-Key` header) with the same body " +
          "replays the first answer (`Idempotent-Replayed: true`); with another body, 422; while the " +
          "first is still being admitted, 409.",
        access: "token",
        parameters: [parameter("Idempotency-Key", "header", { $ref: "#/components/schemas/IdempotencyKey" })],
        requestBody: jsonBody("AsyncJobRequest", EXAMPLES.job),
        responses: {
          "202": jsonResponse("Queued.", "JobCreated", {
            ...JOB_LINKS,
            "Idempotent-Replayed": header("IdempotentReplayed"),
            ...RATE,
          }),
        },
        problems: [
          ...JSON_BODY_PROBLEMS,
          "forbidden",
          "not_found",
          "conflict",
          "idempotency_mismatch",
          "rate_limited",
          "queue_full",
        ],
      }),
      get: operation({
        operationId: "getQueue",
        tags: ["async-queue"],
        summary: "queue depth and the caller's ETAs",
        access: "token",
        responses: { "200": jsonResponse("Depth per priority, running jobs, ETAs.", "QueueStatus") },
        problems: READ_PROBLEMS,
      }),
    },
    "/jobs/{id}": {
      get: operation({
        operationId: "asyncGetJob",
        tags: ["async-jobs"],
        summary: "get job status",
        description:
          "A complete job answers 303 to its output (same JSON body) unless `redirect=false` or " +
          "`Accept: application/json` without `*/*`. Another customer's job is reported as missing.",
        access: "token",
        parameters: [
          jobId,
          parameter("redirect", "query", { type: "string", enum: ["true", "false"] }, "`false`: never 303."),
        ],
        responses: {
          "200": jsonResponse("The job.", "Job"),
          "303": jsonResponse("Complete: `Location` is the output's signed URL.", "Job", {
            Location: header("OutputLocation"),
          }),
        },
        problems: ["validation_error", "not_found", ...READ_PROBLEMS],
      }),
      delete: cancel("asyncCancelJob", "cancel job"),
    },
    "/jobs/{id}/cancel": { post: cancel("asyncCancelJobPost", "cancel job (POST alias of DELETE)") },
    "/jobs/{id}/events": {
      get: operation({
        operationId: "asyncSubscribeJob",
        tags: ["sse"],
        summary: "subscribe to job (SSE)",
        description:
          "Server-Sent Events, each with a monotonic `id:` and an `event:` — `position {position, " +
          "eta_seconds}`, `started {backend, attempt}`, `progress {progress, step, steps}`, `preview " +
          "{frame}`, `complete {output, outputs, gpu_ms}`, `error {code, message, retriable}` (also for " +
          "cancelled). Without `Last-Event-ID` the stored events are replayed first; with it the " +
          "stream resumes after that id. A comment heartbeat at least every 15 s; the stream ends " +
          "after the terminal event.",
        access: "token",
        parameters: [
          jobId,
          parameter("Last-Event-ID", "header", { type: "string" }, "Resume after this event id."),
          parameter(
            "last_event_id",
            "query",
            { type: "string" },
            "The same, for clients that cannot set headers.",
          ),
        ],
        responses: {
          "200": response("The event stream.", { "text/event-stream": { schema: { type: "string" } } }),
        },
        problems: ["not_found", ...READ_PROBLEMS],
      }),
    },
    "/ws": {
      get: operation({
        operationId: "syncWebSocket",
        tags: ["websocket"],
        summary: "WebSocket",
        description:
          'Upgrade to a WebSocket. Client: `{type: "generate", id, modality, family, model, task, ' +
          "request}`; server: `ack {id, job_id}`, `started`, `progress`, `frame`, `complete {output}`, " +
          "`error` — each with `type`, the client's `id` and, from `ack` on, `job_id`. A browser " +
          'authenticates with a first message `{type: "auth", token}` within 5 s (else close code ' +
          "4401); a bad `Authorization` header is 401 before the upgrade, and a token in the URL is " +
          "refused (400). Refusals before the upgrade are problem documents.",
        access: "websocket",
        responses: { "101": response("Switching protocols (WebSocket).") },
        problems: ["validation_error", "forbidden", "unavailable"],
      }),
    },
  };
}
