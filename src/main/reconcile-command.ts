// `render-gateway reconcile --from <RFC3339> --to <RFC3339>` (API.md §5, README "Compliance"): the
// reconciliation of a window, on demand — the same report a scheduled run stores, printed (RFC 8785
// bytes of the signed report, one line) and not stored. Reads DATA_DIR (ledger, audit log, admissions
// journal), the analytics store and Redis as the pipeline does.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { systemClock } from "../core/time.js";
import { reportBytes } from "../core/reconcile-report.js";
import { createLedgerFiles } from "../infra/ledger-files.js";
import { createLogger } from "../infra/logger.js";
import { closeRedis, createRedis, waitReady } from "../infra/redis.js";
import { makeReport } from "../pipeline/compliance.js";
import { openAnalyticsStore } from "./analytics.js";
import { complianceAuditFor, complianceDepsFor } from "./compliance.js";
import { cliRedisTarget } from "./keys-command.js";
import { createRuntime } from "./runtime.js";
import { loadSettings } from "./settings.js";

/** The exit code of a flagged report (1 is any error, 2 bad usage). */
export const FLAGGED_EXIT = 3;
/** The longest window one run reconciles. */
const MAX_WINDOW_MS = 366 * 86_400_000;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/i;

export interface ReconcileOutput {
  out(text: string): void;
  err(text: string): void;
}

const processOutput: ReconcileOutput = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

function instant(option: string, raw: string | undefined): number {
  if (raw === undefined)
    throw new Error(`reconcile: --${option} is required (RFC 3339, e.g. 2026-12-01T00:00:00Z)`);
  const ms = raw.length <= 40 && RFC3339_RE.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms)) throw new Error(`reconcile: --${option} must be an RFC 3339 date-time`);
  return ms;
}

/**
 * Runs `reconcile …`. Returns the exit code: 0 the sources agree, {@link FLAGGED_EXIT} the report is
 * flagged.
 * @throws Error for bad options, no Redis, or a journal or key that cannot be read.
 */
export async function runReconcileCommand(
  argv: readonly string[],
  output: ReconcileOutput = processOutput,
): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { from: { type: "string" }, to: { type: "string" } },
    strict: true,
  });
  const fromMs = instant("from", values.from);
  const toMs = instant("to", values.to);
  if (fromMs >= toMs) throw new Error("reconcile: --from must be before --to");
  if (toMs - fromMs > MAX_WINDOW_MS) throw new Error("reconcile: the window may span at most 366 days");

  const settings = loadSettings();
  const { env } = settings;
  // Logs go to stderr: stdout carries the report alone.
  const logger = createLogger({
    level: env.LOG_LEVEL === "info" ? "warn" : env.LOG_LEVEL,
    destination: process.stderr,
  });
  const runtime = createRuntime(logger);
  try {
    const redis = createRedis(await cliRedisTarget(settings), "worker", "rg-cli-reconcile");
    runtime.defer("redis", () => closeRedis(redis));
    await waitReady(redis, 5_000);
    // read only: the ledger opens no file for writing unless it appends
    const ledger = createLedgerFiles({ dir: join(settings.dataDir, "ledger"), writerId: "reconcile-reader" });
    runtime.defer("ledger", () => ledger.close());
    const analytics = await openAnalyticsStore({ settings, runtime, logger }, { embed: false });
    const deps = complianceDepsFor({
      env,
      dataDir: settings.dataDir,
      redis,
      clock: systemClock,
      ledger,
      audit: complianceAuditFor(settings),
      analytics,
    });
    const report = await makeReport(deps, fromMs, toMs);
    output.out(`${new TextDecoder().decode(reportBytes(report))}\n`);
    const failed = Object.entries(report.sources)
      .filter(([, s]) => s.status === "failed")
      .map(([name, s]) => `${name} (${s.error ?? "failed"})`);
    output.err(
      `reconcile ${report.from} .. ${report.to}: ${report.flagged ? "FLAGGED" : "the sources agree"}; ` +
        `largest discrepancy ${report.max_discrepancy}, ${report.mismatched_jobs} job(s) differ, ` +
        `${report.lost.count} lost${failed.length > 0 ? `; failed: ${failed.join(", ")}` : ""}\n`,
    );
    return report.flagged ? FLAGGED_EXIT : 0;
  } finally {
    await runtime.shutdown("reconcile done");
  }
}
