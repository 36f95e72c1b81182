// Directories only their owner may enter (mode 0700): DATA_DIR and the folders under it.
import { chmodSync, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Mode of every directory under DATA_DIR (the files in them are 0600 or live in 0700 trees). */
export const PRIVATE_DIR_MODE = 0o700;

/**
 * Creates `path` (and missing parents) with mode 0700, or tightens an existing directory of ours
 * that group or others may enter to 0700. A directory owned by another user is left as it is.
 * @returns true when an existing directory's mode was tightened.
 * @throws Error from the file system (EACCES, ENOTDIR, …).
 */
export function ensurePrivateDir(path: string): boolean {
  mkdirSync(path, { recursive: true, mode: PRIVATE_DIR_MODE });
  const st = statSync(path);
  if ((st.mode & 0o077) === 0) return false;
  if (process.getuid !== undefined && st.uid !== process.getuid()) return false;
  chmodSync(path, PRIVATE_DIR_MODE);
  return true;
}

/**
 * The folders the gateway keeps under DATA_DIR: the admissions journal (`admissions`,
 * admission-journal), the audit log's files (`audit`, audit-files), the CAS (`cas`, fs-blob-store), the
 * billing ledger (`ledger`, ledger-files), the embedded Redis's AOF and log (`redis`) and run files
 * (`run`, embedded-redis and main/run-files), the dev secret (`secrets`, dev-secret).
 */
export const DATA_DIR_FOLDERS = ["admissions", "audit", "cas", "ledger", "redis", "run", "secrets"] as const;

/**
 * {@link ensurePrivateDir} for DATA_DIR and those of {@link DATA_DIR_FOLDERS} that exist: a DATA_DIR
 * left by an older version, whose folders were 0755, is closed to other users at start. Deeper
 * folders are reached only through these; other folders in DATA_DIR are not the gateway's to change.
 * @returns the directories whose mode was tightened.
 */
export function ensurePrivateDataDir(dataDir: string): string[] {
  const tightened: string[] = [];
  if (ensurePrivateDir(dataDir)) tightened.push(dataDir);
  for (const name of DATA_DIR_FOLDERS) {
    const dir = join(dataDir, name);
    if (existsSync(dir) && ensurePrivateDir(dir)) tightened.push(dir);
  }
  return tightened;
}
