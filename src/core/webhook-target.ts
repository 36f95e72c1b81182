// Outbound URL targets (webhooks, and `image`/`mask` URLs that a GPU backend fetches): https only, and
// never loopback, private, link-local, multicast or cloud-metadata addresses. Only the literal host
// is checked here (IP literals in every form the URL parser accepts, and well-known internal names);
// DNS names are not resolved. Webhooks are validated and stored but not delivered in this version:
// the delivery code must re-check the address it actually connects to (DNS rebinding).

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** 4 for a dotted-quad IPv4 literal, 6 for an IPv6 literal (no brackets), 0 otherwise (no I/O). */
export function isIP(host: string): 0 | 4 | 6 {
  if (V4.test(host)) return 4;
  return parseIPv6(host) === undefined ? 0 : 6;
}

/** The 32-bit value of a dotted-quad IPv4 literal. */
function v4ToInt(ip: string): number {
  return ip.split(".").reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

/**
 * The eight 16-bit groups of an IPv6 literal (no brackets, no zone): `::` compression and a trailing
 * embedded dotted IPv4 (`::ffff:1.2.3.4`) are expanded. `undefined` when it is not one.
 */
export function parseIPv6(text: string): number[] | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return undefined;
  let body = text;
  const tail: number[] = [];
  const lastColon = body.lastIndexOf(":");
  if (body.includes(".")) {
    const v4 = body.slice(lastColon + 1);
    if (!V4.test(v4)) return undefined;
    const n = v4ToInt(v4);
    tail.push(n >>> 16, n & 0xffff);
    // Keep the colon(s) before it: "::1.2.3.4" becomes "::" + the two groups.
    body = body.slice(0, lastColon + 1);
    if (body.endsWith("::")) body = body.slice(0, -1) + ":";
    else body = body.slice(0, -1);
  }
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0] ?? "");
  if (head === undefined) return undefined;
  if (halves.length === 1) {
    const all = [...head, ...tail];
    return all.length === 8 ? all : undefined;
  }
  const rest = groups(halves[1] ?? "");
  if (rest === undefined) return undefined;
  const known = head.length + rest.length + tail.length;
  // "::" stands for at least one zero group.
  if (known > 7) return undefined;
  return [...head, ...new Array<number>(8 - known).fill(0), ...rest, ...tail];
}

const BLOCKED_V4: readonly [number, number][] = [
  [0x00000000, 8], // 0.0.0.0/8 "this network"
  [0x0a000000, 8], // 10/8
  [0x64400000, 10], // 100.64/10 carrier-grade NAT
  [0x7f000000, 8], // 127/8 loopback
  [0xa9fe0000, 16], // 169.254/16 link-local, cloud metadata
  [0xac100000, 12], // 172.16/12
  [0xc0000000, 24], // 192.0.0/24 IETF protocol assignments
  [0xc0a80000, 16], // 192.168/16
  [0xc6120000, 15], // 198.18/15 benchmarking
  [0xe0000000, 4], // multicast
  [0xf0000000, 4], // reserved, broadcast
];

function isPrivateV4(n: number): boolean {
  return BLOCKED_V4.some(([base, bits]) => n >>> (32 - bits) === base >>> (32 - bits));
}

/** Private IPv6 ranges, and IPv4 embedded in transition prefixes judged as IPv4. */
function isPrivateV6(g: readonly number[]): boolean {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = g;
  const v4 = (hi: number, lo: number) => isPrivateV4(((hi << 16) | lo) >>> 0);
  const zeroTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroTo(7) && g7 <= 1) return true; // ::/128 unspecified, ::1 loopback
  if (zeroTo(5) && g5 === 0xffff) return v4(g6, g7); // ::ffff:0:0/96 IPv4-mapped
  if (zeroTo(6)) return v4(g6, g7); // ::/96 IPv4-compatible (deprecated)
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return v4(g6, g7); // NAT64
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return true; // 64:ff9b:1::/48 local-use NAT64
  if (g0 === 0x2002) return v4(g1, g2); // 2002::/16 6to4
  if (g0 === 0x2001 && g1 === 0) return true; // 2001::/32 Teredo: relays reach any IPv4 it embeds
  return (
    (g0 & 0xfe00) === 0xfc00 || // fc00::/7 unique local (AWS metadata fd00:ec2::254)
    (g0 & 0xffc0) === 0xfe80 || // fe80::/10 link-local
    (g0 & 0xffc0) === 0xfec0 || // fec0::/10 site-local (deprecated)
    (g0 & 0xff00) === 0xff00 // ff00::/8 multicast
  );
}

/** True for IPv4/IPv6 literals in loopback, private, link-local, CGNAT, multicast or metadata ranges. */
export function isPrivateAddress(ip: string): boolean {
  if (V4.test(ip)) return isPrivateV4(v4ToInt(ip));
  const groups = parseIPv6(ip);
  return groups !== undefined && isPrivateV6(groups);
}

const BLOCKED_NAMES =
  /^(localhost|.*\.localhost|metadata|metadata\.google\.internal|.*\.internal|.*\.local)$/i;

/**
 * Why the host of a parsed URL may not be called from the gateway's network, or undefined when it
 * may. `url.hostname` is already normalised by the URL parser (decimal, octal and hex IPv4 forms such
 * as `2130706433` or `0x7f.1` become `127.0.0.1`; IPv6 is compressed to hex groups).
 */
export function privateHostProblem(url: URL): string | undefined {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) !== 0) return isPrivateAddress(host) ? "a private or loopback address" : undefined;
  // "localhost." is "localhost": one trailing dot makes a name fully qualified, nothing else.
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (BLOCKED_NAMES.test(name) || !name.includes(".") || name.endsWith(".")) return "not a public host name";
  return undefined;
}

/**
 * Checks a webhook URL: https (http only with `allowPrivate`), no credentials, a public host unless
 * `allowPrivate` (`WEBHOOK_ALLOW_PRIVATE=true`). Returns a reason when it is refused, undefined when
 * acceptable.
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
  const problem = privateHostProblem(url);
  return problem === undefined ? undefined : `webhook target is ${problem}`;
}

/**
 * Checks an `image`/`mask` URL that a GPU backend will fetch: its host must be public unless
 * `allowPrivate` (`WEBHOOK_ALLOW_PRIVATE=true` relaxes both checks). The scheme was checked when the
 * request was parsed. Returns a reason when it is refused, undefined when acceptable.
 */
export function imageUrlProblem(raw: string, allowPrivate: boolean): string | undefined {
  if (allowPrivate) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not a URL";
  }
  if (url.username || url.password) return "image URLs must not carry credentials";
  const problem = privateHostProblem(url);
  return problem === undefined ? undefined : `the image host is ${problem}`;
}
