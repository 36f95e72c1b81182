// Small durable-file steps of the files under DATA_DIR (the audit log's): whole-file writes that are
// atomic, create-once files, and .jsonl files appended line by line with fsync, read back tolerating
// the torn last line a crash in the middle of an append leaves.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, open, readFile, rename, unlink, type FileHandle } from "node:fs/promises";
import { isErrno } from "./fs-blob-layout.js";

/** Mode of the files written here. */
export const FILE_MODE = 0o600;

/**
 * What a read of a .jsonl file found: its complete lines, and the unterminated tail a crash in the
 * middle of an append leaves (ignored: an append resolves only once its whole line is synced, so that
 * tail was never acknowledged; the next append cuts it off).
 */
export interface JsonlRead<T> {
  readonly entries: T[];
  /** Bytes after the last newline, when there are any. */
  readonly torn?: { readonly line: number; readonly bytes: number };
  /** Where the complete lines read end: where a later read of what was appended starts. */
  readonly end: JsonlPosition;
}

/**
 * A place in a .jsonl file just after a complete line: its byte offset, the number of lines before
 * it, and the text of the line that ends there ("" at the start), which a later read checks is
 * still there before it reads on.
 */
export interface JsonlPosition {
  readonly offset: number;
  readonly line: number;
  readonly last: string;
}

/** The start of a .jsonl file. */
export const JSONL_START: JsonlPosition = { offset: 0, line: 0, last: "" };

/** A .jsonl file read on from a position whose line is not there any more (rewritten or cut). */
export class JsonlMoved extends Error {
  readonly file: string;
  constructor(file: string, why: string) {
    super(`${file}: ${why}`);
    this.name = "JsonlMoved";
    this.file = file;
  }
}

/** A complete line of a .jsonl file that is not what it should be: `file` and 1-based `line` name it. */
export class JsonlLineError extends Error {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, why: string) {
    super(`${file} line ${line}: ${why}`);
    this.name = "JsonlLineError";
    this.file = file;
    this.line = line;
  }
}

/** The file's text, or undefined when it does not exist. */
export async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  }
}

/** Writes `text` to `path` atomically (temp file, fsync, rename), mode 0600. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const handle = await open(tmp, "wx", FILE_MODE);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Creates `path` holding `text` only if it does not exist (complete or not at all); false if it did. */
export async function createOnce(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const handle = await open(tmp, "wx", FILE_MODE);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if (isErrno(err, "EEXIST")) return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Appends `text` (whole lines) to `path` and syncs it. An unterminated tail left by a crashed append
 * is cut off first, so the new line never joins a torn one.
 */
export async function appendLines(path: string, text: string): Promise<void> {
  const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, FILE_MODE);
  try {
    const { size } = await handle.stat();
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) await handle.truncate(await endOfLastLine(handle, size));
    }
    await handle.appendFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The offset just after the last newline before `size` (0 when there is none). */
async function endOfLastLine(handle: FileHandle, size: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - chunk.length);
    const { bytesRead } = await handle.read(chunk, 0, end - start, start);
    const i = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (i >= 0) return start + i + 1;
    end = start;
  }
  return 0;
}

/**
 * Splits a .jsonl file (or what follows `from` in it) into parsed complete lines; see
 * {@link JsonlRead}.
 */
export function parseJsonl<T>(
  file: string,
  text: string,
  parse: (v: unknown) => T | string,
  from: JsonlPosition = JSONL_START,
): JsonlRead<T> {
  const parts = text.split("\n");
  const tail = parts.pop() ?? "";
  const entries: T[] = [];
  parts.forEach((line, i) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new JsonlLineError(file, from.line + i + 1, "not JSON");
    }
    const parsed = parse(value);
    if (typeof parsed === "string") throw new JsonlLineError(file, from.line + i + 1, parsed);
    entries.push(parsed);
  });
  const end: JsonlPosition =
    parts.length === 0
      ? from
      : {
          offset: from.offset + Buffer.byteLength(text) - Buffer.byteLength(tail),
          line: from.line + parts.length,
          last: parts.at(-1) as string,
        };
  return tail === ""
    ? { entries, end }
    : { entries, end, torn: { line: end.line + 1, bytes: Buffer.byteLength(tail) } };
}

/**
 * The complete lines appended to a .jsonl file since `from` (what an earlier {@link JsonlRead}
 * ended at), parsed; reads only from there on. A missing file is empty.
 * @throws JsonlMoved when the file is shorter than `from` or the line before `from` is not the one
 *   read then; JsonlLineError for a malformed complete line.
 */
export async function readJsonlFrom<T>(
  path: string,
  file: string,
  from: JsonlPosition,
  parse: (v: unknown) => T | string,
): Promise<JsonlRead<T>> {
  const anchor = from.offset === 0 ? Buffer.alloc(0) : Buffer.from(`${from.last}\n`);
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
    if (from.offset > 0) throw new JsonlMoved(file, "the file is gone");
    return { entries: [], end: from };
  }
  let bytes: Buffer;
  try {
    const { size } = await handle.stat();
    if (size < from.offset)
      throw new JsonlMoved(file, `${size} bytes, fewer than the ${from.offset} read before`);
    const at = from.offset - anchor.length;
    if (at < 0) throw new JsonlMoved(file, "the position read before is not a line's end");
    bytes = Buffer.alloc(size - at);
    let got = 0;
    while (got < bytes.length) {
      const { bytesRead } = await handle.read(bytes, got, bytes.length - got, at + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    bytes = bytes.subarray(0, got);
  } finally {
    await handle.close();
  }
  if (!bytes.subarray(0, anchor.length).equals(anchor))
    throw new JsonlMoved(file, `line ${from.line} is not the one read before`);
  return parseJsonl(file, bytes.subarray(anchor.length).toString("utf8"), parse, from);
}
