// The job model: statuses, priorities, the stored record's fields and the public `Job` document.
import { rfc3339 } from "./time.js";

export const PRIORITIES = ["high", "normal", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];
export const PRIORITY_CLASS: Readonly<Record<Priority, number>> = { high: 0, normal: 1, low: 2 };

/** Job statuses (API.md §3), stored as they are shown. */
export type JobStatus = "queued" | "running" | "complete" | "error" | "cancelled";

export const TERMINAL: ReadonlySet<JobStatus> = new Set(["complete", "error", "cancelled"]);

export interface JobError {
  readonly code: string;
  readonly message: string;
  readonly retriable: boolean;
}

export interface AttemptEntry {
  readonly attempt: number;
  readonly backend: string;
  readonly started_at: number;
  readonly ended_at?: number;
  readonly outcome?: string;
  readonly gpu_ms?: number;
  /** The error code of a failed attempt. */
  readonly error?: string;
  /** What really happened (the backend's answer, an exception's text): shown to admins only. */
  readonly detail?: string;
  /** Busy hand-backs (429/503, breaker open, no slot) folded into this attempt. */
  readonly busy?: number;
}

/** The stored job hash, decoded. */
export interface JobRecord {
  readonly id: string;
  readonly customerId: string;
  readonly status: JobStatus;
  readonly priority: Priority;
  readonly modality: string;
  readonly family: string;
  readonly model: string;
  readonly task: string;
  readonly format: string;
  readonly route: string;
  readonly mode: "sync" | "async";
  readonly request: Readonly<Record<string, unknown>>;
  readonly seed?: number;
  readonly createdAt: number;
  readonly startedAt?: number;
  readonly completedAt?: number;
  readonly progress: number;
  readonly attempts: number;
  readonly attemptLog: readonly AttemptEntry[];
  readonly backend?: string;
  readonly output?: string;
  readonly outputs?: readonly string[];
  readonly contentType?: string;
  readonly gpuMs?: number;
  readonly error?: JobError;
  readonly ttlAt?: number;
  /** Work units of the request (core/cost.ts), stored at admission; absent on jobs stored without. */
  readonly work?: number;
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function json<T>(v: string | undefined): T | undefined {
  if (v === undefined || v === "") return undefined;
  return JSON.parse(v) as T;
}

/** Decodes a stored job as HGETALL answers it: field, value, field, value… */
export function decodeJobFlat(flat: readonly string[]): JobRecord {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return decodeJob(h);
}

/** Decodes the flat hash of a stored job. */
export function decodeJob(h: Readonly<Record<string, string>>): JobRecord {
  const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } =>
    (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
  return {
    id: h.id ?? "",
    customerId: h.cust ?? "",
    status: (h.status ?? "queued") as JobStatus,
    priority: (h.prio ?? "normal") as Priority,
    modality: h.mod ?? "",
    family: h.fam ?? "",
    model: h.mdl ?? "",
    task: h.task ?? "",
    format: h.fmt ?? "",
    route: h.route ?? "",
    mode: h.mode === "sync" ? "sync" : "async",
    request: json<Record<string, unknown>>(h.req) ?? {},
    createdAt: num(h.created) ?? 0,
    progress: num(h.progress) ?? 0,
    attempts: num(h.attempt) ?? 0,
    attemptLog: json<AttemptEntry[]>(h.alog) ?? [],
    ...opt("seed", num(h.seed)),
    ...opt("startedAt", num(h.started)),
    ...opt("completedAt", num(h.completed)),
    ...opt("backend", h.backend),
    ...opt("output", h.output),
    ...opt("outputs", json<string[]>(h.outputs)),
    ...opt("contentType", h.ctype),
    ...opt("gpuMs", num(h.gpu_ms)),
    ...opt("error", json<JobError>(h.err)),
    ...opt("ttlAt", num(h.ttl_at ?? h.ttl_def)),
    ...opt("work", num(h.work)),
  };
}

export interface PublicJobContext {
  /** Absolute, signed URL of an output digest. */
  readonly urlFor: (digest: string) => string;
  /** Current position (queued jobs), from the same read as the record. */
  readonly position?: number;
  readonly etaSeconds?: number;
  /**
   * For admins: each attempt log entry also shows its error code and `detail` (what the backend
   * answered, exception texts); customers see the outcome and the job's fixed-vocabulary `error`.
   */
  readonly admin?: boolean;
}

/** The public `Job` document (API.md §3). Absent optional members are omitted, never null. */
export function toPublicJob(job: JobRecord, ctx: PublicJobContext): Record<string, unknown> {
  const status = job.status;
  const out: Record<string, unknown> = {
    id: job.id,
    status,
    modality: job.modality,
    family: job.family,
    model: job.model,
    task: job.task,
    format: job.format,
    priority: job.priority,
  };
  if (status === "queued" && ctx.position !== undefined && ctx.position >= 0) out.position = ctx.position;
  out.progress = job.progress;
  if ((status === "queued" || status === "running") && ctx.etaSeconds !== undefined)
    out.eta_seconds = ctx.etaSeconds;
  if (job.seed !== undefined) out.seed = job.seed;
  if (status === "complete" && job.output) {
    out.output = ctx.urlFor(job.output);
    out.outputs = (job.outputs ?? [job.output]).map(ctx.urlFor);
  }
  if (job.error && (status === "error" || status === "cancelled")) out.error = job.error;
  out.created_at = rfc3339(job.createdAt);
  if (job.startedAt !== undefined) out.started_at = rfc3339(job.startedAt);
  if (job.completedAt !== undefined) out.completed_at = rfc3339(job.completedAt);
  out.attempts = job.attempts;
  out.attempt_log = job.attemptLog.map((a) => ({
    attempt: a.attempt,
    backend: a.backend,
    started_at: rfc3339(a.started_at),
    ...(a.ended_at === undefined ? {} : { ended_at: rfc3339(a.ended_at) }),
    ...(a.outcome === undefined ? {} : { outcome: a.outcome }),
    ...(a.busy === undefined ? {} : { busy_handbacks: a.busy }),
    ...(ctx.admin === true && a.error !== undefined ? { error: a.error } : {}),
    ...(ctx.admin === true && a.detail !== undefined ? { detail: a.detail } : {}),
  }));
  if (job.gpuMs !== undefined && TERMINAL.has(status)) out.gpu_ms = job.gpuMs;
  if (job.backend !== undefined && status !== "queued") out.backend = job.backend;
  out.request = publicRequest(job);
  return out;
}

/**
 * The validated request as `Job.request` shows it: the model's address and format, then the stored
 * request, with input images as the client can use them again (the URL, or the stored object's digest).
 */
export function publicRequest(job: JobRecord): Record<string, unknown> {
  const request: Record<string, unknown> = {
    modality: job.modality,
    family: job.family,
    model: job.model,
    task: job.task,
    format: job.format,
    ...job.request,
  };
  for (const field of ["image", "mask"]) {
    const ref = request[field] as { kind?: string; url?: string; digest?: string } | undefined;
    if (ref?.kind === "url") request[field] = ref.url;
    else if (ref?.kind === "digest") request[field] = ref.digest;
  }
  return request;
}
