// MONITOR on a plain socket: every command the server runs, as its arguments. (ioredis's monitor()
// takes monitor lines that arrive in the same read as MONITOR's own "OK" for replies to commands
// it never sent, "Command queue state error", which a busy shared server makes likely.)
import { connect } from "node:net";

export interface RedisMonitor {
  /** Stops watching and closes the connection; resolves once it is closed. */
  close(): Promise<void>;
}

/** The arguments of one monitor line: `+<time> [<db> <client>] "arg" "arg" …` (quoted, C escapes). */
export function monitorArgs(line: string): string[] {
  const args: string[] = [];
  const start = line.indexOf("] ");
  if (!line.startsWith("+") || start < 0) return args;
  for (const m of line.slice(start + 2).matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    args.push(
      m[1]!.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => {
        if (e.startsWith("x") && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
        return ({ n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b" } as Record<string, string>)[e] ?? e;
      }),
    );
  }
  return args;
}

/** Calls `onCommand` with the arguments of every command the server at `url` runs from now on. */
export async function monitorRedis(url: string, onCommand: (args: string[]) => void): Promise<RedisMonitor> {
  const u = new URL(url);
  const socket = connect(Number(u.port), u.hostname);
  socket.setEncoding("latin1");
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  let buffer = "";
  let started: () => void = () => undefined;
  let failed: (err: Error) => void = () => undefined;
  const ok = new Promise<void>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  socket.on("error", (err) => failed(err));
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf("\r\n")) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (line === "+OK") started();
      else if (line.startsWith("-")) failed(new Error(`MONITOR: ${line.slice(1)}`));
      else onCommand(monitorArgs(line));
    }
  });
  socket.write("MONITOR\r\n");
  try {
    await ok;
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return {
    async close() {
      socket.destroy();
      await closed;
    },
  };
}
