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
import {
  BODY_LIMIT_BYTES,
  BODY_UNCOUNTED_BYTES,
  JSON_BODY_LIMITS,
  type JsonLimits,
} from "../core/request-limits.js";
import { nodeRequestOf, requestHeader } from "./respond.js";
import { shownValue } from "./request-input.js";

/** Counters of the body reader, shown in the admin details of `GET /ready`. */
export interface BodyStats {
  /** Requests whose client closed the connection before its body was complete. */
  readonly client_aborts: number;
  /** Requests refused with 503 because the budget of bodies in flight was spent. */
  readonly budget_refusals: number;
  /** Bytes counted against the budget by the body reads going on now. */
  readonly bytes_in_flight: number;
  /** Body reads going on now. */
  readonly reads_in_flight: number;
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
  let reads = 0;
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
      throw new AppError(
        "unsupported_media_type",
        `expected application/json, got ${shownValue(type.split(";")[0] ?? "")}`,
      );
    }
    const declaredHeader = requestHeader(c, "content-length");
    const declared =
      declaredHeader !== undefined && requestHeader(c, "transfer-encoding") === undefined
        ? Number(declaredHeader)
        : NaN;
    if (declared > limit) throw tooLarge();
    // Bytes are reserved as they arrive, past the first BODY_UNCOUNTED_BYTES of the body: a connection
    // that declares a large body and sends nothing holds nothing (a declared length reserved up front
    // let a few idle connections refuse every body of every customer), and small bodies never wait
    // on the budget.
    reads++;
    const sink = new BodySink(limits, limit, reserve, tooLarge);
    try {
      const incoming = nodeRequestOf(c);
      // The route runs inside the request event, before the parser has read the body that came with
      // the headers (and the microtasks run in between): after the turn's reads it has (the usual
      // small request), and the body is taken from the stream's buffer without listeners.
      if (incoming && !incoming.complete) await new Promise<void>((resolve) => setImmediate(resolve));
      // (a body taken from the buffer is read already: no promise to wait for)
      const reading = incoming ? readNode(incoming, sink) : readWeb(c.req.raw.body, sink);
      if (reading !== undefined) await reading;
      const { scan, text } = sink;
      const json = text.end();
      // A body of a byte order mark and whitespace is as empty as one of whitespace.
      if (scan.blank || (text.hadBom && json.trim() === ""))
        throw new AppError("empty_body", "request body cannot be empty");
      try {
        return JSON.parse(json) as unknown;
      } catch (err) {
        throw new AppError("invalid_json", `request body is not valid JSON: ${(err as Error).message}`);
      }
    } catch (err) {
      if (!(err instanceof ClientAbort)) throw err;
      clientAborts++;
      opts.logger.debug(
        {
          requestId: c.get("requestId" as never) as unknown,
          received: sink.scan.bytes,
          declared: declaredHeader,
        },
        "client closed the connection during the request body",
      );
      throw new AppError(
        "invalid_json",
        "request body is not valid JSON: it ended early (the client closed the connection)",
        { details: { received_bytes: sink.scan.bytes } },
      );
    } finally {
      inFlight -= sink.reserved;
      reads--;
    }
  }

  return {
    readJson,
    stats: () => ({
      client_aborts: clientAborts,
      budget_refusals: budgetRefusals,
      bytes_in_flight: inFlight,
      reads_in_flight: reads,
    }),
  };
}

/** Where a body's chunks go: the size limit, the budget, the structure scan and the text. */
class BodySink {
  readonly scan: JsonScan;
  readonly text = new BodyText();
  /** Bytes of the body counted against the process's budget so far. */
  reserved = 0;

  constructor(
    limits: JsonLimits,
    private readonly limit: number,
    private readonly reserve: (bytes: number) => void,
    private readonly tooLarge: () => AppError,
  ) {
    this.scan = new JsonScan(limits);
  }

  /** @throws AppError as {@link BodyReader.readJson} (413, 503, a structure bound's 400). */
  push(chunk: Uint8Array): void {
    const bytes = this.scan.bytes + chunk.length;
    if (bytes > this.limit) throw this.tooLarge();
    const counted = Math.max(0, bytes - BODY_UNCOUNTED_BYTES) - this.reserved;
    if (counted > 0) {
      this.reserve(counted);
      this.reserved += counted;
    }
    this.scan.push(chunk);
    this.text.push(chunk);
  }
}

/**
 * Reads a node request's body into `sink`. Resolves at its end; rejects with what `sink.push`
 * throws (the rest of the body is left unread: the adapter drains or closes it after the answer), or
 * with {@link ClientAbort} when the connection ends first.
 */
function readNode(incoming: IncomingMessage, sink: BodySink): Promise<void> | undefined {
  // The whole body has usually arrived by the time the route reads it (a small request comes in one
  // packet with its headers): take it from the stream's buffer, with no listeners and no promise.
  if (incoming.complete && !incoming.readableFlowing && !incoming.destroyed) {
    let chunk: Buffer | null;
    while ((chunk = incoming.read() as Buffer | null) !== null) sink.push(chunk);
    return undefined;
  }
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
        sink.push(chunk);
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
async function readWeb(body: ReadableStream<Uint8Array> | null, sink: BodySink): Promise<void> {
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
      sink.push(next.value);
    } catch (err) {
      await reader.cancel().catch(() => undefined);
      throw err;
    }
  }
}

/** Bytes of small chunks gathered before they are decoded together. */
const STAGE_BYTES = 64 * 1024;

/**
 * The body's text. A one-chunk body (the usual small request) is decoded once at the end; longer
 * ones are decoded as they arrive, so no single step decodes the whole body. Chunks smaller than
 * 64 KiB are first copied together and decoded 64 KiB at a time: an HTTP/1.1 chunked body can come
 * as millions of 1-byte chunks, and a string per chunk held ~30 bytes of memory per byte of body
 * (10 MiB of them grew the process by 300 MiB, past what BODY_BUDGET_BYTES is meant to bound).
 * StringDecoder rather than TextDecoder: it keeps sequences split between chunks whole as well, and
 * decodes ASCII about five times faster (measured: 2.5 against 12 ms per 10 MiB). A UTF-8 byte order
 * mark at the start is dropped (RFC 8259 §8.1 lets a parser ignore it, and the web `Request.text()`
 * this reader replaced did).
 */
export class BodyText {
  #first: Uint8Array | undefined;
  #decoder: StringDecoder | undefined;
  #stage: Buffer | undefined;
  #staged = 0;
  readonly #parts: string[] = [];
  #hadBom = false;

  push(chunk: Uint8Array): void {
    if (this.#decoder === undefined) {
      if (this.#first === undefined) {
        this.#first = chunk;
        return;
      }
      this.#decoder = new StringDecoder("utf8");
      const first = this.#first;
      this.#first = undefined;
      this.#write(first);
    }
    this.#write(chunk);
  }

  /** Strings held so far (decoded parts, plus the chunk or the stage not decoded yet). */
  get pieces(): number {
    return this.#parts.length + (this.#first === undefined ? 0 : 1) + (this.#staged > 0 ? 1 : 0);
  }

  /** Whether {@link end} dropped a leading byte order mark. */
  get hadBom(): boolean {
    return this.#hadBom;
  }

  end(): string {
    let text: string;
    if (this.#decoder === undefined) {
      const first = this.#first;
      text =
        first === undefined ? "" : Buffer.from(first.buffer, first.byteOffset, first.length).toString("utf8");
    } else {
      this.#flush();
      this.#parts.push(this.#decoder.end());
      text = this.#parts.join("");
    }
    if (text.charCodeAt(0) !== 0xfeff) return text;
    this.#hadBom = true;
    return text.slice(1);
  }

  #write(chunk: Uint8Array): void {
    const decoder = this.#decoder!;
    if (chunk.length >= STAGE_BYTES) {
      this.#flush();
      this.#parts.push(decoder.write(chunk));
      return;
    }
    if (this.#staged + chunk.length > STAGE_BYTES) this.#flush();
    this.#stage ??= Buffer.allocUnsafe(STAGE_BYTES);
    this.#stage.set(chunk, this.#staged);
    this.#staged += chunk.length;
  }

  /** Decodes the staged bytes (the decoder keeps a sequence cut at the end for the next write). */
  #flush(): void {
    if (this.#staged === 0) return;
    this.#parts.push(this.#decoder!.write(this.#stage!.subarray(0, this.#staged)));
    this.#staged = 0;
  }
}
