// The process logger (pino). Prompts and secrets are never logged above debug level.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(opts: { level: string; name?: string }): Logger {
  return pino({
    level: opts.level,
    base: opts.name ? { role: opts.name } : {},
    redact: {
      paths: ["authorization", "*.authorization", "token", "*.token", "secret", "*.secret"],
      remove: true,
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
