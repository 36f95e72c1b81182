// Outbound webhook targets: https only, and never loopback, private, link-local or metadata
// addresses (checked on the literal here; deliveries re-check the resolved address).

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** 4 for an IPv4 literal, 6 for an IPv6 literal, 0 otherwise (no I/O, unlike node:net). */
export function isIP(host: string): 0 | 4 | 6 {
  if (V4.test(host)) return 4;
  if (!host.includes(":") || !/^[0-9a-fA-F:.]+$/.test(host)) return 0;
  try {
    return new URL(`http://[${host}]/`).hostname.length > 2 ? 6 : 0;
  } catch {
    return 0;
  }
}

const BLOCKED_V4: readonly [number, number][] = [
  [0x00000000, 8], // 0.0.0.0/8 "this network"
  [0x0a000000, 8], // 10/8
  [0x64400000, 10], // 100.64/10 carrier-grade NAT
  [0x7f000000, 8], // 127/8 loopback
  [0xa9fe0000, 16], // 169.254/16 link-local, cloud metadata
  [0xac100000, 12], // 172.16/12
  [0xc0000000, 24], // 192.0.0/24
  [0xc0a80000, 16], // 192.168/16
  [0xc6120000, 15], // 198.18/15 benchmarking
  [0xe0000000, 4], // multicast
  [0xf0000000, 4], // reserved
];

function v4ToInt(ip: string): number {
  return ip.split(".").reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

/** True for IPv4/IPv6 literals in loopback, private, link-local, CGNAT, multicast or metadata ranges. */
export function isPrivateAddress(ip: string): boolean {
  const kind = isIP(ip);
  if (kind === 4) {
    const n = v4ToInt(ip);
    return BLOCKED_V4.some(([base, bits]) => n >>> (32 - bits) === base >>> (32 - bits));
  }
  if (kind === 6) {
    const v = ip.toLowerCase();
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v);
    if (mapped) return isPrivateAddress(mapped[1]!);
    return (
      v === "::" ||
      v === "::1" ||
      /^f[cd]/.test(v) || // fc00::/7 unique local (includes AWS metadata fd00:ec2::254)
      /^fe[89ab]/.test(v) || // fe80::/10 link-local
      /^ff/.test(v) // multicast
    );
  }
  return false;
}

const BLOCKED_NAMES =
  /^(localhost|.*\.localhost|metadata|metadata\.google\.internal|.*\.internal|.*\.local)$/i;

/**
 * Checks a webhook URL. Returns a reason when it is refused, undefined when acceptable.
 */
export function webhookTargetProblem(raw: string, allowPrivate: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not a URL";
  }
  if (url.protocol !== "https:" && !(allowPrivate && url.protocol === "http:"))
    return "webhooks must use https";
  if (url.username || url.password) return "webhook URLs must not carry credentials";
  if (allowPrivate) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) !== 0)
    return isPrivateAddress(host) ? "webhook target is a private or loopback address" : undefined;
  if (BLOCKED_NAMES.test(host) || !host.includes(".")) return "webhook target is not a public host name";
  return undefined;
}
