// The value types of the environment's variables (env.ts): how each kind of setting is parsed.
import { z } from "zod";

/**
 * An empty (or blank) value counts as unset, as it does for the string variables: `PORT=` must mean
 * "the default", not `Number("")` = 0 (a random port).
 */
export const unsetIfBlank = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
export const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(unsetIfBlank, z.coerce.number().int().min(min).max(max).default(def));
export const optionalInt = (min: number, max: number) =>
  z.preprocess(unsetIfBlank, z.coerce.number().int().min(min).max(max).optional());
/** A comma-separated list of TCP ports (1–65535), at least one. */
export const portList = (def: string) =>
  z.preprocess(unsetIfBlank, z.string().default(def)).transform((v, ctx) => {
    const ports: number[] = [];
    for (const part of v.split(",")) {
      const p = part.trim();
      if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) {
        ctx.addIssue({ code: "custom", message: `"${p}" is not a TCP port (1-65535)` });
        return z.NEVER;
      }
      ports.push(Number(p));
    }
    return Object.freeze(ports);
  });
/** A comma-separated list of web origins (`scheme://host[:port]`), lower-cased; unset: undefined. */
export const originList = z.preprocess(unsetIfBlank, z.string().optional()).transform((v, ctx) => {
  if (v === undefined) return undefined;
  const origins: string[] = [];
  for (const part of v.split(",")) {
    const o = part.trim().replace(/\/$/, "").toLowerCase();
    if (o === "") continue;
    if (!URL.canParse(o) || new URL(o).origin !== o) {
      ctx.addIssue({ code: "custom", message: `"${part.trim()}" is not an origin (scheme://host[:port])` });
      return z.NEVER;
    }
    origins.push(o);
  }
  return Object.freeze(origins);
});
/**
 * A comma-separated list of `host:port` (`[v6]:port` for an IPv6 address; the port defaults to
 * `defaultPort`: 26379 for sentinels, 6379 for Cluster nodes), at least one; unset: undefined.
 */
export const hostPortList = (defaultPort: number) =>
  z.preprocess(unsetIfBlank, z.string().optional()).transform((v, ctx) => {
    if (v === undefined) return undefined;
    const out: { host: string; port: number }[] = [];
    for (const part of v.split(",")) {
      const p = part.trim();
      if (p === "") continue;
      const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(p);
      const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
      if (!m || port < 1 || port > 65535) {
        ctx.addIssue({ code: "custom", message: `"${p}" is not host:port` });
        return z.NEVER;
      }
      out.push({ host: m[1] ?? m[2]!, port });
    }
    if (out.length === 0) {
      ctx.addIssue({ code: "custom", message: "no host:port given" });
      return z.NEVER;
    }
    return Object.freeze(out.map((h) => Object.freeze(h)));
  });
export const rate = (def: number) => z.preprocess(unsetIfBlank, z.coerce.number().min(0).max(1).default(def));
export const bool = (def: boolean) =>
  z.preprocess(
    unsetIfBlank,
    z
      .enum(["true", "false", "1", "0", "yes", "no"])
      .default(def ? "true" : "false")
      .transform((v) => v === "true" || v === "1" || v === "yes"),
  );
/** Redis's own size units (redis.conf): k = 1000, kb = 1024, m = 10⁶, mb = 1024², g = 10⁹, gb = 1024³. */
const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1024,
  m: 1e6,
  mb: 1024 ** 2,
  g: 1e9,
  gb: 1024 ** 3,
};
/** Smallest REDIS_MAXMEMORY: below this Redis cannot even hold its own bookkeeping. */
const MIN_MAXMEMORY = 1024 ** 2;
/** Bytes, or a number with a Redis size unit (`512mb`, `2gb`, case-insensitive), to whole bytes. */
export const byteSize = z.preprocess(
  unsetIfBlank,
  z
    .string()
    .regex(/^\s*\d+(?:\.\d+)?\s*(?:[kmg]b?|b)?\s*$/i, "a size in bytes or with a unit: 536870912, 512mb, 2gb")
    .transform((v) => {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v)!;
      return Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
    })
    .pipe(z.number().int().min(MIN_MAXMEMORY, "at least 1mb").max(Number.MAX_SAFE_INTEGER))
    .optional(),
);
/** A share in (0, 1]. */
export const share = (def: number) => z.preprocess(unsetIfBlank, z.coerce.number().gt(0).max(1).default(def));
/** The highest `ttl` API.md allows, so also the highest `MIN_TTL_S`. */
export const MAX_TTL_S = 86_400;
export const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

/** Whether `url` names this machine's loopback (a plain-http JWKS_URL is allowed only there). */
export function isLoopbackHost(url: URL): boolean {
  return url.hostname === "localhost" || url.hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(url.hostname);
}

/**
 * What is wrong with a JWKS_URL (a URL already): plain http beyond the loopback, or credentials in
 * it — fetch refuses a URL with `user:password@` (the set would stay empty), and the error would
 * carry them into logs and `/ready`.
 */
export function jwksUrlProblem(url: URL): string | undefined {
  if (!(url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url))))
    return "JWKS_URL must be https (plain http only to localhost, 127.0.0.1 or [::1])";
  if (url.username !== "" || url.password !== "")
    return "JWKS_URL must not hold credentials (user:password@): the fetch sends none";
  return undefined;
}
