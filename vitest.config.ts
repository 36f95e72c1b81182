import { readdirSync, readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

// Projects: `unit` and `unit-mocks` (test/unit: no Redis, no processes; `npm run test:unit`, the
// fast suite) and `system` (integration and end-to-end tests against the redis-server the global
// setup starts). `npm test` runs them all. Every test file fails when it leaves a child process, a
// socket, a timer or an interval behind (test/helpers/leak-check.ts).
//
// Unit files share one module graph per worker process (a fresh graph per file doubled the fast
// suite's time), except those that replace a module with vi.mock: a mock cannot take the place of
// a module another file already loaded, so they get a graph of their own.
const mocking = readdirSync("test/unit")
  .filter((f) => f.endsWith(".test.ts"))
  .map((f) => `test/unit/${f}`)
  .filter((path) => /\bvi\.(mock|doMock)\(/.test(readFileSync(path, "utf8")));

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
    setupFiles: ["test/helpers/leak-check.ts"],
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], exclude: mocking, isolate: false },
      },
      ...(mocking.length === 0
        ? []
        : [{ extends: true as const, test: { name: "unit-mocks", include: mocking } }]),
      {
        extends: true,
        test: {
          name: "system",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          globalSetup: ["test/helpers/global-setup.ts"],
        },
      },
    ],
  },
});
