// Extra CA certificates from a PEM file (OUTBOUND_CA_FILE for the outbound clients, REDIS_TLS_CA_FILE
// for Redis), read once at start.
import { readFileSync } from "node:fs";

/**
 * The PEM of the file at `path`, read before anything connects; a bad path stops the process with an
 * error naming `variable` (default OUTBOUND_CA_FILE).
 */
export function readCaFile(path: string | undefined, variable = "OUTBOUND_CA_FILE"): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`${variable}: cannot read ${path} (${(err as Error).message})`);
  }
}
