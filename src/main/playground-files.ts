// Reads the playground's static files (public/playground: HTML, one stylesheet, one ES module) once,
// when the api role starts; src/api/routes/playground.ts serves them from memory.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PROJECT_ROOT } from "./settings.js";

/** Where the playground's files live in the package. */
export const PLAYGROUND_DIR = resolve(PROJECT_ROOT, "public/playground");

/**
 * Every regular file of `dir` by name (sub-folders are not served).
 * @throws the read error when the folder or a file cannot be read: the api role does not start
 *   without its page.
 */
export function readPlaygroundFiles(dir = PLAYGROUND_DIR): ReadonlyMap<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile()) files.set(entry.name, readFileSync(join(dir, entry.name)));
  }
  return files;
}
