// The scheduler: admission, dispatch with backend leases, attempt transitions, cancellation,
// lease renewal/reaping and ttl expiry. Every transition is one Lua script (src/queues/lua). Its
// interface and types are in scheduler-types.ts (re-exported here for the callers).
import { randomBytes } from "node:crypto";
import { queuedEtaSeconds } from "../core/eta.js";
import { decodeJobFlat } from "../core/job.js";
import { createAdmitBatch, type AdmitReply } from "./admit-batch.js";
import { mayHaveRun } from "./call-outcome.js";
import { finishArgs } from "./finish-args.js";
import { createKeys, priorityOffset } from "./keys.js";
import { refusalOf } from "./script-codes.js";
import { defineScripts, type ScriptRunner } from "./scripts.js";
import type {
  AdmitInput,
  AdmitResult,
  Attempt,
  Resolution,
  Scheduler,
  SchedulerOptions,
} from "./scheduler-types.js";
export type {
  SchedulerOptions,
  TenantLimits,
  AdmitInput,
  AdmitResult,
  Resolution,
  BackendView,
  Attempt,
  NextOffer,
  Outcome,
  FinishPayload,
  FinishResult,
  CancelResult,
  Scheduler,
} from "./scheduler-types.js";

/** Attempts come as pairs: the attempt's JSON, then its request (JSON, passed on as it is). */
function parseAttempts(flat: readonly string[]): Attempt[] {
  const out: Attempt[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    out.push({ ...(JSON.parse(flat[i]!) as Omit<Attempt, "request">), request: flat[i + 1]! });
  }
  return out;
}

/** The ETA (s) of an admitted job at `position`. */
function etaOf(input: AdmitInput, position: number): number | undefined {
  const basis = { capacity: input.capacity, running: input.running ?? 0, waveMs: input.serviceMs };
  return queuedEtaSeconds(position, basis, input.costMs ?? input.serviceMs);
}

/**
 * admit.lua's ARGV[4]: a JSON array of strings — the admission's figures and names in the order the
 * script reads them (admit.lua's header), then its stored fields as field, value, …: the caller's
 * fields, the customer and priority as `cust` and `prio`, the input digests as `inputs` and the ttl as
 * `ttl_def` (default) or `ttl_at`, when there are any. One argument instead of one per figure: ioredis
 * builds each argument into the command with a length and a string concatenation of its own.
 */
function admitPack(input: AdmitInput, offset: number, now: number, queueMax: number, fleet: number): string {
  const fields = input.fields;
  const customer = fields["cust"] ?? "";
  const inputs = input.inputs && input.inputs.length > 0 ? input.inputs.join(" ") : (fields["inputs"] ?? "");
  const ttlAt = input.ttlAt ?? 0;
  const ttlIsDefault = input.ttlIsDefault === true;
  const tenant = input.tenant ?? { weight: 1 };
  const a: string[] = [
    input.route,
    String(offset),
    String(now),
    String(ttlAt),
    String(input.maxPosition ?? -1),
    ttlIsDefault ? "0" : "1",
    String(finiteCost(input.costMs, input.serviceMs)),
    String(tenant.weight),
    String(tenant.maxRunning ?? 0),
    String(tenant.maxQueued ?? -1),
    String(queueMax),
    String(fleet),
    customer,
    input.priority,
    fields["tier"] ?? "",
    inputs,
    String(input.startWithin?.slots ?? -1),
    String(input.startWithin?.waves ?? 0),
    input.startWithin?.backends.join(" ") ?? "",
    String(input.startWithin?.workers?.slots ?? -1),
    input.startWithin?.workers?.backends.join(" ") ?? "",
  ];
  for (const k in fields) {
    const v = fields[k];
    if (v !== undefined && k !== "cust" && k !== "prio" && k !== "inputs") a.push(k, v);
  }
  a.push("cust", customer, "prio", input.priority);
  if (inputs !== "") a.push("inputs", inputs);
  if (ttlAt > 0) a.push(ttlIsDefault ? "ttl_def" : "ttl_at", String(ttlAt));
  return JSON.stringify(a);
}

/** Admissions reported `unknown` that one process keeps settling (beyond it, the oldest are dropped). */
const MAX_PENDING_RESOLUTIONS = 10_000;
const RESOLVE_RETRY_MS = 100;

/** Tokens are unique per call: a random base plus a counter inside the script. */
const EMPTY = new Uint8Array(0);
const tokenBase = () => `${randomBytes(6).toString("hex")}.`;

/** A job's cost for the order key: a finite, non-negative whole number of ms (`fallback` else). */
function finiteCost(costMs: number | undefined, fallback: number): number {
  const c = costMs ?? fallback;
  return Number.isFinite(c) && c >= 0 ? Math.round(c) : Math.max(0, Math.round(fallback) || 0);
}

export function createScheduler(opts: SchedulerOptions): Scheduler {
  const keys = createKeys(opts.prefix);
  const run: ScriptRunner = defineScripts(opts.redis, opts.prefix, { pipelineMax: opts.pipelineMax ?? 0 });
  const route = keys.queue;
  // The admissions of a turn leave as one call, as the other script calls of a turn share a write.
  const admitSend = createAdmitBatch(run, route, opts.pipelineMax ?? 0);
  const retention = [opts.retentionS, opts.retentionCount] as const;
  // A worker passes the same backend views and preferences until their state changes: each object
  // is encoded once, not on every dispatch and settle.
  const encoded = new WeakMap<object, string>();
  const json = (value: object): string => {
    let text = encoded.get(value);
    if (text === undefined) {
      text = JSON.stringify(value);
      encoded.set(value, text);
    }
    return text;
  };

  const resolveWithinMs = opts.admitResolveMs ?? 3_000;
  const agingBoundMs = opts.agingBoundMs ?? 600_000;
  const voidTtlS = opts.voidTtlS ?? 86_400;
  /** Admissions reported `unknown`: job id -> customer. */
  const unsettled = new Map<string, string>();

  async function resolveAdmission(id: string, customer: string): Promise<Resolution> {
    const [code = 0, position = -1] = (await run("admit_resolve", route, [
      id,
      customer,
      voidTtlS,
    ])) as number[];
    unsettled.delete(id);
    if (code === 1) return { admitted: true, position: Number(position) };
    return { admitted: false, reason: refusalOf("admit_resolve", code) ?? "voided" };
  }

  /** Settles an admission whose admit call may or may not have run; `unknown` after the deadline. */
  async function settleLostAdmission(input: AdmitInput, customer: string): Promise<AdmitResult> {
    const deadline = opts.clock() + resolveWithinMs;
    for (;;) {
      try {
        const r = await resolveAdmission(input.id, customer);
        if (!r.admitted) return { admitted: false, reason: r.reason === "foreign" ? "exists" : "lost" };
        const eta = r.position < 0 ? undefined : etaOf(input, r.position);
        return {
          admitted: true,
          position: Math.max(0, r.position),
          ...(eta === undefined ? {} : { etaSeconds: eta }),
        };
      } catch {
        if (opts.clock() + RESOLVE_RETRY_MS >= deadline) {
          if (unsettled.size >= MAX_PENDING_RESOLUTIONS) {
            const oldest = unsettled.keys().next().value;
            if (oldest !== undefined) unsettled.delete(oldest);
          }
          unsettled.set(input.id, customer);
          return { admitted: false, reason: "unknown" };
        }
        // Any failure (also an error reply: OOM refuses the void marker, BUSY, LOADING) may pass.
        await new Promise((r) => setTimeout(r, RESOLVE_RETRY_MS));
      }
    }
  }

  return {
    keys,
    resolveAdmission,

    async resolvePending(only) {
      let settled = 0;
      const which = only === undefined ? [...unsettled] : [[only, unsettled.get(only)] as const];
      for (const [id, customer] of which) {
        if (customer === undefined) continue;
        try {
          await resolveAdmission(id, customer);
          settled += 1;
        } catch {
          break; // Redis is still away: the rest waits for the next call
        }
      }
      return settled;
    },

    async admit(input) {
      const now = input.now ?? opts.clock();
      const customer = input.fields["cust"] ?? "";
      let reply: AdmitReply;
      try {
        const offset = priorityOffset(input.priority, agingBoundMs, opts.maxWeight ?? 1);
        const fleet = Math.max(0, Math.round(input.fleetSlots ?? input.capacity));
        reply = await admitSend(
          input.id,
          input.request,
          admitPack(input, offset, now, opts.queueMax ?? -1, fleet),
        );
      } catch (err) {
        if (!mayHaveRun(err)) throw err;
        return settleLostAdmission(input, customer);
      }
      const [first, second] = reply;
      const refusal = refusalOf("admit", first);
      // This very admission resent (see admit.lua): admitted, at its current position.
      if (refusal === "resent") return { admitted: true, position: Math.max(0, second) };
      if (refusal === "too_far") return { admitted: false, reason: refusal, position: second };
      if (refusal === "queue_full" || refusal === "queue_full_all") {
        return {
          admitted: false,
          reason: "queue_full",
          scope: refusal === "queue_full" ? "tenant" : "all",
          queued: second,
        };
      }
      if (refusal !== undefined) return { admitted: false, reason: refusal };
      const eta = etaOf(input, first);
      return { admitted: true, position: first, ...(eta === undefined ? {} : { etaSeconds: eta }) };
    },

    async dispatch(freeSlots, backends, prefer) {
      if (freeSlots <= 0) return [];
      const reply = (await run("dispatch", route, [
        opts.clock(),
        freeSlots,
        json(backends),
        opts.leaseTtlMs,
        tokenBase(),
        ...retention,
        prefer ? json(prefer) : "{}",
      ])) as string[];
      return parseAttempts(reply);
    },

    async finish(id, token, backend, outcome, payload, next, syncOutput, withRecord) {
      const r = (await run(
        "finish",
        route,
        finishArgs({
          id,
          token,
          backend,
          now: opts.clock(),
          outcome,
          payload: JSON.stringify(payload),
          maxAttempts: opts.maxAttempts,
          retentionS: opts.retentionS,
          retentionCount: opts.retentionCount,
          // without an offer the script reads neither the backends nor the preferences
          slots: next?.slots ?? 0,
          backends: next ? json(next.backends) : "[]",
          prefer: next?.prefer ? json(next.prefer) : "{}",
          leaseTtlMs: opts.leaseTtlMs,
          tokenBase: tokenBase(),
          syncOutput: syncOutput ?? EMPTY,
          withRecord: withRecord === true,
        }),
      )) as [number, string, string[], string[] | undefined];
      const [code, status, attempts, record] = r;
      const started = parseAttempts(attempts ?? []);
      const reason = refusalOf("finish", Number(code));
      if (reason === undefined) {
        const ended = status as "complete" | "error" | "queued";
        if (!record || record.length === 0) return { ok: true, status: ended, next: started };
        return { ok: true, status: ended, next: started, job: decodeJobFlat(record) };
      }
      return { ok: false, reason, next: started };
    },

    async cancel(id, customer) {
      const code = Number(await run("cancel", route, [id, customer ?? "", opts.clock(), ...retention]));
      if (code === 1) return "was_queued";
      if (code === 2) return "was_running";
      return refusalOf("cancel", code) ?? "missing";
    },

    async renew(held) {
      if (held.length === 0) return [];
      const args: string[] = [];
      for (const h of held) args.push(h.id, h.token, h.backend);
      return (await run("renew", route, [opts.clock(), opts.leaseTtlMs, ...args])) as string[];
    },

    async reap(now) {
      return Number(await run("reap", route, [now ?? opts.clock(), opts.maxAttempts, ...retention]));
    },

    async expire() {
      return Number(await run("expire", route, [opts.clock(), ...retention]));
    },

    async progress(id, token, progress, step, steps, preview) {
      const r = await run("progress", route, [id, token, progress, step, steps, preview ?? "", opts.clock()]);
      return Number(r) === 1;
    },
  };
}
