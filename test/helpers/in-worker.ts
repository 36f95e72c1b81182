// Runs a function of one of our TypeScript modules in a worker thread, so that a test waiting for a
// result that never comes (a regex that backtracks for minutes) ends with the test's timeout instead
// of freezing the test process.
import { Worker } from "node:worker_threads";
import { afterEach } from "vitest";

/** What the function did: returned (its JSON-able result) or threw (the error's code and details). */
export type Outcome =
  | { readonly returned: unknown }
  | { readonly threw: { readonly code?: string; readonly details?: Record<string, unknown> } };

const running = new Set<Worker>();
afterEach(async () => {
  await Promise.all([...running].map((w) => w.terminate()));
  running.clear();
});

/** `module`: a path relative to the repository root, e.g. `src/core/request-schema.ts`. */
export async function callInWorker(module: string, fn: string, args: readonly unknown[]): Promise<Outcome> {
  const path = new URL(`../../${module}`, import.meta.url).pathname;
  const worker = new Worker(
    `
    const { parentPort, workerData } = require("node:worker_threads");
    const m = require("tsx/cjs/api").require(workerData.path, __filename);
    try {
      parentPort.postMessage({ returned: JSON.parse(JSON.stringify(m[workerData.fn](...workerData.args) ?? null)) });
    } catch (err) {
      parentPort.postMessage({ threw: { code: err.code, details: err.details } });
    }`,
    { eval: true, workerData: { path, fn, args } },
  );
  running.add(worker);
  try {
    return await new Promise<Outcome>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
  } finally {
    running.delete(worker);
    await worker.terminate();
  }
}
