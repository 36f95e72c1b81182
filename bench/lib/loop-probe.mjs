// Preloaded into a server process by bench/body-block.ts (`node --import`): tracks the longest gap
// between ticks of a 1 ms timer (the longest event-loop block, wall time) and the most CPU time the
// main thread spent within one gap (the block without the time other processes held the cores:
// Linux's per-thread schedstat, in ns), and on SIGUSR2 appends both with the process's memory to
// LOOP_PROBE_FILE as one JSON line, then starts over. Plain JS: it loads in every thread node starts
// with these flags, where tsx is not registered.
import { appendFileSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { isMainThread } from "node:worker_threads";

const file = process.env.LOOP_PROBE_FILE;
if (isMainThread && file) {
  // The main thread's id is the process id.
  const schedstat = `/proc/self/task/${process.pid}/schedstat`;
  const cpuMs = () => Number(readFileSync(schedstat, "latin1").split(" ", 1)[0]) / 1e6;
  let last = performance.now();
  let lastCpu = cpuMs();
  let maxGap = 0;
  let maxCpu = 0;
  const sample = () => {
    const now = performance.now();
    const cpu = cpuMs();
    maxGap = Math.max(maxGap, now - last);
    maxCpu = Math.max(maxCpu, cpu - lastCpu);
    last = now;
    lastCpu = cpu;
  };
  const tick = setInterval(sample, 1);
  tick.unref();
  process.on("SIGUSR2", () => {
    sample();
    const line = {
      maxGapMs: maxGap,
      maxMainCpuMs: maxCpu,
      rssMiB: process.memoryUsage.rss() / 2 ** 20,
      // Peak resident size of the process since it started (kernel accounting, KiB).
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    };
    appendFileSync(file, `${JSON.stringify(line)}\n`);
    maxGap = 0;
    maxCpu = 0;
  });
}
