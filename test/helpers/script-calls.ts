// Scheduler script calls as Redis sees them (MONITOR): which script an EVALSHA or EVAL runs, and its ARGV.
import { createHash } from "node:crypto";
import { scriptSources, type ScriptName } from "../../src/queues/scripts.js";

/**
 * Each script by what an EVALSHA (its SHA-1) or an EVAL (its source) names it by. monitorRedis gives
 * arguments unescaped, one character per byte (latin1), so the source is keyed by its bytes the same way.
 */
const byRef = new Map<string, ScriptName>();
for (const [name, lua] of scriptSources()) {
  byRef.set(createHash("sha1").update(lua).digest("hex"), name);
  byRef.set(Buffer.from(lua, "utf8").toString("latin1"), name);
}

/**
 * The scheduler script a command runs (`args` as monitorRedis gives them: the command, then its
 * arguments) and its ARGV (ARGV[1], the prefix, first); undefined for any other command.
 */
export function scriptCallOf(args: readonly string[]): { name: ScriptName; argv: string[] } | undefined {
  const command = args[0]?.toLowerCase();
  if (command !== "evalsha" && command !== "eval") return undefined;
  const name = byRef.get(args[1] ?? "");
  if (name === undefined) return undefined;
  return { name, argv: args.slice(3 + Number(args[2])) };
}
