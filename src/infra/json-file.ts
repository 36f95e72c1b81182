// A small JSON document under DATA_DIR that outlives the process (the reconciliation's audit read
// state): read back whole, replaced atomically, in a 0700 folder, 0600.
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { readText, writeAtomic } from "./line-files.js";
import { PRIVATE_DIR_MODE } from "./private-dir.js";

export interface JsonFile {
  /** The document, or undefined when there is none. @throws SyntaxError when it is not JSON. */
  load(): Promise<unknown>;
  /** Replaces the document (temp file, fsync, rename). */
  save(value: unknown): Promise<void>;
}

/** The JSON document at `path`. */
export function createJsonFile(path: string): JsonFile {
  return {
    async load() {
      const text = await readText(path);
      return text === undefined ? undefined : (JSON.parse(text) as unknown);
    },
    async save(value) {
      await mkdir(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
      await writeAtomic(path, JSON.stringify(value));
    },
  };
}
