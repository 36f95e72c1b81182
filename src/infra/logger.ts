// The process logger (pino). Prompts and secrets are never logged above debug level.
import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";

export type { Logger };

/** The process's root logger; roles log through `child({ role })`. `destination`: default stdout. */
export function createLogger(opts: { level: string; destination?: DestinationStream }): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    base: {},
    redact: {
      // Bearer tokens and API keys: under any name they may be logged with, at the top or one level
      // down, and request headers two levels down (`req.headers.authorization`).
      paths: [
        "authorization",
        "*.authorization",
        "headers.authorization",
        "*.headers.authorization",
        "token",
        "*.token",
        "secret",
        "*.secret",
        "apiKey",
        "*.apiKey",
        "pepper",
        "*.pepper",
        // A Redis error carries the command it answered (ioredis: `err.command = { name, args }`), and
        // a script's arguments hold the request, prompt included: the name stays, the arguments go.
        "command.args",
        "*.command.args",
        "*.*.command.args",
      ],
      remove: true,
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return opts.destination === undefined ? pino(options) : pino(options, opts.destination);
}
