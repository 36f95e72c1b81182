// Fails a test file that leaves something running behind it: a child process, a socket or server, a
// timer that keeps the process alive, or an interval (even an unref'd one). Runs in every test
// process (vitest `setupFiles`): it notes what is open before the file is imported, and after the
// file's own afterAll hooks it waits a short grace for what is closing to finish closing, then
// fails the file with a list of what is still open. What the test process itself keeps open (its
// channel to vitest, stdio) is in the first snapshot and never counts.
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, inject } from "vitest";

/** How long what a file closed may take to be gone (sockets closing, a process exiting). */
const GRACE_MS = 3_000;

/** Counts of `process.getActiveResourcesInfo()` by type (resources that keep the process alive). */
function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/** Live (not zombie) child processes of this process, from /proc (Linux); empty elsewhere. */
function childProcesses(): Map<number, string> {
  const out = new Map<number, string>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ")".
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) !== process.pid || state === "Z") continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.set(Number(entry), cmd);
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

// Timers are noted as they are created, with where (the stack is only formatted for a report).
// Intervals never end by themselves, and unref'd ones do not show in getActiveResourcesInfo: an
// interval counts as open until node has destroyed its timer (clearInterval or clearTimeout). A
// timeout ends by itself; one still pending and ref'd after the grace shows as a `Timeout` resource,
// and the notes say where it was made.
interface Timers {
  readonly intervals: Map<NodeJS.Timeout, Error>;
  readonly timeouts: Map<NodeJS.Timeout, Error>;
}
const TIMERS = Symbol.for("render-gateway.leak-check.timers");
const globals = globalThis as typeof globalThis & { [TIMERS]?: Timers };
/** node marks a timer destroyed once it has fired (timeouts) or was cleared (an internal flag). */
const isDone = (timer: NodeJS.Timeout) => (timer as unknown as { _destroyed?: boolean })._destroyed === true;
if (!globals[TIMERS]) {
  const timers: Timers = { intervals: new Map(), timeouts: new Map() };
  globals[TIMERS] = timers;
  const realSetInterval = globalThis.setInterval;
  const realSetTimeout = globalThis.setTimeout;
  let created = 0;
  globalThis.setInterval = Object.assign(
    ((...args: Parameters<typeof realSetInterval>) => {
      const timer = realSetInterval(...args);
      timers.intervals.set(timer, new Error("interval created"));
      return timer;
    }) as typeof realSetInterval,
    realSetInterval,
  );
  globalThis.setTimeout = Object.assign(
    ((...args: Parameters<typeof realSetTimeout>) => {
      const timer = realSetTimeout(...args);
      timers.timeouts.set(timer, new Error("timeout created"));
      if (++created % 1_000 === 0)
        for (const t of timers.timeouts.keys()) if (isDone(t)) timers.timeouts.delete(t);
      return timer;
    }) as typeof realSetTimeout,
    realSetTimeout,
  );
}
const { intervals, timeouts } = globals[TIMERS];

/** Where a timer was created: the first frames below the wrapper, outside node's internals. */
const where = (created: Error) =>
  (created.stack ?? "")
    .split("\n")
    .slice(2)
    .filter((l) => !l.includes("node:internal"))
    .slice(0, 4)
    .join("\n");

const resourcesBefore = activeResources();
const childrenBefore = new Set(childProcesses().keys());
const intervalsBefore = new Set(intervals.keys());
const timeoutsBefore = new Set(timeouts.keys());

/** What is open now and was not before the file: empty when nothing leaked. */
function leaks(): string[] {
  const found: string[] = [];
  for (const [type, n] of activeResources()) {
    const extra = n - (resourcesBefore.get(type) ?? 0);
    if (extra > 0) found.push(`${extra} × ${type}`);
  }
  for (const [pid, cmd] of childProcesses()) {
    if (!childrenBefore.has(pid)) found.push(`child process ${pid}: ${cmd}`);
  }
  for (const [timer, created] of intervals) {
    if (isDone(timer)) intervals.delete(timer);
    else if (!intervalsBefore.has(timer)) found.push(`interval created\n${where(created)}`);
  }
  // Counted by identity as well: where files share a process, a timer an earlier file left that
  // ends meanwhile would hide one of this file's from the counts above.
  const pending = [...timeouts].filter(([t]) => !isDone(t) && t.hasRef() && !timeoutsBefore.has(t));
  if (pending.length > 0 && !found.some((f) => f.endsWith("× Timeout")))
    found.push(`${pending.length} × Timeout (created by this file)`);
  return found;
}

/** The port of the run's redis-server (system tests), to name connections to it. */
const redisPort = (() => {
  try {
    return new URL(inject("redisUrl")).port;
  } catch {
    return "";
  }
})();

/** Sockets and servers as node describes them, to name the leaked ones (diagnostics only). */
function describeHandles(): string[] {
  const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  if (typeof getHandles !== "function") return [];
  const out: string[] = [];
  for (const h of getHandles.call(process)) {
    const s = h as {
      constructor?: { name?: string };
      remoteAddress?: string;
      remotePort?: number;
      localPort?: number;
      address?: () => unknown;
      pid?: number;
    };
    const kind = s.constructor?.name ?? typeof h;
    if (kind === "Socket" && s.remotePort !== undefined)
      out.push(
        `Socket ${String(s.localPort)} → ${String(s.remoteAddress)}:${s.remotePort}` +
          (String(s.remotePort) === redisPort ? " (the run's redis-server)" : ""),
      );
    else if (kind === "Server" && typeof s.address === "function")
      out.push(`Server ${JSON.stringify(s.address())}`);
    else if (kind === "ChildProcess") out.push(`ChildProcess ${String(s.pid)}`);
  }
  return out;
}

afterAll(async () => {
  const deadline = Date.now() + GRACE_MS;
  let found = leaks();
  while (found.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    found = leaks();
  }
  if (found.length > 0) {
    const handles = describeHandles();
    const pendingAt = new Map<string, number>();
    for (const [t, created] of timeouts) {
      if (isDone(t) || !t.hasRef() || timeoutsBefore.has(t)) continue;
      const at = where(created);
      pendingAt.set(at, (pendingAt.get(at) ?? 0) + 1);
    }
    const pending = [...pendingAt].map(([at, n]) => `${n} ×\n${at}`);
    throw new Error(
      `the test file left these open (still there ${GRACE_MS} ms after its last afterAll):\n- ` +
        found.join("\n- ") +
        (handles.length > 0 ? `\nsockets, servers and processes open now:\n- ${handles.join("\n- ")}` : "") +
        (pending.length > 0 ? `\ntimeouts pending, created\n- ${pending.join("\n- ")}` : ""),
    );
  }
}, GRACE_MS + 5_000);
