// The scheduler: admission, dispatch with backend leases, attempt transitions, cancellation,
// lease renewal/reaping and ttl expiry. Every transition is one Lua script (src/queues/lua).
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { PRIORITY_CLASS, type JobError, type Priority } from "../core/job.js";
import type { Clock } from "../core/time.js";
import { createKeys, type Keys } from "./keys.js";
import { defineScripts, type ScriptRunner } from "./scripts.js";

export interface SchedulerOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly clock: Clock;
  /** How long a lease lives without renewal (LOCK_MS). */
  readonly leaseTtlMs: number;
  /** Spent attempts after which a job ends in error (JOB_ATTEMPTS). */
  readonly maxAttempts: number;
  readonly retentionS: number;
  readonly retentionCount: number;
}

export interface AdmitInput {
  readonly id: string;
  readonly route: string;
  readonly priority: Priority;
  /** Time-to-start deadline (ms). */
  readonly ttlAt?: number;
  /** Stored fields of the job record (strings). */
  readonly fields: Readonly<Record<string, string>>;
  /** Refuse (and store nothing) when the job would start behind more than this many jobs. */
  readonly maxPosition?: number;
  readonly serviceMs: number;
  readonly capacity: number;
  /** Admission time (ms), stored as `created_at`; defaults to the clock. */
  readonly now?: number;
}

export type AdmitResult =
  | { readonly admitted: true; readonly position: number; readonly etaSeconds?: number }
  | { readonly admitted: false; readonly reason: "exists" | "too_far"; readonly position?: number };

/** A backend as the dispatcher sees it. */
export interface BackendView {
  readonly id: string;
  readonly cap: number;
  readonly engine: string;
  readonly models: readonly string[];
  /** Healthy and not shut off by this process's breaker. */
  readonly ok: boolean;
}

export interface Dispatched {
  readonly id: string;
  readonly token: string;
  readonly backend: string;
  readonly route: string;
}

export type BeginResult =
  | {
      readonly ok: true;
      readonly attempt: number;
      /** Attempts spent so far (failures; busy hand-backs are free). */
      readonly spent: number;
      readonly backend: string;
      readonly modality: string;
      readonly family: string;
      readonly model: string;
      readonly task: string;
      readonly format: string;
      readonly seed: number;
      readonly request: Record<string, unknown>;
    }
  | { readonly ok: false; readonly reason: "missing" | "stale" | "ttl_expired" | "cancelled" };

export type Outcome = "complete" | "failed" | "retry" | "busy";

export interface FinishPayload {
  readonly output?: string;
  readonly outputs?: readonly string[];
  readonly ctype?: string;
  readonly seed?: number;
  readonly gpu_ms?: number;
  readonly error?: JobError;
  readonly notbefore?: number;
  readonly cool_ms?: number;
}

export type FinishResult =
  | { readonly ok: true; readonly status: "complete" | "error" | "queued" }
  | { readonly ok: false; readonly reason: "missing" | "stale" | "cancelled" };

export type CancelResult = "was_queued" | "was_running" | "missing" | "terminal";

export interface Scheduler {
  readonly keys: Keys;
  admit(input: AdmitInput): Promise<AdmitResult>;
  /** `prefer`: the engine to choose first per `family/model` (the catalogue's default backend). */
  dispatch(
    freeSlots: number,
    backends: readonly BackendView[],
    prefer?: Readonly<Record<string, string>>,
  ): Promise<Dispatched[]>;
  begin(id: string, token: string): Promise<BeginResult>;
  finish(
    id: string,
    token: string,
    backend: string,
    outcome: Outcome,
    payload: FinishPayload,
  ): Promise<FinishResult>;
  /** `customer` undefined = admin (any job). */
  cancel(id: string, customer: string | undefined): Promise<CancelResult>;
  renew(held: readonly { id: string; token: string; backend: string }[]): Promise<string[]>;
  reap(): Promise<number>;
  expire(): Promise<number>;
  progress(
    id: string,
    token: string,
    progress: number,
    step: number,
    steps: number,
    preview?: string,
  ): Promise<boolean>;
}

export function createScheduler(opts: SchedulerOptions): Scheduler {
  const keys = createKeys(opts.prefix);
  const run: ScriptRunner = defineScripts(opts.redis, opts.prefix);
  const route = keys.queue;
  const retention = [opts.retentionS, opts.retentionCount] as const;

  return {
    keys,

    async admit(input) {
      const reply = (await run("admit", route, [
        input.id,
        input.route,
        PRIORITY_CLASS[input.priority],
        input.now ?? opts.clock(),
        input.ttlAt ?? 0,
        JSON.stringify(input.fields),
        input.maxPosition ?? -1,
        input.serviceMs,
        input.capacity,
      ])) as number[];
      const [first = -1, second] = reply;
      if (first === -1) return { admitted: false, reason: "exists" };
      if (first === -2) {
        return { admitted: false, reason: "too_far", ...(second === undefined ? {} : { position: second }) };
      }
      const eta = second !== undefined && second >= 0 ? { etaSeconds: second } : {};
      return { admitted: true, position: first, ...eta };
    },

    async dispatch(freeSlots, backends, prefer = {}) {
      if (freeSlots <= 0) return [];
      const flat = (await run("dispatch", route, [
        opts.clock(),
        freeSlots,
        JSON.stringify(backends),
        opts.leaseTtlMs,
        `${randomBytes(6).toString("hex")}.`,
        ...retention,
        JSON.stringify(prefer),
      ])) as string[];
      const out: Dispatched[] = [];
      for (let i = 0; i + 3 < flat.length; i += 4) {
        out.push({ id: flat[i]!, token: flat[i + 1]!, backend: flat[i + 2]!, route: flat[i + 3]! });
      }
      return out;
    },

    async begin(id, token) {
      const r = (await run("begin", route, [id, token, opts.clock(), opts.leaseTtlMs, ...retention])) as (
        string | number
      )[];
      const code = Number(r[0]);
      if (code === 1) {
        return {
          ok: true,
          attempt: Number(r[1]),
          spent: Number(r[10] ?? 0),
          backend: String(r[2]),
          modality: String(r[3]),
          family: String(r[4]),
          model: String(r[5]),
          task: String(r[6]),
          format: String(r[7]),
          seed: Number(r[8]),
          request: JSON.parse(String(r[9])) as Record<string, unknown>,
        };
      }
      const reason = ({ [-1]: "missing", [-2]: "stale", [-3]: "ttl_expired", [-4]: "cancelled" } as const)[
        code
      ];
      return { ok: false, reason: reason ?? "stale" };
    },

    async finish(id, token, backend, outcome, payload) {
      const r = (await run("finish", route, [
        id,
        token,
        backend,
        opts.clock(),
        outcome,
        JSON.stringify(payload),
        opts.maxAttempts,
        ...retention,
      ])) as (string | number)[];
      const code = Number(r[0]);
      if (code === 1) return { ok: true, status: String(r[1]) as "complete" | "error" | "queued" };
      return { ok: false, reason: code === -1 ? "missing" : code === -4 ? "cancelled" : "stale" };
    },

    async cancel(id, customer) {
      const code = Number(await run("cancel", route, [id, customer ?? "", opts.clock(), ...retention]));
      if (code === 1) return "was_queued";
      if (code === 2) return "was_running";
      return code === -2 ? "terminal" : "missing";
    },

    async renew(held) {
      if (held.length === 0) return [];
      const args: string[] = [];
      for (const h of held) args.push(h.id, h.token, h.backend);
      return (await run("renew", route, [opts.clock(), opts.leaseTtlMs, ...args])) as string[];
    },

    async reap() {
      return Number(await run("reap", route, [opts.clock(), opts.maxAttempts, ...retention]));
    },

    async expire() {
      return Number(await run("expire", route, [opts.clock(), ...retention]));
    },

    async progress(id, token, progress, step, steps, preview) {
      const r = await run("progress", route, [id, token, progress, step, steps, preview ?? ""]);
      return Number(r) === 1;
    },
  };
}
