// The audit log's files under DATA_DIR/audit (docs/decisions.md "Audit log"): index.jsonl (which CAS
// blob holds each segment), checkpoints.jsonl (every signed checkpoint), keys/ (the Ed25519 signing
// keys, 0600 in a 0700 folder, and jwks.json with the public key of every key ever used) and log-id.
// Both the appender and the offline tools read and write them through this module only.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, stat, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  checkpointProblem,
  fromBase64Url,
  publicJwk,
  publicKeyOf,
  toBase64Url,
  type Jwk,
  type SignedCheckpoint,
} from "../core/checkpoint.js";
import {
  FILE_MODE,
  JsonlLineError,
  JsonlMoved,
  appendLines,
  createOnce,
  parseJsonl,
  readJsonlFrom,
  readText,
  writeAtomic,
  type JsonlPosition,
  type JsonlRead,
} from "./line-files.js";
import { isErrno } from "./fs-blob-layout.js";
import { PRIVATE_DIR_MODE } from "./private-dir.js";

export { JsonlLineError, JsonlMoved, type JsonlPosition, type JsonlRead };

/** One line of index.jsonl: segment k is the CAS blob `digest`, holding `count` leaves. */
export interface IndexLine {
  readonly segment: number;
  readonly digest: string;
  readonly count: number;
}

export interface AuditFiles {
  /** DATA_DIR/audit. */
  readonly dir: string;
  /** The log's id: `AUDIT_LOG_ID`, else the one in `log-id`, made once (`rg-<16 hex>`). */
  logId(): Promise<string>;
  /** The id in `log-id`, without making one; undefined when there is none yet. */
  readLogId(): Promise<string | undefined>;
  /** The key checkpoints are signed with now: loads it, or makes the first one. */
  signingKey(): Promise<{ kid: string; seed: Uint8Array; publicKey: Uint8Array }>;
  /** The public key of every key ever used (jwks.json). */
  jwks(): Promise<{ keys: Jwk[] }>;
  /** Makes a new key current, keeping the old public keys; returns the new kid. */
  rotateKey(): Promise<string>;
  /** Appends index lines and syncs them. */
  appendIndex(lines: readonly IndexLine[]): Promise<void>;
  /**
   * The line that stands for each segment (see {@link currentSegments}).
   * @throws JsonlLineError for a malformed complete line.
   */
  readIndex(): Promise<Map<number, { digest: string; count: number }>>;
  /** Every index line in file order, and a torn tail if any. @throws JsonlLineError */
  readIndexLines(): Promise<JsonlRead<IndexLine>>;
  /** The index lines appended since `from` (a read's `end`). @throws JsonlMoved, JsonlLineError */
  readIndexLinesFrom(from: JsonlPosition): Promise<JsonlRead<IndexLine>>;
  /** Appends a checkpoint and syncs it. */
  appendCheckpoint(cp: SignedCheckpoint): Promise<void>;
  /** The checkpoints in issue order. @throws JsonlLineError for a malformed complete line. */
  readCheckpoints(): Promise<SignedCheckpoint[]>;
  /** The checkpoints in issue order, and a torn tail if any. @throws JsonlLineError */
  readCheckpointLines(): Promise<JsonlRead<SignedCheckpoint>>;
  /** The checkpoints appended since `from` (a read's `end`). @throws JsonlMoved, JsonlLineError */
  readCheckpointLinesFrom(from: JsonlPosition): Promise<JsonlRead<SignedCheckpoint>>;
}

export interface AuditFilesOptions {
  /** `AUDIT_SIGNING_KEY`: a 32-byte seed, base64url; used instead of the key files. */
  readonly signingKey?: string;
  /** `AUDIT_LOG_ID`. */
  readonly logId?: string;
  /** How long to wait for another process's hold on keys/ (ms); default 5000. */
  readonly lockWaitMs?: number;
}

export const INDEX_FILE = "index.jsonl";
export const CHECKPOINTS_FILE = "checkpoints.jsonl";
const LOG_ID_FILE = "log-id";
const KEYS_DIR = "keys";
const CURRENT_FILE = "current";
const JWKS_FILE = "jwks.json";
const LOCK_FILE = ".lock";
const DIGEST_RE = /^sha256-[0-9a-f]{64}$/;
const LOG_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const KID_RE = /^[A-Za-z0-9_-]{43}$/;
/** A hold on keys/ older than this belongs to a process that died holding it. */
const STALE_LOCK_MS = 30_000;

/** An index line passed over for an earlier one of its segment with more leaves. */
export interface StaleIndexLine {
  /** 1-based line of index.jsonl. */
  readonly line: number;
  readonly segment: number;
  readonly count: number;
  /** The count of the line that stands. */
  readonly kept: number;
}

/**
 * The line that stands for each segment: the one with the most leaves (a segment only grows), the
 * last of those when several have as many. Normally that is simply the last line; a smaller count
 * after a larger one is a stale line (an appender that lost its lease between its check and its
 * write) and is passed over, reported in `stale`.
 */
export function currentSegments(lines: readonly IndexLine[]): {
  segments: Map<number, { digest: string; count: number }>;
  stale: StaleIndexLine[];
} {
  const segments = new Map<number, { digest: string; count: number }>();
  const stale: StaleIndexLine[] = [];
  lines.forEach((l, i) => {
    const before = segments.get(l.segment);
    if (before !== undefined && l.count < before.count) {
      stale.push({ line: i + 1, segment: l.segment, count: l.count, kept: before.count });
      return;
    }
    segments.set(l.segment, { digest: l.digest, count: l.count });
  });
  return { segments, stale };
}

function parseIndexLine(v: unknown): IndexLine | string {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not an object";
  const { segment, digest, count, ...rest } = v as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return "unexpected members";
  if (!Number.isSafeInteger(segment) || (segment as number) < 0)
    return "segment must be a non-negative integer";
  if (typeof digest !== "string" || !DIGEST_RE.test(digest)) return "digest must be sha256-<64 hex>";
  if (!Number.isSafeInteger(count) || (count as number) < 1) return "count must be a positive integer";
  return { segment: segment as number, digest, count: count as number };
}

function parseCheckpointLine(v: unknown): SignedCheckpoint | string {
  const problem = checkpointProblem(v);
  return problem === undefined ? (v as SignedCheckpoint) : problem;
}

/** The seed of a key file's text; throws naming the file for anything else. */
function seedOfKeyFile(path: string, text: string): Uint8Array {
  const seed = fromBase64Url(text.trim(), 32);
  if (seed === undefined)
    throw new Error(`audit key ${path} is malformed (expected a 32-byte seed, base64url)`);
  return seed;
}

/** Reads a key file, refusing one that is a symlink or that group or others may read. */
async function readKeyFile(path: string): Promise<Uint8Array> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (isErrno(err, "ELOOP")) throw new Error(`audit key ${path} is a symbolic link; refusing to use it`);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`audit key ${path} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
      throw new Error(
        `audit key ${path} has mode ${mode}, open to group/other; refusing it (run: chmod 600 ${path})`,
      );
    }
    return seedOfKeyFile(path, await handle.readFile("utf8"));
  } finally {
    await handle.close();
  }
}

/**
 * The files of the audit log under `<dataDir>/audit` (created 0700 on first write). With
 * `signingKey` (AUDIT_SIGNING_KEY) that key signs and key files are not made; its public key is
 * still kept in jwks.json. With `logId` (AUDIT_LOG_ID) that id is the log's, and is written to
 * `log-id` when the file is missing.
 * @throws TypeError for a malformed signingKey or logId.
 */
export function openAuditFiles(dataDir: string, opts: AuditFilesOptions = {}): AuditFiles {
  if (typeof dataDir !== "string" || dataDir.length === 0)
    throw new TypeError("dataDir must be a non-empty path");
  const configuredSeed = opts.signingKey === undefined ? undefined : fromBase64Url(opts.signingKey, 32);
  if (opts.signingKey !== undefined && configuredSeed === undefined) {
    throw new TypeError("the audit signing key must be a 32-byte seed, base64url (43 characters)");
  }
  if (opts.logId !== undefined && !LOG_ID_RE.test(opts.logId)) {
    throw new TypeError("the audit log id must be 1-64 characters of A-Z a-z 0-9 . _ : -");
  }
  const lockWaitMs = opts.lockWaitMs ?? 5_000;
  const dir = join(dataDir, "audit");
  const keysDir = join(dir, KEYS_DIR);
  const path = (name: string): string => join(dir, name);
  const keyPath = (name: string): string => join(keysDir, name);

  const ensureDir = () => mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const ensureKeysDir = () => mkdir(keysDir, { recursive: true, mode: PRIVATE_DIR_MODE });

  /** Runs `fn` holding keys/.lock (O_EXCL), so two processes never rewrite jwks.json at once. */
  async function withKeysLock<T>(fn: () => Promise<T>): Promise<T> {
    await ensureKeysDir();
    const lock = keyPath(LOCK_FILE);
    const deadline = Date.now() + lockWaitMs;
    for (;;) {
      try {
        const h = await open(lock, "wx", FILE_MODE);
        await h.writeFile(String(process.pid));
        await h.close();
        break;
      } catch (err) {
        if (!isErrno(err, "EEXIST")) throw err;
      }
      const st = await stat(lock).catch(() => undefined);
      if (st !== undefined && Date.now() - st.mtimeMs > STALE_LOCK_MS) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`audit keys are held by another process (${lock})`);
      await sleep(10);
    }
    try {
      return await fn();
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  async function readJwks(): Promise<{ keys: Jwk[] }> {
    const text = await readText(keyPath(JWKS_FILE));
    if (text === undefined) return { keys: [] };
    const parsed = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(parsed.keys)) throw new Error(`${keyPath(JWKS_FILE)} has no keys array`);
    return { keys: parsed.keys as Jwk[] };
  }

  /** Adds the public key to jwks.json unless it is there (call holding the keys lock). */
  async function keepPublicKey(jwk: Jwk): Promise<void> {
    const current = await readJwks();
    if (current.keys.some((k) => k.kid === jwk.kid)) return;
    await writeAtomic(keyPath(JWKS_FILE), `${JSON.stringify({ keys: [...current.keys, jwk] }, null, 2)}\n`);
  }

  /** Makes a key (file, public key kept) and makes it current; call holding the keys lock. */
  async function makeKey(): Promise<string> {
    const seed = new Uint8Array(randomBytes(32));
    const jwk = await publicJwk(await publicKeyOf(seed));
    await createOnce(keyPath(`${jwk.kid}.key`), `${toBase64Url(seed)}\n`);
    await keepPublicKey(jwk);
    await writeAtomic(keyPath(CURRENT_FILE), `${jwk.kid}\n`);
    return jwk.kid;
  }

  async function currentKid(): Promise<string | undefined> {
    const text = (await readText(keyPath(CURRENT_FILE)))?.trim();
    if (text === undefined || text === "") return undefined;
    if (!KID_RE.test(text)) throw new Error(`${keyPath(CURRENT_FILE)} does not hold a key id`);
    return text;
  }

  // the public keys this process has already made sure jwks.json keeps
  const kept = new Set<string>();

  async function loadKey(): Promise<{ kid: string; seed: Uint8Array; publicKey: Uint8Array }> {
    let seed: Uint8Array;
    let fileKid: string | undefined;
    if (configuredSeed !== undefined) {
      seed = configuredSeed;
    } else {
      fileKid = (await currentKid()) ?? (await withKeysLock(async () => (await currentKid()) ?? makeKey()));
      seed = await readKeyFile(keyPath(`${fileKid}.key`));
    }
    const publicKey = await publicKeyOf(seed);
    const jwk = await publicJwk(publicKey);
    if (fileKid !== undefined && fileKid !== jwk.kid) {
      throw new Error(`audit key ${keyPath(`${fileKid}.key`)} holds the key ${jwk.kid}, not ${fileKid}`);
    }
    if (!kept.has(jwk.kid)) {
      await withKeysLock(() => keepPublicKey(jwk));
      kept.add(jwk.kid);
    }
    return { kid: jwk.kid, seed, publicKey };
  }

  const readIndexLines = async (): Promise<JsonlRead<IndexLine>> =>
    parseJsonl(INDEX_FILE, (await readText(path(INDEX_FILE))) ?? "", parseIndexLine);
  const readCheckpointLines = async (): Promise<JsonlRead<SignedCheckpoint>> =>
    parseJsonl(CHECKPOINTS_FILE, (await readText(path(CHECKPOINTS_FILE))) ?? "", parseCheckpointLine);

  return {
    dir,

    async logId() {
      const existing = (await readText(path(LOG_ID_FILE)))?.trim();
      if (opts.logId !== undefined) {
        if (existing !== undefined && existing !== "" && existing !== opts.logId) {
          throw new Error(
            `the audit log's id is ${existing} (${path(LOG_ID_FILE)}); AUDIT_LOG_ID says ${opts.logId}`,
          );
        }
        if (existing === undefined) {
          await ensureDir();
          await createOnce(path(LOG_ID_FILE), `${opts.logId}\n`);
        }
        return opts.logId;
      }
      if (existing !== undefined && LOG_ID_RE.test(existing)) return existing;
      if (existing !== undefined) throw new Error(`${path(LOG_ID_FILE)} does not hold a log id`);
      await ensureDir();
      await createOnce(path(LOG_ID_FILE), `rg-${randomBytes(8).toString("hex")}\n`);
      return ((await readText(path(LOG_ID_FILE))) ?? "").trim();
    },

    async readLogId() {
      const existing = (await readText(path(LOG_ID_FILE)))?.trim();
      return existing === undefined || existing === "" ? undefined : existing;
    },

    signingKey: loadKey,

    async jwks() {
      return readJwks();
    },

    async rotateKey() {
      if (configuredSeed !== undefined) {
        throw new Error("the signing key comes from AUDIT_SIGNING_KEY; change it there to rotate");
      }
      return withKeysLock(makeKey);
    },

    async appendIndex(lines) {
      if (lines.length === 0) return;
      for (const l of lines) {
        const problem = parseIndexLine(l);
        if (typeof problem === "string") throw new TypeError(`index line: ${problem}`);
      }
      await ensureDir();
      const text = lines.map(
        (l) => `${JSON.stringify({ segment: l.segment, digest: l.digest, count: l.count })}\n`,
      );
      await appendLines(path(INDEX_FILE), text.join(""));
    },

    readIndexLines,
    readIndexLinesFrom: (from) => readJsonlFrom(path(INDEX_FILE), INDEX_FILE, from, parseIndexLine),

    async readIndex() {
      return currentSegments((await readIndexLines()).entries).segments;
    },

    async appendCheckpoint(cp) {
      const problem = checkpointProblem(cp);
      if (problem !== undefined) throw new TypeError(`checkpoint: ${problem}`);
      await ensureDir();
      await appendLines(path(CHECKPOINTS_FILE), `${JSON.stringify(cp)}\n`);
    },

    readCheckpointLines,
    readCheckpointLinesFrom: (from) =>
      readJsonlFrom(path(CHECKPOINTS_FILE), CHECKPOINTS_FILE, from, parseCheckpointLine),

    async readCheckpoints() {
      return (await readCheckpointLines()).entries;
    },
  };
}
