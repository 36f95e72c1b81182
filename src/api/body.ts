// Reads a JSON request body: size limit enforced while streaming (never buffering more than the
// limit), content type, empty and malformed bodies -> their problem codes.
import type { Context } from "hono";
import { AppError } from "../core/errors.js";
import { requestHeader } from "./respond.js";

export const BODY_LIMIT_BYTES = 10 * 1024 * 1024;

/**
 * @throws AppError request_too_large (413), unsupported_media_type (415), empty_body, invalid_json
 */
export async function readJsonBody(c: Context, limit = BODY_LIMIT_BYTES): Promise<unknown> {
  const type = requestHeader(c, "content-type");
  if (type !== undefined && type !== "" && !/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new AppError("unsupported_media_type", `expected application/json, got ${type.split(";")[0]}`);
  }
  const tooLarge = () =>
    new AppError("request_too_large", `request body exceeds ${limit} bytes`, {
      details: { limit_bytes: limit },
    });
  const declared = Number(requestHeader(c, "content-length"));
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();

  let text: string;
  if (Number.isFinite(declared) && requestHeader(c, "transfer-encoding") === undefined) {
    // A declared length within the limit (the HTTP parser reads exactly that much): the node adapter
    // hands the body over directly, without building a web Request and stream for it.
    text = await c.req.text();
  } else {
    // Chunked: count while streaming and stop at the limit, never buffering more than it.
    const body = c.req.raw.body;
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (body) {
      const reader: ReadableStreamDefaultReader<Uint8Array> = body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > limit) {
          await reader.cancel().catch(() => undefined);
          throw tooLarge();
        }
        chunks.push(value);
      }
    }
    text = Buffer.concat(chunks, size).toString("utf8");
  }
  // No bytes at all, or only whitespace.
  if (!/\S/.test(text)) throw new AppError("empty_body", "request body cannot be empty");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AppError("invalid_json", `request body is not valid JSON: ${(err as Error).message}`);
  }
}
