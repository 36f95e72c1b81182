// A WebSocket client of the gateway's `/ws` for tests: every message it receives, waits for a message
// (or the close) that matches, and a bounded wait for everything.
import { WebSocket, type ClientOptions } from "ws";

// Messages are the server's JSON objects; tests read their members freely.
export type WsMessage = Record<string, any>;

export interface WsClient {
  readonly ws: WebSocket;
  /** Every message received so far, in order. */
  readonly messages: WsMessage[];
  send(msg: unknown): void;
  /** The first message (from `from` on) that matches, waiting up to `timeoutMs`. */
  next(match: (m: WsMessage) => boolean, timeoutMs?: number, from?: number): Promise<WsMessage>;
  /** Resolves with the close code and reason once the connection has closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Closes (if open) and waits for the close. */
  close(): Promise<{ code: number; reason: string }>;
}

/** The gateway's WebSocket URL for an API URL (`http://…` → `ws://…/ws`). */
export function wsUrl(apiUrl: string, path = "/ws"): string {
  return apiUrl.replace(/^http/, "ws") + path;
}

/**
 * Opens a connection to `url` (with `token` as an `Authorization` header when given) and resolves once
 * it is open.
 * @throws the `ws` client's error when the upgrade is refused.
 */
export async function openWs(
  url: string,
  opts: { token?: string; headers?: Record<string, string>; options?: ClientOptions } = {},
): Promise<WsClient> {
  const headers = { ...opts.headers };
  if (opts.token !== undefined) headers["authorization"] = `Bearer ${opts.token}`;
  const ws = new WebSocket(url, { headers, ...opts.options });
  const messages: WsMessage[] = [];
  const waiters = new Set<() => void>();
  ws.on("message", (data, isBinary) => {
    if (!isBinary) messages.push(JSON.parse((data as Buffer).toString("utf8")) as WsMessage);
    for (const w of [...waiters]) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on("close", (code, reason) => {
      resolve({ code, reason: String(reason) });
      for (const w of [...waiters]) w();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  ws.on("error", () => undefined);

  return {
    ws,
    messages,
    send: (msg) => ws.send(typeof msg === "string" ? msg : JSON.stringify(msg)),
    next(match, timeoutMs = 15_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.slice(from).find(match);
          if (found) {
            done();
            resolve(found);
          } else if (ws.readyState === WebSocket.CLOSED) {
            done();
            reject(
              new Error(
                `closed before a matching message; got ${JSON.stringify(messages.map((m) => m.type))}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `no matching message in ${timeoutMs} ms; got ${JSON.stringify(messages.map((m) => m.type))}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    closed,
    async close() {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
      return closed;
    },
  };
}

/** Waits for the close of `client`, up to `timeoutMs`. */
export async function closedWithin(
  client: WsClient,
  timeoutMs = 15_000,
): Promise<{ code: number; reason: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      client.closed,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The HTTP status of an upgrade the gateway refuses (with its body), or 101 when it is accepted (with
 * the 101's headers).
 */
export async function upgradeStatus(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers?: Record<string, unknown> }> {
  const ws = new WebSocket(url, { headers });
  let accepted: Record<string, unknown> | undefined;
  ws.once("upgrade", (res) => (accepted = res.headers));
  return new Promise((resolve, reject) => {
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    ws.once("open", () => {
      ws.close();
      ws.once("close", () => resolve({ status: 101, body: "", ...(accepted ? { headers: accepted } : {}) }));
    });
    ws.once("error", (err) => {
      if (ws.readyState === WebSocket.CLOSED) reject(err);
    });
  });
}
