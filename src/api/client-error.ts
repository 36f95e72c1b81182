// Answers to requests node's HTTP parser refuses before any route sees them — headers past its
// limit, a request too slow to arrive, a malformed one: problem documents with a request id, as every
// other answer, instead of node's bare status lines; the connection is then closed.
import { STATUS_CODES, maxHeaderSize } from "node:http";
import type { Duplex } from "node:stream";
import { STATUS_OF, type ErrorCode } from "../core/errors.js";
import type { IdGenerator } from "../core/ids.js";
import { problemBody } from "./problem.js";
import { requestIdHeaders } from "./respond.js";

/** The answer per node error code; any other parser error is a malformed request. */
const ANSWERS: Readonly<Record<string, readonly [ErrorCode, string]>> = {
  HPE_HEADER_OVERFLOW: ["headers_too_large", `the request's headers exceed ${maxHeaderSize} bytes`],
  ERR_HTTP_REQUEST_TIMEOUT: [
    "request_timeout",
    "the request did not arrive in time; the connection is closed",
  ],
  ERR_HTTP_HEADERS_TIMEOUT: [
    "request_timeout",
    "the request's headers did not arrive in time; the connection is closed",
  ],
};

/** The server's `clientError` listener (node then writes nothing of its own). */
export function clientErrorListener(ids: IdGenerator) {
  return (err: Error & { code?: string }, socket: Duplex): void => {
    const inProgress = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    // Nothing can be answered on a connection the client closed, or in the middle of an answer.
    if (err.code === "ECONNRESET" || !socket.writable || inProgress === true) {
      socket.destroy();
      return;
    }
    const [code, detail] = ANSWERS[err.code ?? ""] ?? ["validation_error", "malformed HTTP request"];
    const status = STATUS_OF[code];
    const id = ids("request");
    const details = code === "validation_error" ? { field: "request" } : undefined;
    const body = JSON.stringify(problemBody(code, status, detail, id, details));
    const headers: Record<string, string> = {
      "content-type": "application/problem+json",
      "content-length": String(Buffer.byteLength(body)),
      ...requestIdHeaders(id),
      connection: "close",
    };
    const head = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("");
    // (destroyed once written: the server allows half-open sockets, which would wait for a timeout)
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n${head}\r\n${body}`, () =>
      socket.destroy(),
    );
  };
}
