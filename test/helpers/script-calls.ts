// Scheduler script calls as Redis sees them (MONITOR): which script an EVALSHA or EVAL runs, and its ARGV.
import { createHash } from "node:crypto";
import { scriptSources, type ScriptName } from "../../src/queues/scripts.js";

const PRINTABLE_ESCAPES: Readonly<Record<number, string>> = {
  0x5c: "\\\\",
  0x0a: "\\n",
  0x0d: "\\r",
  0x09: "\\t",
  0x07: "\\a",
  0x08: "\\b",
};

/**
 * An argument as ioredis reports it from MONITOR: Redis quotes it byte by byte (sdscatrepr), and
 * ioredis turns only the escaped quotes back.
 */
function asMonitored(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    const escaped = PRINTABLE_ESCAPES[byte];
    if (escaped !== undefined) out += escaped;
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** Each script by what an EVALSHA (its SHA-1) or an EVAL (its source) names it by. */
const byRef = new Map<string, ScriptName>();
for (const [name, lua] of scriptSources()) {
  byRef.set(createHash("sha1").update(lua).digest("hex"), name);
  byRef.set(asMonitored(lua), name);
}

/**
 * The scheduler script a command runs (`args` as ioredis's "monitor" event gives them: the command,
 * then its arguments) and its ARGV (ARGV[1], the prefix, first); undefined for any other command.
 */
export function scriptCallOf(args: readonly string[]): { name: ScriptName; argv: string[] } | undefined {
  const command = args[0]?.toLowerCase();
  if (command !== "evalsha" && command !== "eval") return undefined;
  const name = byRef.get(args[1] ?? "");
  if (name === undefined) return undefined;
  return { name, argv: args.slice(3 + Number(args[2])) };
}
