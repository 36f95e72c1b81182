// Outbound target policy (webhooks, input-image URLs): which schemes, ports, host names and IP addresses
// the gateway may call. Pure: the submit-time literal check uses it for a fast 400, and the outbound
// HTTP client (src/infra/outbound-http.ts) applies it again to every address it actually connects to.
import ipaddr from "ipaddr.js";

/** What an outbound URL may target (from `WEBHOOK_ALLOW_PRIVATE` and `OUTBOUND_ALLOWED_PORTS`). */
export interface OutboundPolicy {
  /**
   * Private, loopback, link-local, metadata and cluster-internal targets, and plain http, are allowed
   * (development, or a deployment whose inputs live in an internal store).
   */
  readonly allowPrivate: boolean;
  /** Ports a URL may name; a URL without a port names its scheme's default (443, or 80 for http). */
  readonly allowedPorts: readonly number[];
}

/** Why an outbound URL is refused; `message` is safe to show its sender (it names no address). */
export interface OutboundUrlProblem {
  readonly reason: "url" | "scheme" | "credentials" | "port" | "host";
  readonly message: string;
}

/** 4 for a dotted-quad IPv4 literal, 6 for an IPv6 literal (no brackets), 0 otherwise. */
export function isIP(host: string): 0 | 4 | 6 {
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return 4;
  return ipaddr.IPv6.isValid(host) ? 6 : 0;
}

/** An IPv4 given as the two 16-bit groups that embed it in an IPv6 address. */
function v4FromGroups(hi: number, lo: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

/**
 * True unless `ip` is a public unicast address. Refused: every special range ipaddr.js knows (IPv4
 * loopback, RFC 1918, link-local and cloud metadata 169.254/16, CGNAT 100.64/10, multicast,
 * unspecified, broadcast, reserved and documentation ranges; IPv6 loopback, unique-local — AWS
 * metadata `fd00:ec2::254` —, link-local, site-local, multicast, discard, reserved), every Teredo
 * address (its relays reach whatever IPv4 it embeds) and the local-use NAT64 prefix; IPv4 embedded in
 * IPv6 (mapped, translated, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged
 * as that IPv4. Anything that does not parse as an address counts as private.
 */
export function isPrivateAddress(ip: string): boolean {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(ip.replace(/^\[|\]$/g, ""));
  } catch {
    return true;
  }
  if (addr.kind() === "ipv4") return addr.range() !== "unicast";
  const v6 = addr as ipaddr.IPv6;
  const p = v6.parts;
  const embedded = (hi = p[6] ?? 0, lo = p[7] ?? 0) => v4FromGroups(hi, lo).range() !== "unicast";
  switch (v6.range()) {
    case "unicast":
      // ::/96 "IPv4-compatible" (deprecated, still routed by some stacks): ipaddr.js calls it unicast.
      return p.slice(0, 6).every((g) => g === 0) ? embedded() : false;
    case "ipv4Mapped":
    case "rfc6145":
      return embedded();
    case "rfc6052":
      // 64:ff9b::/96 translates to the IPv4 it embeds; 64:ff9b:1::/48 is for local use.
      return p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0 ? embedded() : true;
    case "6to4":
      return embedded(p[1], p[2]);
    default:
      return true;
  }
}

/**
 * Names that only mean something inside a network: `localhost` (and `*.localhost`), `metadata`,
 * `*.internal` (GCP metadata), `*.local` (mDNS and Kubernetes `*.cluster.local`), `*.svc`,
 * `*.home.arpa`, and single labels (resolved through search domains).
 */
const INTERNAL_NAMES =
  /^(localhost|.*\.localhost|metadata|.*\.internal|.*\.local|.*\.svc|(.*\.)?home\.arpa)$/i;

/**
 * Why `host` (a URL's hostname, or the host a connection is opened to) may not be called from the
 * gateway's network, or undefined when it may. IP literals are judged by {@link isPrivateAddress};
 * `url.hostname` is already normalised by the URL parser (decimal, octal and hex IPv4 forms such as
 * `2130706433` or `0x7f.1` become `127.0.0.1`; IPv6 is compressed to hex groups, in brackets).
 */
export function hostProblem(host: string): string | undefined {
  const bare = host.replace(/^\[|\]$/g, "");
  if (isIP(bare) !== 0) return isPrivateAddress(bare) ? "a private or loopback address" : undefined;
  // "localhost." is "localhost": one trailing dot makes a name fully qualified, nothing else.
  const name = bare.endsWith(".") ? bare.slice(0, -1) : bare;
  if (INTERNAL_NAMES.test(name) || !name.includes(".") || name.endsWith(".")) return "an internal host name";
  return undefined;
}

/** The port a URL names: its explicit port, else its scheme's default. */
export function effectivePort(url: URL): number {
  if (url.port !== "") return Number(url.port);
  return url.protocol === "http:" ? 80 : 443;
}

/**
 * Checks an outbound URL against the policy without resolving anything: https (http only with
 * `allowPrivate`), no credentials, an allowed port, and a public host unless `allowPrivate`. The check
 * that holds is the one at connect time, on the addresses a name resolves to (outbound-http).
 */
export function outboundUrlProblem(raw: string, policy: OutboundPolicy): OutboundUrlProblem | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { reason: "url", message: "is not a URL" };
  }
  if (url.protocol !== "https:" && !(policy.allowPrivate && url.protocol === "http:"))
    return { reason: "scheme", message: "must use https" };
  if (url.username || url.password) return { reason: "credentials", message: "must not carry credentials" };
  const port = effectivePort(url);
  if (!policy.allowedPorts.includes(port))
    return {
      reason: "port",
      message: `names port ${port}, which is not allowed (allowed: ${policy.allowedPorts.join(", ")})`,
    };
  if (policy.allowPrivate) return undefined;
  const problem = hostProblem(url.hostname);
  return problem === undefined ? undefined : { reason: "host", message: `points at ${problem}` };
}
