// The process logger (pino). Prompts and secrets are never logged above debug level.
import { pino, type Logger } from "pino";

export type { Logger };

/** The process's root logger; roles log through `child({ role })`. */
export function createLogger(opts: { level: string }): Logger {
  return pino({
    level: opts.level,
    base: {},
    redact: {
      paths: ["authorization", "*.authorization", "token", "*.token", "secret", "*.secret"],
      remove: true,
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
