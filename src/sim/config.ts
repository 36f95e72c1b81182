// Run-time settings of the simulated GPU backend, their limits and their snake_case wire form.
import { z } from "zod";

/** Settings of the simulated backend; replaced as a whole (never mutated) when changed. */
export interface SimConfig {
  /** Milliseconds per diffusion step (the latency model: a generation takes steps × stepMs). */
  readonly stepMs: number;
  /** In-flight generations (hung ones included) before calls are answered 503. */
  readonly capacity: number;
  /** Probability (0–1) that a call is answered 500 after its first step. */
  readonly failRate: number;
  /** Probability (0–1) that a call never answers (until the client goes away). */
  readonly hangRate: number;
  /** When true, readiness and every generation call answer 503. */
  readonly down: boolean;
}

/** The defaults of API.md §5: 20 ms per step, 16 concurrent generations, no faults. */
export const DEFAULT_SIM_CONFIG: SimConfig = Object.freeze({
  stepMs: 20,
  capacity: 16,
  failRate: 0,
  hangRate: 0,
  down: false,
});

/** Upper bounds that keep a mistyped value from wedging the simulator. */
const SIM_LIMITS = Object.freeze({ maxStepMs: 60_000, maxCapacity: 100_000 });

const rate = z.number().min(0).max(1);

/** The body of `PUT /sim/config`: any subset of the snake_case settings, nothing else. */
const simConfigPatchSchema = z.strictObject({
  step_ms: z.number().min(0).max(SIM_LIMITS.maxStepMs).optional(),
  capacity: z.number().int().min(0).max(SIM_LIMITS.maxCapacity).optional(),
  fail_rate: rate.optional(),
  hang_rate: rate.optional(),
  down: z.boolean().optional(),
});

/** A whole config in its wire form (what {@link applyConfigPatch} checks). */
const simConfigSchema = simConfigPatchSchema.required();

/** The snake_case form of {@link SimConfig} used on the wire (`GET /sim/config`). */
export interface SimConfigWire {
  step_ms: number;
  capacity: number;
  fail_rate: number;
  hang_rate: number;
  down: boolean;
}

/** The wire form of a config. */
export function toWireConfig(config: SimConfig): SimConfigWire {
  return {
    step_ms: config.stepMs,
    capacity: config.capacity,
    fail_rate: config.failRate,
    hang_rate: config.hangRate,
    down: config.down,
  };
}

/**
 * Parses a `PUT /sim/config` body into a patch.
 * @returns the patch, or an error message naming the offending field.
 */
export function parseConfigPatch(
  body: unknown,
): { ok: true; patch: Partial<SimConfig> } | { ok: false; error: string } {
  const parsed = simConfigPatchSchema.safeParse(body);
  if (!parsed.success) return { ok: false, error: describeZodError(parsed.error) };
  const p = parsed.data;
  const patch: { -readonly [K in keyof SimConfig]?: SimConfig[K] } = {};
  if (p.step_ms !== undefined) patch.stepMs = p.step_ms;
  if (p.capacity !== undefined) patch.capacity = p.capacity;
  if (p.fail_rate !== undefined) patch.failRate = p.fail_rate;
  if (p.hang_rate !== undefined) patch.hangRate = p.hang_rate;
  if (p.down !== undefined) patch.down = p.down;
  return { ok: true, patch };
}

/**
 * A new frozen config: `base` with `patch` applied, checked against the same limits as the wire form.
 * @throws RangeError naming the first invalid field.
 */
export function applyConfigPatch(base: SimConfig, patch: Partial<SimConfig>): SimConfig {
  const next: SimConfig = {
    stepMs: patch.stepMs ?? base.stepMs,
    capacity: patch.capacity ?? base.capacity,
    failRate: patch.failRate ?? base.failRate,
    hangRate: patch.hangRate ?? base.hangRate,
    down: patch.down ?? base.down,
  };
  const parsed = simConfigSchema.safeParse(toWireConfig(next));
  if (!parsed.success) throw new RangeError(`invalid sim config: ${describeZodError(parsed.error)}`);
  return Object.freeze(next);
}

/** `field: message` of the first issue of a zod error, for `{error}` bodies. */
export function describeZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid value";
  const path = issue.path.map(String).join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}
