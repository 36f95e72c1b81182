// The development root secret under DATA_DIR, created once with O_EXCL and mode 0600 (API.md §5).
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Options of {@link loadOrCreateDevSecret}; the defaults suit production. */
export interface DevSecretOptions {
  /** How long to wait for another process to finish writing a file it just created; default 2000. */
  readonly waitMs?: number;
}

const SECRET_BYTES = 32;
const CONTENT_RE = /^([0-9a-f]{64})\n?$/;
const POLL_MS = 10;

/** What one read of the file found: a secret, or nothing yet (the creator has not written it). */
type ReadOutcome = { readonly secret: Uint8Array } | { readonly pending: true };

async function readSecret(path: string): Promise<ReadOutcome> {
  // O_NOFOLLOW: a symlink planted in the data dir must not redirect us to another file.
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") {
      throw new Error(
        `dev secret ${path} is a symbolic link; refusing to use it (delete it to make a new one)`,
      );
    }
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`dev secret ${path} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
      throw new Error(
        `dev secret ${path} has mode ${mode}, readable or writable by group/other; ` +
          `refusing to use it (run: chmod 600 ${path}, or delete it to make a new one)`,
      );
    }
    const text = await handle.readFile("latin1");
    const match = CONTENT_RE.exec(text);
    if (match?.[1] !== undefined) return { secret: new Uint8Array(Buffer.from(match[1], "hex")) };
    // Shorter than a full secret and still a prefix of one: the creating process is mid-write.
    if (text.length < 64 && /^[0-9a-f]*$/.test(text)) return { pending: true };
    throw new Error(
      `dev secret ${path} is malformed (expected 64 hex characters); delete it to make a new one`,
    );
  } finally {
    await handle.close();
  }
}

/**
 * The root secret used when `JWT_SECRET` is not set: 32 random bytes kept hex-encoded in
 * `<dataDir>/secrets/dev-secret`. The first caller creates the file with `O_CREAT|O_EXCL` and mode
 * 0600; when several processes start at once, the losers read the winner's file (waiting up to
 * `waitMs` while it is still empty), so all of them end up with the same bytes.
 *
 * @returns the 32 decoded bytes (not the hex text).
 * @throws Error naming the file when it is accessible by group or others, is not a regular file, is
 *   malformed, or stays incomplete longer than `waitMs`.
 */
export async function loadOrCreateDevSecret(
  dataDir: string,
  opts: DevSecretOptions = {},
): Promise<Uint8Array> {
  const waitMs = opts.waitMs ?? 2000;
  if (typeof dataDir !== "string" || dataDir.length === 0)
    throw new TypeError("dataDir must be a non-empty path");
  const dir = join(dataDir, "secrets");
  const path = join(dir, "dev-secret");
  await mkdir(dir, { recursive: true, mode: 0o700 });

  let created: FileHandle | undefined;
  try {
    created = await open(path, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  if (created !== undefined) {
    const secret = randomBytes(SECRET_BYTES);
    try {
      // The umask can only narrow the mode, but make sure the owner can read it back.
      await created.chmod(0o600);
      // One write of 65 bytes: readers see either nothing or a prefix, which they wait out.
      await created.writeFile(`${secret.toString("hex")}\n`, "latin1");
      await created.sync();
    } catch (err) {
      // Leave no empty file behind that would make every later start wait and fail.
      await created.close();
      await unlink(path).catch(() => undefined);
      throw err;
    }
    await created.close();
    return new Uint8Array(secret);
  }

  const deadline = Date.now() + waitMs;
  for (;;) {
    const outcome = await readSecret(path);
    if ("secret" in outcome) return outcome.secret;
    if (Date.now() >= deadline) {
      throw new Error(
        `dev secret ${path} is still incomplete after ${waitMs} ms (a crashed start?); delete it to make a new one`,
      );
    }
    await sleep(POLL_MS);
  }
}
