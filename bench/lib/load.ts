// The POST /queue load generators of the enqueue benches: wrk when it is installed (C, one thread:
// it leaves the cores to the servers), else autocannon (Node, in this process); one token on every
// request, or several in turn (one customer each).
import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { TYPICAL_BODY } from "./admit.js";

/** What a load run gives, whichever tool ran it. */
export interface LoadResult {
  reqPerS: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Requests sent (answered or still in flight when the run stopped). */
  sent: number;
  accepted202: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

export function wrkAvailable(): boolean {
  try {
    execFileSync("wrk", ["--version"], { stdio: "ignore" });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version
    return (err as { status?: number }).status === 1;
  }
}

const ms = (v: string, unit: string) => Number(v) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1);

/**
 * The wrk script: one token as static headers (wrk builds the request once), or several, each
 * request the next of them (the requests are formatted once, in `init`, so rotating costs wrk a
 * table lookup per request).
 */
function wrkScript(tokens: readonly string[]): string {
  const body = JSON.stringify(JSON.stringify(TYPICAL_BODY));
  if (tokens.length === 1) {
    return [
      'wrk.method = "POST"',
      `wrk.body = ${body}`,
      'wrk.headers["content-type"] = "application/json"',
      `wrk.headers["authorization"] = "Bearer ${tokens[0]!}"`,
    ].join("\n");
  }
  return [
    `local tokens = {${tokens.map((t) => `"${t}"`).join(",")}}`,
    "local requests = {}",
    "local n = 0",
    "init = function(args)",
    "  for i, t in ipairs(tokens) do",
    `    requests[i] = wrk.format("POST", nil, {["content-type"] = "application/json", ["authorization"] = "Bearer " .. t}, ${body})`,
    "  end",
    "end",
    "request = function()",
    "  n = n % #requests + 1",
    "  return requests[n]",
    "end",
  ].join("\n");
}

export async function wrk(
  dir: string,
  url: string,
  tokens: readonly string[],
  seconds: number,
  connections: number,
): Promise<LoadResult> {
  const script = join(dir, `post-${tokens.length}.lua`);
  writeFileSync(script, wrkScript(tokens));
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script, `${url}/queue`];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (d: Buffer) => (text += d.toString()));
    child.stderr.on("data", (d: Buffer) => (text += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)),
    );
  });
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const lat = (pct: string) => {
    const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    return m ? ms(m[1]!, m[2]!) : 0;
  };
  const total = num(/(\d+) requests in/);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0;
  const accepted = total - non2xx;
  return {
    reqPerS: accepted / seconds,
    p50Ms: lat("50"),
    p99Ms: lat("99"),
    requests: total,
    sent: total,
    accepted202: accepted,
    non2xx,
    errors,
    timeouts: sock ? Number(sock[4]) : 0,
  };
}

export async function cannon(
  url: string,
  tokens: readonly string[],
  seconds: number,
  connections: number,
): Promise<LoadResult> {
  const body = JSON.stringify(TYPICAL_BODY);
  const headers = (t: string) => ({ "content-type": "application/json", authorization: `Bearer ${t}` });
  const res = await autocannon({
    url: `${url}/queue`,
    method: "POST",
    connections,
    pipelining: 1,
    duration: seconds,
    headers: headers(tokens[0]!),
    body,
    // Several tokens: each connection sends them in turn.
    ...(tokens.length > 1
      ? { requests: tokens.map((t) => ({ method: "POST" as const, headers: headers(t), body })) }
      : {}),
  });
  return {
    reqPerS: res["2xx"] / res.duration,
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    requests: res.requests.total,
    sent: res.requests.sent,
    accepted202: res.statusCodeStats?.["202"]?.count ?? 0,
    non2xx: res.non2xx,
    errors: res.errors,
    timeouts: res.timeouts,
  };
}

/** `wrk` unless `--tool autocannon` (or wrk is missing); `--tool wrk` insists. */
export function chooseTool(arg: string | undefined): "wrk" | "autocannon" {
  return arg === "autocannon" || (arg !== "wrk" && !wrkAvailable()) ? "autocannon" : "wrk";
}

/** One POST /queue load run of `seconds` on `connections` with the tool chosen. */
export function postLoad(
  tool: "wrk" | "autocannon",
  dir: string,
  url: string,
  tokens: readonly string[],
  seconds: number,
  connections: number,
): Promise<LoadResult> {
  return tool === "wrk"
    ? wrk(dir, url, tokens, seconds, connections)
    : cannon(url, tokens, seconds, connections);
}
