// The extra CA certificates trusted by the outbound clients (OUTBOUND_CA_FILE), read once at start.
import { readFileSync } from "node:fs";

/** The PEM of `OUTBOUND_CA_FILE`, read before anything connects; a bad path stops the process. */
export function readCaFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`OUTBOUND_CA_FILE: cannot read ${path} (${(err as Error).message})`);
  }
}
