// Reads JSON request bodies within bounds: content type and declared size first, then a byte budget
// shared by every body read of the process, then each chunk scanned for structure bounds as it
// arrives (core/json-scan.ts), so a hostile body is refused before the rest of it is read; JSON.parse
// runs only on bodies that passed. A client that goes away mid-body is counted and logged at debug.
import type { IncomingMessage } from "node:http";
import { StringDecoder } from "node:string_decoder";
import type { Context } from "hono";
import type { Logger } from "pino";
import { AppError } from "../core/errors.js";
import { JsonScan } from "../core/json-scan.js";
import { BODY_LIMIT_BYTES, JSON_BODY_LIMITS, type JsonLimits } from "../core/request-limits.js";
import { nodeRequestOf, requestHeader } from "./respond.js";

/** Counters of the body reader, shown in the admin details of `GET /ready`. */
export interface BodyStats {
  /** Requests whose client closed the connection before its body was complete. */
  readonly client_aborts: number;
  /** Requests refused with 503 because the budget of bodies in flight was spent. */
  readonly budget_refusals: number;
  /** Bytes reserved by the body reads going on now. */
  readonly bytes_in_flight: number;
}

export interface BodyReaderOptions {
  /** Bytes that all body reads of the process may hold at once (`BODY_BUDGET_BYTES`). */
  readonly budgetBytes: number;
  readonly logger: Logger;
  /** Largest body (413 above it); default 10 MiB. */
  readonly limitBytes?: number;
  /** Structure bounds; default {@link JSON_BODY_LIMITS}. */
  readonly limits?: JsonLimits;
}

export interface BodyReader {
  /**
   * Reads and parses the request's JSON body.
   * @throws AppError 415 `unsupported_media_type` (a content type other than JSON); 413
   *   `request_too_large` (declared or streamed past the limit, before buffering more); 503
   *   `unavailable` with `Retry-After` (the budget of bodies in flight is spent); 400 `empty_body`;
   *   400 `validation_error` (a structure bound, as `JsonScan.push`); 400 `invalid_json` (malformed,
   *   or cut short because the client closed the connection).
   */
  readJson(c: Context): Promise<unknown>;
  stats(): BodyStats;
}

/** The client closed the connection before the body was complete. */
class ClientAbort extends Error {}

/**
 * A body reader for one process: its budget and counters are shared by every request it reads.
 */
export function createBodyReader(opts: BodyReaderOptions): BodyReader {
  const limit = opts.limitBytes ?? BODY_LIMIT_BYTES;
  const limits = opts.limits ?? JSON_BODY_LIMITS;
  let inFlight = 0;
  let clientAborts = 0;
  let budgetRefusals = 0;

  const tooLarge = () =>
    new AppError("request_too_large", `request body exceeds ${limit} bytes`, {
      details: { limit_bytes: limit },
    });

  const reserve = (bytes: number): void => {
    if (inFlight + bytes > opts.budgetBytes) {
      budgetRefusals++;
      opts.logger.debug({ bytes, inFlight, budget: opts.budgetBytes }, "request body refused: budget spent");
      throw new AppError("unavailable", "too many large request bodies in flight; retry shortly", {
        headers: { "retry-after": "1" },
      });
    }
    inFlight += bytes;
  };

  async function readJson(c: Context): Promise<unknown> {
    const type = requestHeader(c, "content-type");
    if (type !== undefined && type !== "" && !/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
      throw new AppError("unsupported_media_type", `expected application/json, got ${type.split(";")[0]}`);
    }
    const declaredHeader = requestHeader(c, "content-length");
    const declared =
      declaredHeader !== undefined && requestHeader(c, "transfer-encoding") === undefined
        ? Number(declaredHeader)
        : NaN;
    if (declared > limit) throw tooLarge();
    // A declared length is reserved whole before reading (the HTTP parser delivers no more); a
    // streamed body reserves as its chunks arrive.
    const upFront = Number.isSafeInteger(declared) && declared >= 0;
    let reserved = 0;
    if (upFront) {
      reserve(declared);
      reserved = declared;
    }
    const scan = new JsonScan(limits);
    const text = new BodyText();
    const onChunk = (chunk: Uint8Array) => {
      if (scan.bytes + chunk.length > limit) throw tooLarge();
      if (!upFront) {
        reserve(chunk.length);
        reserved += chunk.length;
      }
      scan.push(chunk);
      text.push(chunk);
    };
    try {
      const incoming = nodeRequestOf(c);
      await (incoming ? readNode(incoming, onChunk) : readWeb(c.req.raw.body, onChunk));
      if (scan.blank) throw new AppError("empty_body", "request body cannot be empty");
      try {
        return JSON.parse(text.end()) as unknown;
      } catch (err) {
        throw new AppError("invalid_json", `request body is not valid JSON: ${(err as Error).message}`);
      }
    } catch (err) {
      if (!(err instanceof ClientAbort)) throw err;
      clientAborts++;
      opts.logger.debug(
        { requestId: c.get("requestId" as never) as unknown, received: scan.bytes, declared: declaredHeader },
        "client closed the connection during the request body",
      );
      throw new AppError(
        "invalid_json",
        "request body is not valid JSON: it ended early (the client closed the connection)",
        { details: { received_bytes: scan.bytes } },
      );
    } finally {
      inFlight -= reserved;
    }
  }

  return {
    readJson,
    stats: () => ({
      client_aborts: clientAborts,
      budget_refusals: budgetRefusals,
      bytes_in_flight: inFlight,
    }),
  };
}

/**
 * Reads a node request's body into `onChunk`. Resolves at its end; rejects with what `onChunk`
 * throws (the rest of the body is left unread: the adapter drains or closes it after the answer), or
 * with {@link ClientAbort} when the connection ends first.
 */
function readNode(incoming: IncomingMessage, onChunk: (chunk: Uint8Array) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: Error) => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      incoming.off("close", onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onData = (chunk: Buffer) => {
      try {
        onChunk(chunk);
      } catch (err) {
        incoming.pause();
        settle(err as Error);
      }
    };
    const onEnd = () => settle();
    const onError = (err: Error) => settle(new ClientAbort(err.message));
    const onClose = () => settle(incoming.readableEnded ? undefined : new ClientAbort("closed"));
    if (incoming.readableEnded) return resolve();
    if (incoming.destroyed) return reject(new ClientAbort("closed"));
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onError);
    incoming.on("close", onClose);
  });
}

/** As {@link readNode}, for a web stream (`app.request()`, other runtimes). */
async function readWeb(
  body: ReadableStream<Uint8Array> | null,
  onChunk: (chunk: Uint8Array) => void,
): Promise<void> {
  if (!body) return;
  const reader = body.getReader();
  for (;;) {
    let next: Awaited<ReturnType<typeof reader.read>>;
    try {
      next = await reader.read();
    } catch (err) {
      throw new ClientAbort((err as Error).message);
    }
    if (next.done) return;
    try {
      onChunk(next.value);
    } catch (err) {
      await reader.cancel().catch(() => undefined);
      throw err;
    }
  }
}

/**
 * The body's text. A one-chunk body (the usual small request) is decoded once at the end; longer
 * ones are decoded chunk by chunk as they arrive, so no single step decodes the whole body.
 * StringDecoder rather than TextDecoder: it keeps sequences split between chunks whole as well, and
 * decodes ASCII about five times faster (measured: 2.5 against 12 ms per 10 MiB).
 */
class BodyText {
  #first: Uint8Array | undefined;
  #decoder: StringDecoder | undefined;
  readonly #parts: string[] = [];

  push(chunk: Uint8Array): void {
    if (this.#decoder === undefined) {
      if (this.#first === undefined) {
        this.#first = chunk;
        return;
      }
      this.#decoder = new StringDecoder("utf8");
      this.#parts.push(this.#decoder.write(this.#first));
      this.#first = undefined;
    }
    this.#parts.push(this.#decoder.write(chunk));
  }

  end(): string {
    if (this.#decoder === undefined) {
      const first = this.#first;
      return first === undefined
        ? ""
        : Buffer.from(first.buffer, first.byteOffset, first.length).toString("utf8");
    }
    this.#parts.push(this.#decoder.end());
    return this.#parts.join("");
  }
}
