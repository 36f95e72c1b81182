// The files under DATA_DIR/run that tell other processes on the same data directory where a role
// listens (`api.url`, `sim.url`; the embedded Redis writes its own `redis.port`).
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensurePrivateDir } from "../infra/private-dir.js";
import type { Runtime } from "./runtime.js";

/** Writes `DATA_DIR/run/<name>` now and registers its removal at shutdown. */
export function publishRunFile(runtime: Runtime, dataDir: string, name: string, text: string): void {
  const dir = join(dataDir, "run");
  ensurePrivateDir(dir);
  const file = join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  runtime.defer(`run file ${name}`, () => rmSync(file, { force: true }));
}

/** The trimmed text of `DATA_DIR/run/<name>`, or undefined when there is no such file. */
export function readRunFile(dataDir: string, name: string): string | undefined {
  try {
    return readFileSync(join(dataDir, "run", name), "utf8").trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
}
