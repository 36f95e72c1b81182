// The one HTTP client for customer-given URLs (input images; webhook deliveries later): an undici Agent
// whose connector resolves names itself and refuses every address the outbound policy refuses, at
// connect time, so DNS rebinding cannot get through; no redirects, deadlines and a body limit.
import { lookup as dnsLookup, Resolver } from "node:dns/promises";
import type { LookupAddress, LookupOptions } from "node:dns";
import type { LookupFunction } from "node:net";
import { rootCertificates } from "node:tls";
import { Agent, buildConnector, errors as undiciErrors } from "undici";
import {
  OutboundError,
  type OutboundHttp,
  type OutboundRequest,
  type OutboundResponse,
} from "../core/ports.js";
import {
  hostProblem,
  isPrivateAddress,
  outboundUrlProblem,
  type OutboundPolicy,
} from "../core/webhook-target.js";

/**
 * Resolves a host name to all of its addresses: by default DNS through c-ares ({@link dnsResolver}),
 * or the system resolver when private targets are allowed; tests inject one.
 */
export type Resolve = (hostname: string) => Promise<readonly LookupAddress[]>;

/** Options of {@link createOutboundHttp}. */
export interface OutboundHttpOptions {
  readonly policy: OutboundPolicy;
  /** Longest wait for the TCP (and TLS) connection. */
  readonly connectTimeoutMs: number;
  /** Default deadline of a whole exchange, connecting included; a request may set its own. */
  readonly timeoutMs: number;
  /** Default largest response body in bytes; a request may set its own. */
  readonly maxBytes: number;
  readonly resolve?: Resolve;
  /**
   * Extra trusted CA certificates (PEM; `OUTBOUND_CA_FILE`), added to Node's bundled roots: an
   * internal store's CA, or a test server's.
   */
  readonly extraCa?: string;
}

/**
 * The system resolver (`dns.lookup`, getaddrinfo: /etc/hosts, search domains): used only when private
 * targets are allowed, where internal names are the point. getaddrinfo runs on libuv's thread pool,
 * and libuv lets at most half of it (2 threads) do lookups at once for the whole process.
 */
const systemResolve: Resolve = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Options of {@link dnsResolver}. */
export interface DnsResolverOptions {
  /** Longest wait for the answers (both families, retries included). */
  readonly timeoutMs: number;
  /** DNS servers (`ip` or `ip:port`); default the system's (/etc/resolv.conf). */
  readonly servers?: readonly string[];
}

/**
 * The resolver of customer-given names: DNS queries through c-ares (`dns.Resolver`), A and AAAA at
 * once, given up after `timeoutMs`. Not `dns.lookup`: getaddrinfo holds a thread-pool thread for as
 * long as the name's DNS takes to answer, and libuv runs at most two of them at a time per process,
 * so a customer URL on a name whose DNS never answers held every other lookup of the process —
 * other customers' fetches, the worker's new backend connections, Redis reconnects by name — for 8 s
 * and more per name (measured with a resolver that never answers). c-ares waits on sockets, not on
 * threads. It reads no /etc/hosts: for public targets only DNS answers count.
 */
export function dnsResolver(opts: DnsResolverOptions): Resolve {
  // c-ares doubles the timeout on its retry: two tries of a third each fit in the whole.
  const resolver = new Resolver({ timeout: Math.max(50, Math.floor(opts.timeoutMs / 3)), tries: 2 });
  if (opts.servers !== undefined) resolver.setServers([...opts.servers]);
  return async (hostname) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    const all: LookupAddress[] = [];
    if (v4.status === "fulfilled") for (const address of v4.value) all.push({ address, family: 4 });
    if (v6.status === "fulfilled") for (const address of v6.value) all.push({ address, family: 6 });
    if (all.length > 0) return all;
    const codes = [v4, v6].map((r) =>
      r.status === "rejected" ? (r.reason as { code?: unknown } | null)?.code : "ENODATA",
    );
    // getaddrinfo's codes, which the callers map: no such name, or no answer (yet).
    const err: NodeJS.ErrnoException = new Error("the target host name does not resolve");
    err.code = codes.every((c) => c === "ENOTFOUND" || c === "ENODATA") ? "ENOTFOUND" : "EAI_AGAIN";
    throw err;
  };
}

const REFUSED_TARGET = "the target resolves to a private or internal address";

/**
 * A `lookup` for `net.connect`/`tls.connect`: resolves through `resolve` and fails with an
 * OutboundError `blocked_target` when any address is refused (unless `allowPrivate`), so a socket can
 * only connect to an address that was checked. A name that answers one public and one private address
 * is refused whole: that is what a rebinding attack looks like.
 */
export function guardedLookup(resolve: Resolve, allowPrivate: boolean): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    resolve(hostname).then(
      (all) => {
        if (!allowPrivate && all.some((a) => isPrivateAddress(a.address))) {
          callback(new OutboundError("blocked_target", REFUSED_TARGET), "");
          return;
        }
        const family = options.family === "IPv4" ? 4 : options.family === "IPv6" ? 6 : options.family;
        const usable = family === 4 || family === 6 ? all.filter((a) => a.family === family) : all;
        const first = usable[0];
        if (first === undefined) {
          const err: NodeJS.ErrnoException = new Error(`no address for the target host`);
          err.code = "ENOTFOUND";
          callback(err, "");
        } else if (options.all === true) callback(null, [...usable]);
        else callback(null, first.address, first.family);
      },
      (err: unknown) => callback(err as NodeJS.ErrnoException, ""),
    );
  };
}

/**
 * The Agent's connector: before connecting it checks scheme, port and the literal host (`net`
 * resolves IP literals without calling `lookup`); names resolve through {@link guardedLookup}; once
 * connected, the peer address itself is checked again.
 */
function guardedConnector(opts: OutboundHttpOptions): buildConnector.connector {
  const { policy } = opts;
  const resolve =
    opts.resolve ?? (policy.allowPrivate ? systemResolve : dnsResolver({ timeoutMs: opts.connectTimeoutMs }));
  const base = buildConnector({
    timeout: opts.connectTimeoutMs,
    lookup: guardedLookup(resolve, policy.allowPrivate),
    ...(opts.extraCa === undefined ? {} : { ca: [...rootCertificates, opts.extraCa] }),
  });
  return (options, callback) => {
    const port = options.port === "" ? (options.protocol === "http:" ? 80 : 443) : Number(options.port);
    let refusal: OutboundError | undefined;
    if (options.protocol !== "https:" && !(policy.allowPrivate && options.protocol === "http:"))
      refusal = new OutboundError("bad_url", "the URL must use https");
    else if (!policy.allowedPorts.includes(port))
      refusal = new OutboundError("blocked_port", `the URL names port ${port}, which is not allowed`);
    else if (!policy.allowPrivate && hostProblem(options.hostname) !== undefined)
      refusal = new OutboundError("blocked_target", REFUSED_TARGET);
    if (refusal !== undefined) {
      callback(refusal, null);
      return;
    }
    base(options, (err, socket) => {
      if (err !== null) {
        callback(err, null);
        return;
      }
      const peer = socket.remoteAddress;
      if (!policy.allowPrivate && (peer === undefined || isPrivateAddress(peer))) {
        socket.destroy();
        callback(new OutboundError("blocked_target", REFUSED_TARGET), null);
        return;
      }
      callback(null, socket);
    });
  };
}

/** The OutboundError in `err` or its causes (undici may wrap what the connector gave it). */
function outboundCause(err: unknown): OutboundError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof OutboundError) return e;
  }
  return undefined;
}

/** Maps whatever an exchange threw to an OutboundError with a message that names no address. */
function toOutboundError(err: unknown, deadline: AbortSignal, caller: AbortSignal | undefined): unknown {
  const known = outboundCause(err);
  if (known) return known;
  if (caller?.aborted) return err; // the caller's own abort stays the caller's
  if (
    deadline.aborted ||
    err instanceof undiciErrors.ConnectTimeoutError ||
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError
  ) {
    return new OutboundError("timeout", "the target did not answer in time", { cause: err });
  }
  const code = (err as { code?: unknown } | null)?.code;
  const why =
    code === "ENOTFOUND" || code === "EAI_AGAIN"
      ? "the target host name does not resolve"
      : code === "ECONNREFUSED"
        ? "the target refused the connection"
        : typeof code === "string" && /^(ERR_TLS|CERT_|UNABLE_|DEPTH_|SELF_SIGNED|HOSTNAME_)/.test(code)
          ? "the target's TLS certificate is not valid for it"
          : "the connection to the target failed";
  return new OutboundError("network", why, { cause: err });
}

/**
 * The undici Agent behind the client: every connection it opens passes the connect-time checks. For
 * callers that need undici's own API (streaming, interceptors); it follows no redirects by itself.
 */
export function createGuardedAgent(opts: OutboundHttpOptions): Agent {
  return new Agent({
    connect: guardedConnector(opts),
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    // Connections are short-lived and per customer host: do not keep many of them around.
    keepAliveTimeout: 1_000,
    connections: 8,
  });
}

/**
 * Creates the outbound client. It owns one guarded undici Agent (connection pool); `close()` ends it.
 * Inject it where customer-given URLs are called; never make it a module singleton.
 */
export function createOutboundHttp(opts: OutboundHttpOptions): OutboundHttp {
  const agent = createGuardedAgent(opts);
  let closed: Promise<void> | undefined;

  async function request(req: OutboundRequest): Promise<OutboundResponse> {
    // The cheap literal checks first (a clear reason for a bad URL); the connector repeats them on
    // the address it connects to, which is the check that holds.
    const problem = outboundUrlProblem(req.url, opts.policy);
    if (problem !== undefined) {
      const code =
        problem.reason === "port" ? "blocked_port" : problem.reason === "host" ? "blocked_target" : "bad_url";
      throw new OutboundError(code, `the URL ${problem.message}`);
    }
    const maxBytes = req.maxBytes ?? opts.maxBytes;
    const timeoutMs = req.timeoutMs ?? opts.timeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = req.signal ? AbortSignal.any([deadline, req.signal]) : deadline;
    try {
      const res = await agent.request({
        origin: new URL(req.url).origin,
        path: pathOf(req.url),
        method: req.method ?? "GET",
        headers: { "user-agent": "render-gateway", ...req.headers },
        ...(req.body === undefined ? {} : { body: req.body }),
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      if (res.statusCode >= 300 && res.statusCode < 400) {
        discard(res.body);
        throw new OutboundError(
          "redirect",
          `the target answered with a redirect (${res.statusCode}); redirects are not followed`,
        );
      }
      const declared = Number(res.headers["content-length"]);
      if (req.truncate !== true && Number.isFinite(declared) && declared > maxBytes) {
        discard(res.body);
        throw new OutboundError("too_large", `the answer is larger than ${maxBytes} bytes`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > maxBytes) {
          discard(res.body);
          if (req.truncate === true) {
            chunks.push(chunk.subarray(0, chunk.byteLength - (size - maxBytes)));
            size = maxBytes;
            break;
          }
          throw new OutboundError("too_large", `the answer is larger than ${maxBytes} bytes`);
        }
        chunks.push(chunk);
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) {
        if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
      }
      return { status: res.statusCode, headers, body: new Uint8Array(Buffer.concat(chunks, size)) };
    } catch (err) {
      throw toOutboundError(err, deadline, req.signal);
    }
  }

  return {
    request,
    close() {
      closed ??= agent.close();
      return closed;
    },
  };
}

/** Drops an answer's body without reading it (destroying it without a listener would throw). */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on("error", () => undefined);
  body.destroy();
}

/** Path and query of a URL (the fragment is never sent). */
function pathOf(raw: string): string {
  const url = new URL(raw);
  return `${url.pathname}${url.search}`;
}
