// The admissions journal's cost per admission, in CPU µs of the API process's main thread: N
// admissions recorded as admitJob records them (one push each), written by the journal's own timer
// (ADMISSIONS_FLUSH_MS) in the batches a steady stream of `--rate` admissions/s makes, and closed.
// What the request pays is the push; the stringify, the append and the fsync are the timer's (the
// write and fsync themselves run on libuv's thread pool, whose CPU is also counted here, process-wide).
//   npx tsx bench/tools/journal-cost.ts [--admissions 200000] [--rate 5000] [--flush-ms 100]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAdmissionJournal } from "../../src/infra/admission-journal.js";
import { options } from "../lib/harness.js";
import { fmt } from "../lib/report.js";

const { admissions, rate, flushMs } = options({ admissions: 200_000, rate: 5_000, flushMs: 100 });
const dir = mkdtempSync(join(tmpdir(), "journal-cost-"));
try {
  const journal = createAdmissionJournal({ dir, writerId: "bench", flushMs });
  const perTick = Math.max(1, Math.round((rate * 10) / 1000));
  const start = Date.now();
  let pushUs = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < admissions; i += perTick) {
    const t = process.cpuUsage();
    for (let k = i; k < Math.min(admissions, i + perTick); k++) {
      journal.record({
        job_id: `j_${k.toString(36).padStart(22, "0")}`,
        customer_id: `cust_${k % 1000}`,
        model: "flux/schnell",
        admitted_at: start + k,
      });
    }
    const d = process.cpuUsage(t);
    pushUs += d.user + d.system;
    await new Promise((r) => setTimeout(r, 10));
  }
  await journal.close();
  const all = process.cpuUsage(cpu0);
  const wallS = (Date.now() - start) / 1000;
  // the idle loop's own cost (timers every 10 ms) measured the same way, without the journal
  const idle0 = process.cpuUsage();
  for (let i = 0; i < admissions; i += perTick) await new Promise((r) => setTimeout(r, 10));
  const idle = process.cpuUsage(idle0);
  const totalUs = all.user + all.system - (idle.user + idle.system);
  console.log(
    `${fmt(admissions)} admissions at ~${fmt(rate)}/s over ${fmt(wallS)} s, flush every ${flushMs} ms`,
  );
  console.log(`record() (what a request pays): ${(pushUs / admissions).toFixed(3)} µs per admission`);
  console.log(
    `everything (pushes, stringify, appends, fsyncs; idle loop subtracted): ${(totalUs / admissions).toFixed(2)} µs per admission`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
