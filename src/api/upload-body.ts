// The body of an upload's PUT as chunks for the CAS, checked as they arrive: never more bytes than
// declared (refused at the first byte beyond), never fewer, and first bytes that are the declared
// image type. Nothing is buffered beyond the chunk in hand and the few bytes of the magic number.
import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { AppError, validationError } from "../core/errors.js";
import { sniffContentType } from "../core/media-type.js";
import type { UploadContentType } from "../core/upload-url.js";
import { nodeRequestOf } from "./respond.js";

/** Bytes that tell PNG, JPEG and WebP apart (a WebP's `RIFF....WEBP` is 12). */
const MAGIC_BYTES = 12;

/** The client closed the connection before the body was complete. */
export class UploadAborted extends Error {}

/**
 * The request body as chunks, read on demand: the node request in paused mode (read() as the
 * consumer pulls, so a slow disk slows the client instead of filling memory), or the web body.
 * Stopping early leaves the rest unread (the adapter drains or closes it after the answer) rather
 * than destroying the socket before the answer is written.
 * @throws UploadAborted when the connection ends before the body does.
 */
export function requestChunks(c: Context): AsyncIterable<Uint8Array> {
  const incoming = nodeRequestOf(c);
  if (incoming) return nodeChunks(incoming);
  return webChunks(c.req.raw.body);
}

async function* nodeChunks(incoming: IncomingMessage): AsyncGenerator<Uint8Array> {
  for (;;) {
    const chunk = incoming.read() as Buffer | null;
    if (chunk !== null) {
      yield chunk;
      continue;
    }
    if (incoming.readableEnded) return;
    if (incoming.destroyed) throw new UploadAborted("the client closed the connection");
    await new Promise<void>((resolve) => {
      const done = () => {
        incoming.off("readable", done);
        incoming.off("end", done);
        incoming.off("close", done);
        incoming.off("error", done);
        resolve();
      };
      incoming.on("readable", done);
      incoming.on("end", done);
      incoming.on("close", done);
      incoming.on("error", done);
    });
  }
}

async function* webChunks(body: ReadableStream<Uint8Array> | null): AsyncGenerator<Uint8Array> {
  if (!body) return;
  const reader = body.getReader();
  try {
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (err) {
        throw new UploadAborted((err as Error).message);
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** 413 for a body longer than the upload declared. */
export function tooManyBytes(declared: number): AppError {
  return new AppError(
    "request_too_large",
    `the body is longer than the ${declared} bytes the upload declared`,
    {
      details: { field: "body", constraint: "size", limit_bytes: declared },
    },
  );
}

/** 400 for a body shorter than the upload declared. */
export function tooFewBytes(received: number, declared: number): AppError {
  return validationError(
    "body",
    "size",
    `the body has ${received} bytes, fewer than the ${declared} the upload declared`,
  );
}

/** 415 for bytes that are not the declared type. */
export function wrongType(declared: UploadContentType, found: string): AppError {
  const what = found === "application/octet-stream" ? "not a PNG, JPEG or WebP image" : found;
  return new AppError(
    "unsupported_media_type",
    `the upload was declared ${declared} but its bytes are ${what}`,
    {
      details: { field: "content_type", constraint: "media_type" },
    },
  );
}

/**
 * `source` with the upload's checks: the first {@link MAGIC_BYTES} bytes must sniff as
 * `contentType` before any byte is passed on (415 {@link wrongType}), the byte that would pass
 * `bytes` is refused as it arrives (413 {@link tooManyBytes}), and an end before `bytes` is 400
 * ({@link tooFewBytes}).
 */
export async function* checkedUpload(
  source: AsyncIterable<Uint8Array>,
  expected: { readonly bytes: number; readonly contentType: UploadContentType },
): AsyncGenerator<Uint8Array> {
  let received = 0;
  let head: Uint8Array | undefined = new Uint8Array(0);
  const checkHead = (bytes: Uint8Array) => {
    const found = sniffContentType(bytes);
    if (found !== expected.contentType) throw wrongType(expected.contentType, found);
  };
  for await (const chunk of source) {
    if (chunk.byteLength === 0) continue;
    received += chunk.byteLength;
    if (received > expected.bytes) throw tooManyBytes(expected.bytes);
    if (head === undefined) {
      yield chunk;
      continue;
    }
    const joined: Uint8Array = Buffer.concat([head, chunk]);
    if (joined.byteLength < MAGIC_BYTES) {
      head = joined;
      continue;
    }
    checkHead(joined);
    head = undefined;
    yield joined;
  }
  if (received < expected.bytes) throw tooFewBytes(received, expected.bytes);
  // A whole upload shorter than the magic number (a few bytes declared): checked as it is.
  if (head !== undefined) {
    checkHead(head);
    yield head;
  }
}
